// The goodbye hook (Session::OnClosing, docs/DESIGN.md "Closing"): when the
// server closes a session for a reason of its own (protocol error, idle
// timeout, packet timeout, the service stopping, the application's
// Disconnect), the packet OnClosing returns is the last one the peer
// receives, written before the socket is shut down; it is not offered when
// the session goes as a slow receiver or the peer closed first; and a peer
// that does not read cannot hold the close beyond the drain deadline.
// On both backends.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <vector>

#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr uint16_t kBye = 99;
constexpr uint16_t kFlood = 2;   // client asks for a flood of this many KiB
constexpr uint16_t kBadId = 3;   // the session calls ProtocolError
constexpr uint16_t kGoAway = 4;  // the session calls Disconnect(kLocal)

// Echoes; answers kFlood with u32 KiB of 1 KiB packets; goodbye is packet
// kBye carrying the reason byte. Counts OnClosing calls per reason.
class GoodbyeSession : public PacketSession {
 public:
  explicit GoodbyeSession(
      std::array<std::atomic<int>, kDisconnectReasonCount>* calls)
      : PacketSession(4096), calls_(calls) {}

 protected:
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    if (id == kBadId) {
      ProtocolError("test: bad id");
    } else if (id == kGoAway) {
      Disconnect(DisconnectReason::kLocal);
    } else if (id == kFlood && payload.size() == 4) {
      uint32_t kib;
      std::memcpy(&kib, payload.data(), 4);
      const std::vector<std::byte> filler(1020, std::byte{7});
      for (uint32_t i = 0; i < kib; ++i) {
        if (!Send(MakePacket(1, filler))) break;
      }
    } else {
      Send(MakePacket(id, payload));
    }
  }
  SendBufferRef OnClosing(DisconnectReason reason) override {
    (*calls_)[static_cast<size_t>(reason)].fetch_add(1);
    const auto byte = static_cast<std::byte>(reason);
    return MakePacket(kBye, std::span(&byte, 1));
  }

 private:
  std::array<std::atomic<int>, kDisconnectReasonCount>* const calls_;
};

class GoodbyeTest : public BackendTest {
 protected:
  Service::SessionFactory Factory() {
    return [this] { return std::make_shared<GoodbyeSession>(&calls_); };
  }
  int Calls(DisconnectReason reason) const {
    return calls_[static_cast<size_t>(reason)].load();
  }
  int AllCalls() const {
    int n = 0;
    for (const auto& c : calls_) n += c.load();
    return n;
  }
  std::array<std::atomic<int>, kDisconnectReasonCount> calls_{};
};

