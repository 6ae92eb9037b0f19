#include "io/buffer_target.h"

#include <gtest/gtest.h>

namespace servercore::internal {
namespace {

// Runs `rounds` rounds in each of which `given` buffers came back.
void Rounds(BufferTarget& target, unsigned rounds, unsigned given) {
  for (unsigned r = 0; r < rounds; ++r) {
    for (unsigned g = 0; g < given; ++g) target.Given();
    target.EndRound();
  }
}

// Runs `rounds` rounds in each of which the kernel ran dry.
void DryRounds(BufferTarget& target, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    target.RanDry();
    target.EndRound();
  }
}

TEST(BufferTargetTest, StartsAtTheLeast) {
  EXPECT_EQ(BufferTarget(4, 32).value(), 4u);
}

TEST(BufferTargetTest, DoublesAfterARoundThatRanDryUpToTheMost) {
  BufferTarget target(4, 32);
  target.RanDry();
  EXPECT_EQ(target.value(), 4u) << "changes only at the round's end";
  EXPECT_TRUE(target.EndRound()) << "says the round ran dry";
  EXPECT_EQ(target.value(), 8u);
  EXPECT_FALSE(target.EndRound()) << "once";
  for (int i = 0; i < 5; ++i) {
    target.RanDry();
    target.RanDry();  // once a round, however often
    target.EndRound();
  }
  EXPECT_EQ(target.value(), 32u);
}

TEST(BufferTargetTest, HalvesAfterQuietRoundsDownToTheLeast) {
  BufferTarget target(4, 32);
  DryRounds(target, 3);
  ASSERT_EQ(target.value(), 32u);
  Rounds(target, BufferTarget::kRoundsToShrink - 1, 8);
  EXPECT_EQ(target.value(), 32u) << "not before the look";
  Rounds(target, 1, 8);
  EXPECT_EQ(target.value(), 16u) << "8 of 32 is a quarter";
  Rounds(target, BufferTarget::kRoundsToShrink, 4);
  EXPECT_EQ(target.value(), 8u);
  Rounds(target, 3 * BufferTarget::kRoundsToShrink, 0);
  EXPECT_EQ(target.value(), 4u);
}

TEST(BufferTargetTest, OneBusyRoundKeepsItsSize) {
  BufferTarget target(4, 32);
  DryRounds(target, 2);
  ASSERT_EQ(target.value(), 16u);
  Rounds(target, 100, 1);
  Rounds(target, 1, 5);  // more than a quarter, once
  Rounds(target, BufferTarget::kRoundsToShrink - 101, 1);
  EXPECT_EQ(target.value(), 16u);
  Rounds(target, BufferTarget::kRoundsToShrink, 1);
  EXPECT_EQ(target.value(), 8u);
}

TEST(BufferTargetTest, RunningDryStartsTheLookAgain) {
  BufferTarget target(4, 32);
  DryRounds(target, 1);
  ASSERT_EQ(target.value(), 8u);
  Rounds(target, BufferTarget::kRoundsToShrink - 1, 0);
  DryRounds(target, 1);
  EXPECT_EQ(target.value(), 16u);
  Rounds(target, BufferTarget::kRoundsToShrink - 1, 0);
  EXPECT_EQ(target.value(), 16u);
  Rounds(target, 1, 0);
  EXPECT_EQ(target.value(), 8u);
}

TEST(BufferTargetTest, ResetGoesBackToTheLeastAndLooksAfreshFromThere) {
  BufferTarget target(4, 32);
  DryRounds(target, 3);
  ASSERT_EQ(target.value(), 32u);
  Rounds(target, BufferTarget::kRoundsToShrink - 1, 0);
  target.Reset();  // the worker went quiet
  EXPECT_EQ(target.value(), 4u);
  // The rounds before the reset count no more: none shrinks it below the
  // least, and a new look takes kRoundsToShrink rounds of its own.
  Rounds(target, 1, 0);
  EXPECT_EQ(target.value(), 4u);
  DryRounds(target, 1);
  EXPECT_EQ(target.value(), 8u);
  Rounds(target, BufferTarget::kRoundsToShrink - 1, 0);
  EXPECT_EQ(target.value(), 8u);
  Rounds(target, 1, 0);
  EXPECT_EQ(target.value(), 4u);
}

}  // namespace
}  // namespace servercore::internal
