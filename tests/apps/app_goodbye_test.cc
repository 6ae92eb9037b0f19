// docs/PROTOCOL.md, "Goodbye", from the outside: a client that has sent at
// least one packet with an id of 1000 or more (valid or not) receives S_BYE
// (id 1005, reason 1 protocol error, 2 idle timeout, 3 packet timeout,
// 4 server stopping) as its last packet when GameServer closes it for a
// reason of its own; a client that never did, a slow receiver and a client
// that closes first get none.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "tests/apps/app_fixture.h"
#include "tests/apps/app_test_util.h"

namespace servercore::test {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

using GoodbyeAppTest = GameServerTestBase<std::string>;

struct Bye {
  uint64_t reason = 0;
  std::string detail;
};

bool ReadVarint(std::span<const std::byte> m, size_t& at, uint64_t& out) {
  out = 0;
  for (int shift = 0; shift < 64 && at < m.size(); shift += 7) {
    const auto b = static_cast<uint8_t>(m[at++]);
    out |= uint64_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// S_BYE's payload (uint32 reason = 1; string detail = 2), by hand.
std::optional<Bye> ParseBye(std::span<const std::byte> m) {
  Bye bye;
  size_t at = 0;
  while (at < m.size()) {
    uint64_t tag = 0;
    uint64_t value = 0;
    if (!ReadVarint(m, at, tag) || !ReadVarint(m, at, value)) return {};
    if (tag == (1 << 3 | 0)) {
      bye.reason = value;
    } else if (tag == (2 << 3 | 2) && value <= m.size() - at) {
      bye.detail = Text(m.subspan(at, value));
      at += value;
    } else {
      return std::nullopt;
    }
  }
  return bye;
}

// Every whole packet until the server closes the connection.
std::vector<Packet> ReadToEnd(TestClient& client) {
  std::vector<Packet> packets;
  const auto deadline = Clock::now() + Seconds(10);
  while (Clock::now() < deadline) {
    auto packet = client.ReadPacket(
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
    if (!packet) break;
    packets.push_back(std::move(*packet));
  }
  return packets;
}

// A C_PING, and its S_PONG read: the client now speaks typed packets.
void Ping(TestClient& client) {
  ASSERT_TRUE(client.SendPacket(kCPing, ProtoVarint(1, 12345)));
  auto pong = client.ReadPacket(Seconds(5));
  ASSERT_TRUE(pong && pong->id == kSPong);
}

// The client's last packet is S_BYE with `reason`, then the close.
void ExpectBye(TestClient& client, uint64_t reason) {
  const std::vector<Packet> packets = ReadToEnd(client);
  ASSERT_FALSE(packets.empty()) << "closed without S_BYE";
  ASSERT_EQ(packets.back().id, kSBye);
  const std::optional<Bye> bye = ParseBye(packets.back().payload);
  ASSERT_TRUE(bye) << "S_BYE does not parse";
  EXPECT_EQ(bye->reason, reason);
  EXPECT_FALSE(bye->detail.empty());
  for (size_t i = 0; i + 1 < packets.size(); ++i) {
    EXPECT_NE(packets[i].id, kSBye) << "S_BYE before the last packet";
  }
  EXPECT_TRUE(client.WaitForClose(Seconds(5)));
}

void ExpectNoBye(TestClient& client) {
  for (const Packet& p : ReadToEnd(client)) EXPECT_NE(p.id, kSBye);
  EXPECT_TRUE(client.WaitForClose(Seconds(5)));
}

TEST_P(GoodbyeAppTest, ProtocolErrorGetsByeReason1) {
  START_SERVER();
  TestClient client;
  ASSERT_TRUE(ConnectReady(client, server_.port()));
  Ping(client);
  ASSERT_TRUE(client.SendPacket(kSEcho, Bytes("not from a client")));
  ExpectBye(client, 1);
}

// A client that joins a room, sends a bad packet and closes its sending
// side, all at once: the room's S_JOIN may still be owed when the end of its
// stream is read, yet the protocol error, which came first, is what it is
// told (the end of the stream does not replace it).
TEST_P(GoodbyeAppTest, ErrorBeforeTheEndOfTheStreamGetsByeReason1) {
  START_SERVER();
  for (uint32_t round = 1; round <= 10; ++round) {
    TestClient client;
    ASSERT_TRUE(ConnectReady(client, server_.port()));
    std::vector<std::byte> bytes = EncodePacket(kCPing, ProtoVarint(1, 1));
    Append(bytes, EncodePacket(kCJoin, U32(round)));
    Append(bytes, EncodePacket(kSEcho, Bytes("not from a client")));
    ASSERT_TRUE(client.SendAll(bytes));
    ASSERT_EQ(::shutdown(client.fd(), SHUT_WR), 0);
    SCOPED_TRACE(round);
    ASSERT_NO_FATAL_FAILURE(ExpectBye(client, 1));
  }
}

// A client slow to read that sent more after its bad packet: the server
// stops reading at the bad packet, so those bytes stay unread, and a socket
// closed with unread input is reset, which throws away whatever the client
// has not read yet of the replies and the goodbye. The server must keep the
// connection until the client has it all, and close it in order: every
// echo, then S_BYE when the client spoke typed packets, then the end.
constexpr size_t kSlowEchoes = 12;

// About 24 KiB of echoes (more than the client's buffer takes, all of it
// within the server's socket buffer, so the server has written it all while
// the client has not read it), then the bad packet (later: the close finds
// nothing left to write), and more once the server stopped reading; read
// after that. Every packet the client then gets.
std::vector<Packet> SlowReaderSendsAfterItsError(TestClient& client) {
  const std::vector<std::byte> payload(2000, std::byte{0x5a});
  for (size_t i = 0; i < kSlowEchoes; ++i) {
    EXPECT_TRUE(client.SendPacket(kCEcho, payload));
  }
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_TRUE(client.SendPacket(kSEcho, Bytes("not from a client")));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_TRUE(client.SendPacket(kCEcho, Bytes("never read")));
  std::this_thread::sleep_for(milliseconds(300));
  return ReadToEnd(client);
}

TEST_P(GoodbyeAppTest, ByeReachesASlowReaderThatSentMoreAfterItsError) {
  START_SERVER();
  TestClient client;
  client.SetReceiveBuffer(4096);
  ASSERT_TRUE(ConnectReady(client, server_.port()));
  Ping(client);
  const std::vector<Packet> packets = SlowReaderSendsAfterItsError(client);
  ASSERT_EQ(packets.size(), kSlowEchoes + 1)
      << "the connection was reset before the client read it all";
  for (size_t i = 0; i < kSlowEchoes; ++i) {
    EXPECT_EQ(packets[i].id, kSEcho) << i;
  }
  EXPECT_EQ(packets.back().id, kSBye);
  EXPECT_TRUE(client.WaitForClose(Seconds(5)));
}

// The same without typed packets, so without S_BYE: the replies were all
// written before the close began, and the connection must not be shut down
// for reading while the client still sends (on such a socket new data is
// answered with a reset).
TEST_P(GoodbyeAppTest, RepliesReachASlowReaderThatSentMoreAfterItsError) {
  START_SERVER();
  TestClient client;
  client.SetReceiveBuffer(4096);
  ASSERT_TRUE(ConnectReady(client, server_.port()));
  const std::vector<Packet> packets = SlowReaderSendsAfterItsError(client);
  ASSERT_EQ(packets.size(), kSlowEchoes)
      << "the connection was reset before the client read it all";
  for (const Packet& p : packets) EXPECT_EQ(p.id, kSEcho);
  EXPECT_TRUE(client.WaitForClose(Seconds(5)));
}

// An id of 1000 or more counts even when it is itself the protocol error.
TEST_P(GoodbyeAppTest, InvalidTypedIdCountsAndGetsBye) {
  START_SERVER();
  TestClient client;
  ASSERT_TRUE(ConnectReady(client, server_.port()));
  ASSERT_TRUE(client.SendPacket(kSPong, {}));
  ExpectBye(client, 1);
  TestClient garbled;
  ASSERT_TRUE(ConnectReady(garbled, server_.port()));
  ASSERT_TRUE(garbled.SendPacket(kCPing, Bytes("\xff\xff")));  // cut varint
  ExpectBye(garbled, 1);
  // A header whose size breaks the framing still carries its id.
  for (uint16_t size : {uint16_t{2}, uint16_t{5000}}) {
    TestClient bad_size;
    ASSERT_TRUE(ConnectReady(bad_size, server_.port()));
    ASSERT_TRUE(bad_size.SendAll(RawHeader(size, kCMove)));
    ExpectBye(bad_size, 1);
  }
}

TEST_P(GoodbyeAppTest, IdleTimeoutGetsByeReason2) {
  START_SERVER("--idle-timeout", "1", "--packet-timeout", "0");
  TestClient client;
  ASSERT_TRUE(ConnectReady(client, server_.port()));
  Ping(client);
  ExpectBye(client, 2);
}

TEST_P(GoodbyeAppTest, PacketTimeoutGetsByeReason3) {
  START_SERVER("--idle-timeout", "0", "--packet-timeout", "1");
  TestClient client;
  ASSERT_TRUE(ConnectReady(client, server_.port()));
  Ping(client);
  ASSERT_TRUE(client.SendAll(RawHeader(100, kCEcho)));  // 4 of 100 bytes
  ExpectBye(client, 3);
}

// The typed packet that earns the goodbye may be the very one that timed
// out: its header carried the id, and "valid or not" counts. Guards a bug:
// a client whose only typed packet was the unfinished one was closed without
// S_BYE (the id of a begun packet was never noted). A begun C_ECHO earns
// none.
TEST_P(GoodbyeAppTest, PacketTimeoutOfTheFirstTypedPacketGetsByeReason3) {
  START_SERVER("--idle-timeout", "0", "--packet-timeout", "1");
  TestClient ping, move, split, echo;
  for (TestClient* client : {&ping, &move, &split, &echo}) {
    ASSERT_TRUE(ConnectReady(*client, server_.port()));
  }
  ASSERT_TRUE(ping.SendAll(RawHeader(100, kCPing)));  // 4 of 100 bytes
  auto header = RawHeader(100, kCMove);
  header.push_back(std::byte{0x0D});  // and the first byte of the payload
  ASSERT_TRUE(move.SendAll(header));
  // The header itself in two reads.
  const auto halves = RawHeader(100, kCMove);
  ASSERT_TRUE(split.SendAll(std::span(halves).first(2)));
  std::this_thread::sleep_for(milliseconds(100));
  ASSERT_TRUE(split.SendAll(std::span(halves).subspan(2)));
  ASSERT_TRUE(echo.SendAll(RawHeader(100, kCEcho)));
  ExpectBye(ping, 3);
  ExpectBye(move, 3);
  ExpectBye(split, 3);
  ExpectNoBye(echo);
}

TEST_P(GoodbyeAppTest, ServerStoppingGetsByeReason4) {
  START_SERVER();
  TestClient typed;
  TestClient plain;
  ASSERT_TRUE(ConnectReady(typed, server_.port()));
  ASSERT_TRUE(ConnectReady(plain, server_.port()));
  Ping(typed);
  server_.process().Signal(SIGTERM);
  ExpectBye(typed, 4);
  ExpectNoBye(plain);
  ExpectCleanStop(server_);
}

// Clients of echo and chat alone are closed as before, without S_BYE.
TEST_P(GoodbyeAppTest, ClientThatNeverSentATypedPacketGetsNoBye) {
  START_SERVER("--idle-timeout", "1", "--packet-timeout", "0");
  TestClient bad;
  TestClient idle;
  ASSERT_TRUE(ConnectReady(bad, server_.port()));
  ASSERT_TRUE(ConnectReady(idle, server_.port()));
  ASSERT_TRUE(bad.SendPacket(kSEcho, Bytes("x")));
  ExpectNoBye(bad);
  ExpectNoBye(idle);  // after its idle timeout
}

// A typed client that closed its sending side first gets its replies, then
// the server's close, without S_BYE: it closed first. Also after the server
// saw a whole typed packet and, in the same write, the end of the stream.
TEST_P(GoodbyeAppTest, ClientThatClosedFirstGetsNoBye) {
  START_SERVER();
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE(round);
    TestClient client;
    ASSERT_TRUE(ConnectReady(client, server_.port()));
    if (round % 2 == 0) Ping(client);
    ASSERT_TRUE(client.SendPacket(kCPing, ProtoVarint(1, 9)));
    ASSERT_EQ(::shutdown(client.fd(), SHUT_WR), 0);
    const std::vector<Packet> packets = ReadToEnd(client);
    ASSERT_EQ(packets.size(), 1u) << "the S_PONG, and nothing after it";
    EXPECT_EQ(packets[0].id, kSPong);
    EXPECT_TRUE(client.WaitForClose(Seconds(5)));
  }
}

// A slow receiver's output is full: it is closed without S_BYE.
// A packet begun that the memory budget cannot hold (the sessions' receive
// tails at half of it) closes its session, which owes no output: that is
// not a slow receiver, so a client that spoke typed packets is told, with
// reason 3 (a packet that will never be completed) and the detail "memory
// budget". Sessions whose packets were held finish them and lose nothing.
// (An outside probe found 72 of 200 such clients closed without S_BYE.)
TEST_P(GoodbyeAppTest, PacketTheBudgetCannotHoldGetsByeReason3) {
  START_SERVER("--max-memory", "1048576");
  constexpr size_t kClients = 200;  // 4 KiB tails: 800 KB against 512 KiB
  constexpr uint16_t kSize = 4096;
  constexpr size_t kBegun = 4000;
  std::vector<TestClient> clients(kClients);
  for (TestClient& client : clients) {
    ASSERT_TRUE(ConnectReady(client, server_.port()));
    ASSERT_NO_FATAL_FAILURE(Ping(client));
  }
  std::vector<std::byte> packet = RawHeader(kSize, kCEcho);
  packet.resize(kSize, std::byte{'e'});
  const auto begun = std::span(packet).first(kBegun);
  const auto rest = std::span(packet).subspan(kBegun);
  for (TestClient& client : clients) ASSERT_TRUE(client.SendAll(begun));
  // Time for the server to read them all: sent at once, on io_uring they
  // find the few provided buffers of so small a budget taken, and would
  // otherwise be read together with their ends, whole, needing no tail.
  std::this_thread::sleep_for(milliseconds(1000));
  // Each client now finishes its packet: one held gets its echo; one cut
  // has S_BYE waiting (what it sends now is thrown away).
  for (TestClient& client : clients) (void)client.SendAll(rest);
  size_t echoed = 0;
  size_t told = 0;
  for (size_t i = 0; i < kClients; ++i) {
    auto reply = clients[i].ReadPacket(Seconds(10));
    ASSERT_TRUE(reply) << "client " << i << ": neither echo nor S_BYE";
    if (reply->id == kSEcho) {
      EXPECT_EQ(reply->payload.size(), kSize - 4u) << "client " << i;
      ++echoed;
      continue;
    }
    ASSERT_EQ(reply->id, kSBye) << "client " << i;
    const std::optional<Bye> bye = ParseBye(reply->payload);
    ASSERT_TRUE(bye) << "S_BYE does not parse";
    EXPECT_EQ(bye->reason, 3u) << "client " << i;
    EXPECT_EQ(bye->detail, "memory budget") << "client " << i;
    EXPECT_TRUE(clients[i].WaitForClose(Seconds(5))) << "client " << i;
    ++told;
  }
  std::printf("[ budget ] %zu echoed, %zu told S_BYE\n", echoed, told);
  EXPECT_GT(told, 0u) << "the budget cut nobody: the test proves nothing";
  EXPECT_GT(echoed, 0u);
  ASSERT_TRUE(server_.Stop(SIGTERM, Seconds(10)).has_value());
  server_.process().WaitForOutputEnd(Seconds(10));
  EXPECT_NE(server_.Output().find("budget " + std::to_string(told) + ","),
            std::string::npos)
      << server_.Output();
}

TEST_P(GoodbyeAppTest, SlowReceiverGetsNoBye) {
  START_SERVER("--max-pending", "65536");
  TestClient slow;
  slow.SetReceiveBuffer(4096);
  ASSERT_TRUE(ConnectReady(slow, server_.port()));
  Ping(slow);
  TestClient sender;
  ASSERT_TRUE(ConnectReady(sender, server_.port()));
  // 4 MB of chat to room 0, which `slow` does not read; the sender reads
  // its own copies, so only `slow` falls behind.
  const std::vector<std::byte> message(4000, std::byte{'m'});
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(sender.SendPacket(kCChat, message)) << i;
    auto chat = sender.ReadPacket(Seconds(5));
    ASSERT_TRUE(chat && chat->id == kSChat) << i;
  }
  ExpectNoBye(slow);
  ASSERT_TRUE(server_.Stop(SIGTERM, Seconds(10)).has_value());
  server_.process().WaitForOutputEnd(Seconds(10));
  EXPECT_NE(server_.Output().find("slow 1,"), std::string::npos)
      << server_.Output();
}

INSTANTIATE_TEST_SUITE_P(Backends, GoodbyeAppTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

}  // namespace
}  // namespace servercore::test