// Reads packets until the connection ends; every packet that arrived whole.
std::vector<Packet> ReadToEnd(TestClient& client,
                              milliseconds timeout = milliseconds(10'000)) {
  std::vector<Packet> packets;
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto packet = client.ReadPacket(
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
    if (!packet) break;
    packets.push_back(std::move(*packet));
  }
  return packets;
}

// The last packet read is the goodbye for `reason`, and the socket closed.
void ExpectGoodbye(TestClient& client, DisconnectReason reason) {
  const std::vector<Packet> packets = ReadToEnd(client);
  ASSERT_FALSE(packets.empty()) << "nothing before the close";
  EXPECT_EQ(packets.back().id, kBye);
  ASSERT_EQ(packets.back().payload.size(), 1u);
  EXPECT_EQ(packets.back().payload[0], static_cast<std::byte>(reason));
  EXPECT_TRUE(client.WaitForClose(std::chrono::seconds(5)));
}

void ConnectAndEcho(TestClient& client, uint16_t port) {
  ASSERT_TRUE(client.Connect(port));
  ASSERT_TRUE(client.SendPacket(1, SequencedPayload(0, 0)));
  ASSERT_TRUE(client.ReadPacket().has_value());
}

TEST_P(GoodbyeTest, ProtocolErrorSaysGoodbyeAfterTheReplies) {
  SERVERCORE_START_SERVER(server, Factory(), Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  // An echo, then the bad packet, in one write: the echo comes first.
  std::vector<std::byte> bytes = EncodePacket(1, SequencedPayload(0, 1));
  const std::vector<std::byte> bad = EncodePacket(kBadId, {});
  bytes.insert(bytes.end(), bad.begin(), bad.end());
  ASSERT_TRUE(client.SendAll(bytes));
  const std::vector<Packet> packets = ReadToEnd(client);
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(packets[0].id, 1);
  EXPECT_EQ(packets[1].id, kBye);
  EXPECT_EQ(packets[1].payload[0],
            static_cast<std::byte>(DisconnectReason::kProtocolError));
  EXPECT_EQ(Calls(DisconnectReason::kProtocolError), 1);
}

TEST_P(GoodbyeTest, FramingErrorSaysGoodbye) {
  SERVERCORE_START_SERVER(server, Factory(), Options());
  TestClient client;
  ConnectAndEcho(client, server->port());
  const std::byte too_small[4] = {std::byte{2}, std::byte{0}, std::byte{1},
                                  std::byte{0}};  // size 2
  ASSERT_TRUE(client.SendAll(too_small));
  ExpectGoodbye(client, DisconnectReason::kProtocolError);
}

TEST_P(GoodbyeTest, IdleTimeoutSaysGoodbye) {
  ServiceOptions options = Options();
  options.idle_timeout = milliseconds(300);
  SERVERCORE_START_SERVER(server, Factory(), options);
  TestClient client;
  ConnectAndEcho(client, server->port());
  ExpectGoodbye(client, DisconnectReason::kIdleTimeout);
}

TEST_P(GoodbyeTest, PacketTimeoutSaysGoodbye) {
  ServiceOptions options = Options();
  options.packet_timeout = milliseconds(300);
  SERVERCORE_START_SERVER(server, Factory(), options);
  TestClient client;
  ConnectAndEcho(client, server->port());
  const std::vector<std::byte> packet = EncodePacket(1, SequencedPayload(0, 1));
  ASSERT_TRUE(client.SendAll(std::span(packet).first(7)));  // half a packet
  ExpectGoodbye(client, DisconnectReason::kPacketTimeout);
}

TEST_P(GoodbyeTest, StoppingTheServiceSaysGoodbye) {
  SERVERCORE_START_SERVER(server, Factory(), Options());
  std::vector<TestClient> clients(4);
  for (TestClient& c : clients) ConnectAndEcho(c, server->port());
  server->Stop();
  for (TestClient& c : clients) {
    ExpectGoodbye(c, DisconnectReason::kServiceStopped);
  }
  EXPECT_EQ(Calls(DisconnectReason::kServiceStopped), 4);
}

TEST_P(GoodbyeTest, ApplicationDisconnectSaysGoodbye) {
  SERVERCORE_START_SERVER(server, Factory(), Options());
  TestClient client;
  ConnectAndEcho(client, server->port());
  ASSERT_TRUE(client.SendPacket(kGoAway, {}));
  ExpectGoodbye(client, DisconnectReason::kLocal);
}

TEST_P(GoodbyeTest, PeerClosingFirstGetsNoGoodbye) {
  SERVERCORE_START_SERVER(server, Factory(), Options());
  {
    TestClient client;
    ConnectAndEcho(client, server->port());
  }
  ASSERT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }));
  server->Stop();
  EXPECT_EQ(AllCalls(), 0);
}

// A slow receiver's output is full: nothing more is queued, no goodbye.
TEST_P(GoodbyeTest, SlowReceiverGetsNoGoodbye) {
  ServiceOptions options = Options();
  options.max_pending_bytes = 64 * 1024;
  SERVERCORE_START_SERVER(server, Factory(), options);
  TestClient client;
  client.SetReceiveBuffer(4096);
  ConnectAndEcho(client, server->port());
  const uint32_t kib = 4096;  // 4 MiB at once: far past 64 KiB
  ASSERT_TRUE(client.SendPacket(kFlood, std::as_bytes(std::span(&kib, 1))));
  ASSERT_TRUE(WaitFor([&] {
    return server->GetStats().closed(DisconnectReason::kSlowReceiver) == 1;
  }));
  for (const Packet& p : ReadToEnd(client)) EXPECT_NE(p.id, kBye);
  EXPECT_EQ(AllCalls(), 0);
}

// The goodbye waits behind queued output for a peer that does not read, but
// not for ever: the close completes within the drain deadline (2 s).
TEST_P(GoodbyeTest, PeerThatDoesNotReadCannotHoldTheClose) {
  ServiceOptions options = Options();
  options.idle_timeout = milliseconds(300);
  SERVERCORE_START_SERVER(server, Factory(), options);
  TestClient client;
  client.SetReceiveBuffer(4096);
  ConnectAndEcho(client, server->port());
  const uint32_t kib = 2048;  // under max_pending, far over the socket buffers
  ASSERT_TRUE(client.SendPacket(kFlood, std::as_bytes(std::span(&kib, 1))));
  const auto start = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return server->SessionCount() == 0; },
                      std::chrono::seconds(10)));
  const auto took = Clock::now() - start;
  // Idle timeout (0.3 s, swept within a quarter) plus the 2 s drain, with
  // over 2.5 s of slack for a loaded machine: a drain that ran to its end
  // rather than to its deadline never ends at all.
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_EQ(Calls(DisconnectReason::kIdleTimeout), 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, GoodbyeTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
