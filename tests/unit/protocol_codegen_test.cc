// protoc-gen-servercore's output for tests/unit/protocol/codegen_test.proto:
// the ids come from enum PacketId whatever the message order, Dispatch parses
// and calls the right handler or reports an unknown id or a parse error, and
// MakeSendBuffer builds one whole packet in place (none past 65535 bytes,
// and no heap allocation in steady state).
#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "codegen_test.packets.h"
#include "servercore/packet_framer.h"
#include "servercore/send_buffer_manager.h"
#include "servercore/typed_packet.h"
#ifdef SERVERCORE_HAVE_ALLOC_COUNTER
#include "tests/support/alloc_counter.h"
#endif

namespace codegen_test {

// The session type the handlers take (SESSION in servercore_add_protocol).
class FakeSession {
 public:
  std::vector<pb::C_HELLO> hellos;
  std::vector<int64_t> values;
};

namespace pb {

void Handle_C_HELLO(FakeSession& session, const C_HELLO& message) {
  session.hellos.push_back(message);
}

void Handle_C_VALUE(FakeSession& session, const C_VALUE& message) {
  session.values.push_back(message.value());
}

}  // namespace pb

namespace {

using servercore::DispatchResult;
using servercore::LoadU16;
using servercore::SendBufferRef;

std::vector<std::byte> Bytes(std::initializer_list<int> values) {
  std::vector<std::byte> bytes;
  for (int v : values) bytes.push_back(static_cast<std::byte>(v));
  return bytes;
}

std::vector<std::byte> Serialize(const google::protobuf::MessageLite& m) {
  const std::string s = m.SerializeAsString();
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// The payload of a packet built by MakeSendBuffer, its header checked.
std::string PayloadOf(const SendBufferRef& buffer, uint16_t id) {
  EXPECT_TRUE(buffer->IsClosed());
  const auto data = buffer->Data();
  EXPECT_GE(data.size(), servercore::kPacketHeaderSize);
  EXPECT_EQ(LoadU16(data.data()), data.size());
  EXPECT_EQ(LoadU16(data.data() + 2), id);
  return {reinterpret_cast<const char*>(data.data()) +
              servercore::kPacketHeaderSize,
          data.size() - servercore::kPacketHeaderSize};
}

static_assert(pb::ids::C_HELLO == 42);
static_assert(pb::ids::C_VALUE == 65535);
static_assert(pb::ids::S_STATE == 1001);
static_assert(pb::ids::S_BLOB == 2001);
static_assert(pb::PacketIdOf<pb::S_STATE>::value == pb::PACKET_ID_S_STATE);
static_assert(pb::PacketIdOf<pb::C_HELLO>::value == pb::PACKET_ID_C_HELLO);

TEST(ProtocolCodegenTest, IdsComeFromThePacketIdEnum) {
  // The schema lists them out of message order on purpose.
  EXPECT_EQ(pb::ids::C_HELLO, pb::PACKET_ID_C_HELLO);
  EXPECT_EQ(pb::ids::C_VALUE, pb::PACKET_ID_C_VALUE);
  EXPECT_EQ(pb::ids::S_STATE, pb::PACKET_ID_S_STATE);
  EXPECT_EQ(pb::ids::S_BLOB, pb::PACKET_ID_S_BLOB);
}

TEST(ProtocolCodegenTest, DispatchParsesAndCallsTheHandler) {
  FakeSession session;
  pb::C_HELLO hello;
  hello.set_number(7);
  hello.set_name("bob");
  EXPECT_EQ(pb::Dispatch(session, 42, Serialize(hello)),
            DispatchResult::kHandled);
  pb::C_VALUE value;
  value.set_value(-5);
  EXPECT_EQ(pb::Dispatch(session, 65535, Serialize(value)),
            DispatchResult::kHandled);

  ASSERT_EQ(session.hellos.size(), 1u);
  EXPECT_EQ(session.hellos[0].number(), 7u);
  EXPECT_EQ(session.hellos[0].name(), "bob");
  EXPECT_EQ(session.values, std::vector<int64_t>{-5});
}

TEST(ProtocolCodegenTest, EmptyPayloadIsTheDefaultMessage) {
  FakeSession session;
  EXPECT_EQ(pb::Dispatch(session, pb::ids::C_HELLO, {}),
            DispatchResult::kHandled);
  ASSERT_EQ(session.hellos.size(), 1u);
  EXPECT_EQ(session.hellos[0].number(), 0u);
  EXPECT_EQ(session.hellos[0].name(), "");
}

TEST(ProtocolCodegenTest, ParseErrorsAreReportedAndNotHandled) {
  FakeSession session;
  const std::vector<std::vector<std::byte>> bad = {
      Bytes({0x08, 0x80}),              // varint cut short
      Bytes({0x12, 0x05, 'a', 'b'}),    // length beyond the payload
      Bytes({0x0F, 0x00}),              // wire type 7 does not exist
      Bytes({0x00, 0x01}),              // field number 0
      Bytes({0x12, 0x02, 0xC3, 0x28}),  // proto3 string, not UTF-8
  };
  for (const auto& payload : bad) {
    EXPECT_EQ(pb::Dispatch(session, pb::ids::C_HELLO, payload),
              DispatchResult::kParseError)
        << payload.size() << "-byte payload";
  }
  EXPECT_EQ(pb::Dispatch(session, pb::ids::C_VALUE, Bytes({0x08})),
            DispatchResult::kParseError);
  EXPECT_TRUE(session.hellos.empty());
  EXPECT_TRUE(session.values.empty());
}

TEST(ProtocolCodegenTest, ServerAndUnknownIdsAreReported) {
  FakeSession session;
  for (uint16_t id : {uint16_t{0}, uint16_t{1}, uint16_t{41}, uint16_t{43},
                      pb::ids::S_STATE, pb::ids::S_BLOB, uint16_t{65534}}) {
    EXPECT_EQ(pb::Dispatch(session, id, {}), DispatchResult::kUnknownId)
        << "id " << id;
  }
  EXPECT_TRUE(session.hellos.empty());
  EXPECT_TRUE(session.values.empty());
  EXPECT_EQ(servercore::ToString(DispatchResult::kUnknownId),
            "packet id not accepted");
}

TEST(ProtocolCodegenTest, MakeSendBufferBuildsOnePacketThatParsesBack) {
  pb::S_STATE state;
  state.set_tick(1'234'567'890'123ULL);
  state.mutable_where()->set_x(1.5F);
  state.mutable_where()->set_y(-2.25F);
  state.set_flags(0xDEADBEEF);
  state.set_full(true);
  const SendBufferRef buffer = pb::MakeSendBuffer(state);
  ASSERT_TRUE(buffer);
  const std::string payload = PayloadOf(buffer, 1001);
  EXPECT_EQ(payload, state.SerializeAsString());
  pb::S_STATE back;
  ASSERT_TRUE(back.ParseFromString(payload));
  EXPECT_EQ(back.tick(), state.tick());
  EXPECT_EQ(back.where().x(), 1.5F);
  EXPECT_EQ(back.where().y(), -2.25F);
  EXPECT_EQ(back.flags(), 0xDEADBEEFu);
  EXPECT_TRUE(back.full());

  // A default message is a packet of the header alone.
  const SendBufferRef empty = pb::MakeSendBuffer(pb::S_STATE());
  ASSERT_TRUE(empty);
  EXPECT_EQ(PayloadOf(empty, 1001), "");
}

TEST(ProtocolCodegenTest, MakeSendBufferRefusesPacketsOver65535Bytes) {
  // Tag (1) + length varint (3) + n bytes: n = 65527 makes 65531, the most a
  // packet holds.
  pb::S_BLOB blob;
  blob.set_data(std::string(65527, 'x'));
  const SendBufferRef largest = pb::MakeSendBuffer(blob);
  ASSERT_TRUE(largest);
  EXPECT_EQ(largest->WriteSize(), servercore::kMaxPacketLimit);
  pb::S_BLOB back;
  ASSERT_TRUE(back.ParseFromString(PayloadOf(largest, 2001)));
  EXPECT_EQ(back.data(), blob.data());

  blob.mutable_data()->push_back('y');
  EXPECT_FALSE(pb::MakeSendBuffer(blob)) << "null, never truncated";
  blob.set_data(std::string(200'000, 'z'));
  EXPECT_FALSE(pb::MakeSendBuffer(blob));
}

#ifdef SERVERCORE_HAVE_ALLOC_COUNTER
TEST(ProtocolCodegenTest, MakeSendBufferTakesNoHeapAllocationInSteadyState) {
  servercore::SendBufferManager::Instance().ReleaseThreadChunk();
  pb::S_STATE state;
  state.mutable_where()->set_x(3.0F);  // the submessage exists before counting
  std::array<SendBufferRef, 256> window;
  auto round = [&](uint32_t i) {
    state.set_tick(i);
    state.mutable_where()->set_y(static_cast<float>(i));
    state.set_full((i & 1) != 0);
    window[i % window.size()] = pb::MakeSendBuffer(state);
  };
  uint32_t i = 0;
  for (; i < 100'000; ++i) round(i);  // warm the pool

  const uint64_t before = servercore::test::AllocationCount();
  for (; i < 1'100'000; ++i) round(i);
  const uint64_t during = servercore::test::AllocationCount() - before;

  EXPECT_EQ(during, 0u) << "heap allocations in 1,000,000 MakeSendBuffer";
  EXPECT_TRUE(window[5]);
  window = {};
  servercore::SendBufferManager::Instance().ReleaseThreadChunk();
}
#endif

}  // namespace
}  // namespace codegen_test
