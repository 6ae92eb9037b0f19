// DummyClient's load payload header, and the sequence read back from one cut
// short (load_payload.h): the whole header round-trips; a cut sequence is the
// one nearest the next due with the low bytes it kept, ahead or behind, and
// never below 0; under 9 bytes nothing is kept and the next due is assumed.
#include "apps/dummy_client/load_payload.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>

namespace game {
namespace {

// The first `size` bytes of the header of sequence `seq`.
uint64_t ReadBack(uint64_t seq, size_t size, uint64_t due) {
  const auto header = LoadHeader(7, 0xABCD1234, seq, 99);
  return SeqInPayload(std::span(header).first(size), due);
}

TEST(LoadPayloadTest, TheWholeHeaderKeepsEveryField) {
  const auto header = LoadHeader(7, 0xABCD1234, 0x0102030405060708, 99);
  EXPECT_EQ(servercore::LoadU32(header.data()), 7u);
  EXPECT_EQ(servercore::LoadU32(header.data() + 4), 0xABCD1234u);
  EXPECT_EQ(servercore::LoadU64(header.data() + 16), 99u);
  for (size_t size : {16u, 23u, 24u}) {
    EXPECT_EQ(ReadBack(0x0102030405060708, size, 5), 0x0102030405060708u)
        << size << " bytes keep the whole sequence, whatever is due";
  }
}

TEST(LoadPayloadTest, NoSequenceByteMeansTheNextDue) {
  for (size_t size : {0u, 4u, 8u}) {
    EXPECT_EQ(ReadBack(1000, size, 5), 5u) << size;
  }
}

TEST(LoadPayloadTest, ACutSequenceIsTheNearestToTheNextDue) {
  // One byte kept (9 bytes): within 127 ahead or 128 behind.
  EXPECT_EQ(ReadBack(1000, 9, 1000), 1000u);
  EXPECT_EQ(ReadBack(1003, 9, 1000), 1003u) << "three lost";
  EXPECT_EQ(ReadBack(998, 9, 1000), 998u) << "two behind: a duplicate";
  EXPECT_EQ(ReadBack(1000 + 127, 9, 1000), 1000u + 127);
  EXPECT_EQ(ReadBack(1000 - 128, 9, 1000), 1000u - 128);
  EXPECT_EQ(ReadBack(1000 + 256, 9, 1000), 1000u) << "past the range: aliased";
  // Across a wrap of the kept bytes: 0x1FF is due, 0x201 came.
  EXPECT_EQ(ReadBack(0x201, 9, 0x1FF), 0x201u);
  EXPECT_EQ(ReadBack(0x1FE, 9, 0x201), 0x1FEu);
  // Four bytes kept (12): far ahead and behind.
  EXPECT_EQ(ReadBack(0x1'0000'0005, 12, 0xFFFF'FFF0), 0x1'0000'0005u);
  EXPECT_EQ(ReadBack(0xFFFF'FFF0, 12, 0x1'0000'0005), 0xFFFF'FFF0u);
  // Seven bytes kept (15).
  EXPECT_EQ(ReadBack(uint64_t{1} << 40, 15, (uint64_t{1} << 40) - 3),
            uint64_t{1} << 40);
}

TEST(LoadPayloadTest, NeverBelowZero) {
  // Due 2, a byte of 240: 18 behind would be below 0, so it is ahead.
  EXPECT_EQ(ReadBack(240, 9, 2), 240u);
  EXPECT_EQ(ReadBack(255, 9, 0), 255u) << "0xFF with 0 due: ahead, not -1";
  EXPECT_EQ(ReadBack(0, 9, 0), 0u);
}

}  // namespace
}  // namespace game
