#include "servercore/packet_writer.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <string_view>
#include <vector>

#include "servercore/packet_framer.h"
#include "servercore/send_buffer_manager.h"

namespace servercore {
namespace {

std::vector<std::byte> Bytes(std::string_view text) {
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return {p, p + text.size()};
}

TEST(PacketWriterTest, WritesHeaderAndLittleEndianFields) {
  PacketWriter packet(6, 8 + 2 + 1 + 4 + 3);
  packet.WriteU64(0x0102030405060708).WriteU16(0xA1B2).WriteU8(0x7F);
  packet.WriteU32(0xDEADBEEF).WriteBytes(std::string_view("abc"));
  EXPECT_EQ(packet.payload_size(), 18u);
  EXPECT_EQ(packet.payload_room(), 0u);
  SendBufferRef buffer = packet.Finish();

  ASSERT_TRUE(buffer->IsClosed());
  ASSERT_EQ(buffer->WriteSize(), kPacketHeaderSize + 18);
  const std::byte* p = buffer->Data().data();
  EXPECT_EQ(LoadU16(p), kPacketHeaderSize + 18);
  EXPECT_EQ(LoadU16(p + 2), 6);
  EXPECT_EQ(LoadU64(p + 4), 0x0102030405060708u);
  EXPECT_EQ(LoadU16(p + 12), 0xA1B2);
  EXPECT_EQ(std::to_integer<int>(p[14]), 0x7F);
  EXPECT_EQ(LoadU32(p + 15), 0xDEADBEEFu);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(p + 19), 3), "abc");
}

TEST(PacketWriterTest, CommitsOnlyWhatWasWritten) {
  PacketWriter packet(1, 1000);
  packet.WriteU32(7);
  SendBufferRef buffer = packet.Finish();
  EXPECT_EQ(buffer->WriteSize(), kPacketHeaderSize + 4);
  EXPECT_EQ(LoadU16(buffer->Data().data()), kPacketHeaderSize + 4);
  // The unused reservation went back to the chunk: the next buffer starts
  // right after this one's bytes.
  SendBufferRef next = MakePacket(2, {});
  EXPECT_EQ(next->WriteSize(), kPacketHeaderSize);
}

TEST(PacketWriterTest, ReserveHandsOutRoomInPlace) {
  PacketWriter packet(9, 16);
  std::span<std::byte> room = packet.Reserve(5);
  ASSERT_EQ(room.size(), 5u);
  for (size_t i = 0; i < room.size(); ++i) room[i] = std::byte(i + 1);
  packet.WriteU8(6);
  SendBufferRef buffer = packet.Finish();
  const std::span<const std::byte> payload =
      buffer->Data().subspan(kPacketHeaderSize);
  ASSERT_EQ(payload.size(), 6u);
  for (size_t i = 0; i < payload.size(); ++i) {
    EXPECT_EQ(std::to_integer<size_t>(payload[i]), i + 1);
  }
}

TEST(PacketWriterTest, MakePacketCopiesThePayload) {
  const std::vector<std::byte> payload = Bytes("hello");
  SendBufferRef buffer = MakePacket(2, payload);
  ASSERT_EQ(buffer->WriteSize(), kPacketHeaderSize + payload.size());
  EXPECT_EQ(LoadU16(buffer->Data().data() + 2), 2);
  EXPECT_TRUE(std::equal(payload.begin(), payload.end(),
                         buffer->Data().begin() + kPacketHeaderSize));
}

TEST(PacketWriterTest, LargestPacketFits) {
  const std::vector<std::byte> payload(kMaxPacketLimit - kPacketHeaderSize,
                                       std::byte{0x5A});
  SendBufferRef buffer = MakePacket(6, payload);
  EXPECT_EQ(buffer->WriteSize(), kMaxPacketLimit);
  EXPECT_EQ(LoadU16(buffer->Data().data()), kMaxPacketLimit);
}

TEST(PacketWriterTest, AbandonedWriterLeavesTheThreadFreeToOpen) {
  { PacketWriter abandoned(1, 64); }
  // Had the abandoned buffer stayed open, this Open would abort.
  SendBufferRef buffer = MakePacket(1, Bytes("x"));
  EXPECT_EQ(buffer->WriteSize(), kPacketHeaderSize + 1);
}

class PacketWriterDeathTest : public testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(PacketWriterDeathTest, WritingPastTheReservationAborts) {
  EXPECT_DEATH(
      {
        PacketWriter packet(1, 4);
        packet.WriteU32(1).WriteU8(2);
      },
      "PacketWriter: 1 more payload bytes do not fit in the 4 reserved "
      "\\(4 written\\)");
}

TEST_F(PacketWriterDeathTest, PayloadBeyondTheWireLimitAborts) {
  EXPECT_DEATH(PacketWriter(1, kMaxPacketLimit),
               "PacketWriter: a payload of at most 65531 bytes, not 65535");
}

TEST_F(PacketWriterDeathTest, FinishTwiceAborts) {
  EXPECT_DEATH(
      {
        PacketWriter packet(1, 0);
        SendBufferRef first = packet.Finish();
        SendBufferRef second = packet.Finish();
      },
      "PacketWriter::Finish called twice");
}

}  // namespace
}  // namespace servercore
