#include "snapshot_encoder.h"

#include <gtest/gtest.h>

#include <vector>

#include "game.pb.h"
#include "servercore/packet_framer.h"

namespace game {
namespace {

using servercore::kPacketHeaderSize;
using servercore::SendBufferRef;

// The packets, parsed back: each must be a whole S_SNAPSHOT packet.
std::vector<pb::S_SNAPSHOT> Parse(const std::vector<SendBufferRef>& packets) {
  std::vector<pb::S_SNAPSHOT> out;
  for (const SendBufferRef& packet : packets) {
    const std::byte* at = packet->Buffer();
    const uint16_t size = servercore::LoadU16(at);
    EXPECT_EQ(size, packet->WriteSize());
    EXPECT_EQ(servercore::LoadU16(at + 2), 1003);
    pb::S_SNAPSHOT message;
    EXPECT_TRUE(message.ParseFromArray(
        at + kPacketHeaderSize, static_cast<int>(size - kPacketHeaderSize)));
    out.push_back(message);
  }
  return out;
}

TEST(SnapshotEncoderTest, NothingAddedIsNoPacket) {
  pb::S_SNAPSHOT message;
  std::vector<SendBufferRef> packets;
  SnapshotEncoder encoder(message, packets, 7, 42, false);
  encoder.Finish();
  EXPECT_TRUE(packets.empty());
}

TEST(SnapshotEncoderTest, OnePacketHoldsEverything) {
  pb::S_SNAPSHOT message;
  std::vector<SendBufferRef> packets;
  SnapshotEncoder encoder(message, packets, 7, 42, true);
  encoder.Add(1, 1.5F, -2.5F, 3, false);
  encoder.Add(2, 0, 0, 0, true);
  encoder.Finish();
  const auto parsed = Parse(packets);
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0].room(), 7u);
  EXPECT_EQ(parsed[0].tick(), 42u);
  EXPECT_TRUE(parsed[0].full());
  ASSERT_EQ(parsed[0].entities_size(), 2);
  EXPECT_EQ(parsed[0].entities(0).session_id(), 1u);
  EXPECT_EQ(parsed[0].entities(0).x(), 1.5F);
  EXPECT_EQ(parsed[0].entities(0).y(), -2.5F);
  EXPECT_EQ(parsed[0].entities(0).last_seq(), 3u);
  EXPECT_FALSE(parsed[0].entities(0).gone());
  EXPECT_TRUE(parsed[0].entities(1).gone());
}

// Every split keeps room, tick and full, each packet stays within the
// limit and is as full as the next entity allows, and the entities come out
// in order, each once.
TEST(SnapshotEncoderTest, SplitsAtTheLimitKeepingOrder) {
  for (size_t limit : {40u, 64u, 100u, 1000u, 65531u}) {
    SCOPED_TRACE(limit);
    pb::S_SNAPSHOT message;
    std::vector<SendBufferRef> packets;
    constexpr uint64_t kEntities = 5000;
    {
      SnapshotEncoder encoder(message, packets, 3, 1ULL << 40, false, limit);
      for (uint64_t i = 1; i <= kEntities; ++i) {
        encoder.Add(i * 977, static_cast<float>(i), -1.0F,
                    static_cast<uint32_t>(i * 1'000'003), i % 7 == 0);
      }
      EXPECT_EQ(encoder.entities(), kEntities);
      encoder.Finish();
    }
    const auto parsed = Parse(packets);
    uint64_t next = 1;
    for (size_t p = 0; p < parsed.size(); ++p) {
      EXPECT_EQ(parsed[p].room(), 3u);
      EXPECT_EQ(parsed[p].tick(), 1ULL << 40);
      EXPECT_FALSE(parsed[p].full());
      EXPECT_LE(parsed[p].ByteSizeLong(), limit);
      EXPECT_GT(parsed[p].entities_size(), 0);
      if (p + 1 < parsed.size()) {
        // The next packet's first entity would not have fitted.
        pb::S_SNAPSHOT more = parsed[p];
        *more.add_entities() = parsed[p + 1].entities(0);
        EXPECT_GT(more.ByteSizeLong(), limit);
      }
      for (const pb::Entity& e : parsed[p].entities()) {
        EXPECT_EQ(e.session_id(), next * 977);
        EXPECT_EQ(e.gone(), next % 7 == 0);
        ++next;
      }
    }
    EXPECT_EQ(next, kEntities + 1);
    if (limit == 65531u) {
      EXPECT_GT(parsed.size(), 1u) << "5,000 entities do not fit in one";
    }
  }
}

TEST(SnapshotEncoderTest, ReusedMessageStartsClean) {
  pb::S_SNAPSHOT message;
  std::vector<SendBufferRef> packets;
  {
    SnapshotEncoder first(message, packets, 1, 1, true);
    first.Add(1, 1, 1, 1, false);
    first.Finish();
  }
  packets.clear();
  SnapshotEncoder second(message, packets, 2, 2, false);
  second.Add(9, 0, 0, 0, true);
  second.Finish();
  const auto parsed = Parse(packets);
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0].room(), 2u);
  EXPECT_FALSE(parsed[0].full());
  ASSERT_EQ(parsed[0].entities_size(), 1);
  EXPECT_EQ(parsed[0].entities(0).session_id(), 9u);
}

TEST(SnapshotEncoderDeathTest, AnEntityLargerThanThePacketIsABug) {
  pb::S_SNAPSHOT message;
  std::vector<SendBufferRef> packets;
  SnapshotEncoder encoder(message, packets, 1, 1, false, 10);
  EXPECT_DEATH(encoder.Add(~0ULL, 1, 1, ~0U, false), "does not fit");
}

}  // namespace
}  // namespace game
