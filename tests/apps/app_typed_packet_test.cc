// docs/PROTOCOL.md "Typed packets" checked from the outside against the real
// GameServer: C_PING is answered with S_PONG to the sender alone, a valid
// C_MOVE is accepted, and a client that never sends typed packets sees none.
// The protobuf payloads are encoded and decoded by hand (varints and fixed32
// floats, app_test_util.h), as a client written from the contract could.
// Bad typed input (parse errors, server ids, C_MOVE bounds) is in
// app_bad_input_test.cc.
#include <chrono>
#include <string>
#include <vector>

#include "tests/apps/app_fixture.h"

namespace servercore::test {
namespace {

using TypedPacketTest = GameServerTestBase<std::string>;

uint64_t UnixMicrosNow() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// Sends C_PING with `client_time_us` and reads the reply; checks it is an
// S_PONG carrying that time and a server time between `before` and now
// (a second of slack each way for clock steps).
void ExpectPong(TestClient& client, uint64_t client_time_us,
                const std::string& what) {
  const uint64_t before = UnixMicrosNow();
  ASSERT_TRUE(client.SendPacket(kCPing, ProtoVarint(1, client_time_us)))
      << what;
  auto reply = client.ReadPacket(Seconds(10));
  ASSERT_TRUE(reply.has_value()) << what << ": no reply to C_PING";
  const uint64_t after = UnixMicrosNow();
  ASSERT_EQ(reply->id, kSPong) << what;
  const auto fields = ParseVarintFields(reply->payload);
  ASSERT_TRUE(fields.has_value()) << what << ": S_PONG does not parse";
  const uint64_t echoed = fields->contains(1) ? fields->at(1) : 0;
  EXPECT_EQ(echoed, client_time_us) << what;
  ASSERT_TRUE(fields->contains(2)) << what << ": no server_time_us";
  const uint64_t server = fields->at(2);
  constexpr uint64_t kSlack = 1'000'000;
  EXPECT_GE(server + kSlack, before) << what;
  EXPECT_LE(server, after + kSlack) << what;
  for (const auto& [field, value] : *fields) {
    EXPECT_TRUE(field == 1 || field == 2) << what << ": field " << field;
  }
}

TEST_P(TypedPacketTest, PingIsAnsweredWithPong) {
  START_SERVER();
  TestClient client;
  ASSERT_TRUE(ConnectReady(client, server_.port()));
  ExpectPong(client, 1, "time 1");
  ExpectPong(client, UnixMicrosNow(), "time now");
  ExpectPong(client, 0xFEDCBA9876543210ULL, "time of 64 bits");
  ExpectPong(client, 0, "time 0 (field omitted)");
  // An empty payload is a C_PING of defaults: time 0.
  ASSERT_TRUE(client.SendPacket(kCPing, {}));
  auto reply = client.ReadPacket(Seconds(10));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->id, kSPong);
  // Fields the server does not know are skipped, as protobuf does.
  auto ping = ProtoVarint(1, 77);
  Append(ping, ProtoVarint(9, 5));
  ASSERT_TRUE(client.SendPacket(kCPing, ping));
  reply = client.ReadPacket(Seconds(10));
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->id, kSPong);
  const auto fields = ParseVarintFields(reply->payload);
  ASSERT_TRUE(fields.has_value());
  EXPECT_EQ(fields->at(1), 77u);
}

TEST_P(TypedPacketTest, PongGoesToTheSenderOnly) {
  START_SERVER();
  TestClient sender, roommate;
  ASSERT_TRUE(ConnectReady(roommate, server_.port()));
  ASSERT_TRUE(ConnectReady(sender, server_.port()));  // both in room 0
  std::vector<std::byte> pings;
  for (uint64_t t = 1; t <= 50; ++t) {
    Append(pings, EncodePacket(kCPing, ProtoVarint(1, t)));
  }
  ASSERT_TRUE(sender.SendAll(pings));  // one write
  for (uint64_t t = 1; t <= 50; ++t) {
    auto reply = sender.ReadPacket(Seconds(10));
    ASSERT_TRUE(reply.has_value()) << "pong " << t;
    ASSERT_EQ(reply->id, kSPong);
    const auto fields = ParseVarintFields(reply->payload);
    ASSERT_TRUE(fields.has_value());
    EXPECT_EQ(fields->at(1), t) << "pongs in ping order";
  }
  ExpectNothingPending(roommate, "roommate of a pinger");
}

TEST_P(TypedPacketTest,
       ValidMovesAreAcceptedAndClientsWithoutTypedPacketsSeeNone) {
  START_SERVER();
  TestClient mover, chatter;
  ASSERT_TRUE(ConnectReady(chatter, server_.port()));
  ASSERT_TRUE(ConnectReady(mover, server_.port()));
  std::vector<std::vector<std::byte>> moves;
  moves.push_back({});  // all defaults: (0, 0), seq 0
  for (auto [x, y] : std::vector<std::pair<float, float>>{
           {1.5F, -2.25F}, {10000.0F, -10000.0F}, {-0.0F, 9999.9F}}) {
    moves.push_back(MovePayload(x, y, static_cast<uint32_t>(moves.size())));
  }
  for (const auto& move : moves) {
    ASSERT_TRUE(mover.SendPacket(kCMove, move));
  }
  // The mover is in the world now: snapshots (app_world_test.cc checks
  // them) until its last move shows; the session is still open.
  for (bool seen = false; !seen;) {
    auto packet = mover.ReadPacket(Seconds(10));
    ASSERT_TRUE(packet.has_value());
    ASSERT_EQ(packet->id, kSSnapshot);
    auto snapshot = ParseSnapshot(packet->payload);
    ASSERT_TRUE(snapshot.has_value());
    for (const SnapshotEntity& e : snapshot->entities) {
      seen = seen || (e.last_seq == 3 && e.x == -0.0F && e.y == 9999.9F);
    }
  }

  // The chatter never sends a typed packet: echo and chat as before, and
  // nothing with an id of 1000 or more reaches it.
  ExpectNothingPending(chatter, "chatter");
  const auto chat_id = ChatForId(chatter, Bytes("hello"));
  ASSERT_TRUE(chat_id.has_value());
  for (;;) {  // the mover may get a snapshot between
    auto packet = mover.ReadPacket(Seconds(10));
    ASSERT_TRUE(packet.has_value());
    if (packet->id == kSSnapshot) continue;
    EXPECT_EQ(packet->id, kSChat);
    break;
  }
  ExpectNothingPending(chatter, "chatter");
}

INSTANTIATE_TEST_SUITE_P(Backends, TypedPacketTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

}  // namespace
}  // namespace servercore::test
