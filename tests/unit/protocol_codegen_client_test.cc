// protoc-gen-servercore's client side (ROLE client in servercore_add_protocol)
// for tests/unit/protocol/codegen_test.proto: Dispatch takes the server's
// messages (S_*) to their handlers and refuses the client's own ids, and
// MakeSendBuffer builds the client's messages (C_*).
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "codegen_test.packets.h"
#include "servercore/packet_framer.h"
#include "servercore/typed_packet.h"

namespace codegen_test {

// The session type the handlers take (SESSION in servercore_add_protocol).
class FakeClient {
 public:
  std::vector<uint64_t> ticks;
  std::vector<size_t> blob_sizes;
};

namespace pb {

void Handle_S_STATE(FakeClient& client, const S_STATE& message) {
  client.ticks.push_back(message.tick());
}

void Handle_S_BLOB(FakeClient& client, const S_BLOB& message) {
  client.blob_sizes.push_back(message.data().size());
}

}  // namespace pb

namespace {

using servercore::DispatchResult;

std::vector<std::byte> Serialize(const google::protobuf::MessageLite& m) {
  const std::string s = m.SerializeAsString();
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

TEST(ProtocolCodegenClientTest, DispatchTakesServerMessages) {
  FakeClient client;
  pb::S_STATE state;
  state.set_tick(99);
  EXPECT_EQ(pb::Dispatch(client, pb::ids::S_STATE, Serialize(state)),
            DispatchResult::kHandled);
  pb::S_BLOB blob;
  blob.set_data("abc");
  EXPECT_EQ(pb::Dispatch(client, pb::ids::S_BLOB, Serialize(blob)),
            DispatchResult::kHandled);
  const std::vector<std::byte> cut = {std::byte{0x08}, std::byte{0x80}};
  EXPECT_EQ(pb::Dispatch(client, pb::ids::S_STATE, cut),
            DispatchResult::kParseError);
  EXPECT_EQ(client.ticks, std::vector<uint64_t>{99});
  EXPECT_EQ(client.blob_sizes, std::vector<size_t>{3});
}

TEST(ProtocolCodegenClientTest, ClientIdsAreNotDispatched) {
  FakeClient client;
  for (uint16_t id : {uint16_t{0}, pb::ids::C_HELLO, pb::ids::C_VALUE}) {
    EXPECT_EQ(pb::Dispatch(client, id, {}), DispatchResult::kUnknownId)
        << "id " << id;
  }
  EXPECT_TRUE(client.ticks.empty());
}

TEST(ProtocolCodegenClientTest, MakeSendBufferBuildsClientMessages) {
  pb::C_HELLO hello;
  hello.set_number(7);
  hello.set_name("bob");
  const servercore::SendBufferRef buffer = pb::MakeSendBuffer(hello);
  ASSERT_TRUE(buffer);
  const auto data = buffer->Data();
  ASSERT_GE(data.size(), servercore::kPacketHeaderSize);
  EXPECT_EQ(servercore::LoadU16(data.data()), data.size());
  EXPECT_EQ(servercore::LoadU16(data.data() + 2), pb::ids::C_HELLO);
  pb::C_HELLO back;
  ASSERT_TRUE(back.ParseFromArray(
      data.data() + servercore::kPacketHeaderSize,
      static_cast<int>(data.size() - servercore::kPacketHeaderSize)));
  EXPECT_EQ(back.number(), 7u);
  EXPECT_EQ(back.name(), "bob");
}

}  // namespace
}  // namespace codegen_test
