// OpenLoopSchedule: DummyClient's --rate schedule, spread over the senders.
#include "apps/dummy_client/open_loop_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace game {
namespace {

constexpr int64_t kStart = 1'000'000'000'000;  // any monotonic origin
constexpr int64_t kMs = 1'000'000;

TEST(OpenLoopScheduleTest, OneSenderSendsAtTheRate) {
  const OpenLoopSchedule schedule(kStart, 100, 1);  // every 10 ms
  EXPECT_EQ(schedule.SendTime(0, 0), kStart);
  EXPECT_EQ(schedule.SendTime(0, 1), kStart + 10 * kMs);
  EXPECT_EQ(schedule.SendTime(0, 100), kStart + 1000 * kMs);
}

TEST(OpenLoopScheduleTest, SendersAreSpreadEvenlyOverOneInterval) {
  // 500 senders at 2 packets/s: one packet every millisecond in all, not a
  // burst of 500 every 500 ms.
  constexpr size_t kSenders = 500;
  const OpenLoopSchedule schedule(kStart, 2, kSenders);
  std::vector<int64_t> times;
  for (size_t i = 0; i < kSenders; ++i) {
    for (uint64_t seq = 0; seq < 4; ++seq) {
      times.push_back(schedule.SendTime(i, seq));
    }
  }
  std::sort(times.begin(), times.end());
  EXPECT_EQ(times.front(), kStart);
  for (size_t k = 1; k < times.size(); ++k) {
    EXPECT_LE(std::abs(times[k] - times[k - 1] - kMs), 1) << "send " << k;
  }
  EXPECT_EQ(schedule.SendTime(kSenders - 1, 0), kStart + 499 * kMs);
}

TEST(OpenLoopScheduleTest, EachSenderKeepsTheFullRate) {
  const OpenLoopSchedule schedule(kStart, 50, 7);  // every 20 ms
  for (size_t i = 0; i < 7; ++i) {
    for (uint64_t seq = 1; seq < 50; ++seq) {
      const int64_t gap =
          schedule.SendTime(i, seq) - schedule.SendTime(i, seq - 1);
      EXPECT_LE(std::abs(gap - 20 * kMs), 1);
    }
  }
}

TEST(OpenLoopScheduleTest, DueByCountsThePacketsWhoseTimeHasCome) {
  const OpenLoopSchedule schedule(kStart, 100, 4);  // 10 ms; phases 2.5 ms
  EXPECT_EQ(schedule.DueBy(0, kStart - 1), 0u);
  EXPECT_EQ(schedule.DueBy(0, kStart), 1u);
  EXPECT_EQ(schedule.DueBy(0, kStart + 10 * kMs - 1), 1u);
  EXPECT_EQ(schedule.DueBy(0, kStart + 10 * kMs), 2u);
  // Sender 2 starts 5 ms late.
  EXPECT_EQ(schedule.DueBy(2, kStart + 5 * kMs - 1), 0u);
  EXPECT_EQ(schedule.DueBy(2, kStart + 5 * kMs), 1u);
  EXPECT_EQ(schedule.DueBy(2, kStart + 1005 * kMs), 101u);
  // DueBy and SendTime agree: packet seq is due exactly from its time on.
  for (size_t i = 0; i < 4; ++i) {
    for (uint64_t seq = 0; seq < 1000; ++seq) {
      const int64_t t = schedule.SendTime(i, seq);
      EXPECT_EQ(schedule.DueBy(i, t), seq + 1);
      EXPECT_EQ(schedule.DueBy(i, t - 1), seq);
    }
  }
}

TEST(OpenLoopScheduleTest, NoSendersIsHarmless) {
  const OpenLoopSchedule schedule(kStart, 10, 0);
  EXPECT_EQ(schedule.SendTime(0, 0), kStart);
}

}  // namespace
}  // namespace game
