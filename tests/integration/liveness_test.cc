// Liveness (docs/PROTOCOL.md, "Liveness"): ServiceOptions::idle_timeout
// closes a session that completes no packet for that long (kIdleTimeout);
// packet_timeout closes one that began a packet and did not finish it
// (kPacketTimeout), the slowloris case, whether it went silent or trickles
// the packet a byte at a time. Sessions that keep talking are left alone.
// Both run on each worker's periodic sweep, so a session goes within about a
// quarter of its timeout late.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class LivenessTest : public BackendTest {
 protected:
  ServiceOptions Timeouts(milliseconds idle, milliseconds packet) const {
    ServiceOptions options = Options();
    options.idle_timeout = idle;
    options.packet_timeout = packet;
    return options;
  }
};

// The one session of `tracker` ends with `reason`, counted by the server.
void ExpectClosedFor(SessionTracker& tracker, ServerService& server,
                     DisconnectReason reason) {
  ASSERT_TRUE(WaitFor([&] { return tracker.Sessions()[0]->disconnects(); }));
  EXPECT_EQ(tracker.Sessions()[0]->reason(), reason);
  EXPECT_EQ(server.GetStats().closed(reason), 1u);
}

// Connects a client and waits until its session has answered one echo (so
// the session is attached and its clocks started). `sent_at`, if given, is
// the time just before the echo was sent: no later than the server's clock
// for the session's last progress, however slowly the echo came back.
void ConnectAndEcho(TestClient& client, uint16_t port, uint32_t tag,
                    Clock::time_point* sent_at = nullptr) {
  ASSERT_TRUE(client.Connect(port));
  if (sent_at != nullptr) *sent_at = Clock::now();
  ASSERT_TRUE(client.SendPacket(1, SequencedPayload(tag, 0)));
  ASSERT_TRUE(client.ReadPacket().has_value());
}

// The longest time between two of the client's sends: on a machine that
// stalled the client itself for about a timeout, a close proves nothing
// about the server, and the test is skipped rather than failed.
class SendGaps {
 public:
  void Sent() {
    const Clock::time_point now = Clock::now();
    if (last_ != Clock::time_point{})
      longest_ = std::max(longest_, now - last_);
    last_ = now;
  }
  bool StalledNear(milliseconds timeout) const {
    return longest_ >= timeout * 8 / 10;
  }
  long long longest_ms() const {
    return std::chrono::duration_cast<milliseconds>(longest_).count();
  }

 private:
  Clock::time_point last_{};
  Clock::duration longest_{};
};

TEST_P(LivenessTest, SilentSessionIsClosedAfterTheIdleTimeout) {
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(),
                          Timeouts(milliseconds(400), milliseconds(0)));
  TestClient client;
  Clock::time_point quiet_since;
  ConnectAndEcho(client, server->port(), 0, &quiet_since);
  ASSERT_TRUE(client.WaitForClose(std::chrono::seconds(5)));
  const auto after = Clock::now() - quiet_since;
  // Not before the timeout: our clock started before the server's, which it
  // reads once per round of its loop (so 100 ms of slack for a worker that
  // read it just before our packet came). And within the timeout plus
  // sweeps.
  EXPECT_GE(after, milliseconds(300));
  EXPECT_LT(after, milliseconds(2500));
  ExpectClosedFor(tracker, *server, DisconnectReason::kIdleTimeout);
}

TEST_P(LivenessTest, SessionThatKeepsSendingPacketsStays) {
  SessionTracker tracker;
  // The idle timeout is ten send intervals: a loaded, sanitized run may
  // stretch one interval several times over, and must not be cut for it.
  constexpr milliseconds kTimeout(1000);
  SERVERCORE_START_SERVER(server, tracker.Factory(),
                          Timeouts(kTimeout, kTimeout));
  TestClient client;
  ConnectAndEcho(client, server->port(), 0);
  // Three idle timeouts long, one whole packet every 100 ms.
  SendGaps gaps;
  for (uint32_t seq = 1; seq <= 30; ++seq) {
    std::this_thread::sleep_for(milliseconds(100));
    gaps.Sent();
    ASSERT_TRUE(client.SendPacket(1, SequencedPayload(0, seq)));
    if (!client.ReadPacket().has_value()) {
      if (gaps.StalledNear(kTimeout)) {
        GTEST_SKIP() << "the client itself was stalled " << gaps.longest_ms()
                     << " ms between two sends";
      }
      FAIL() << "closed at seq " << seq << ", sends at most "
             << gaps.longest_ms() << " ms apart";
    }
  }
  EXPECT_EQ(tracker.Sessions()[0]->disconnects(), 0);
}

TEST_P(LivenessTest, HalfSentPacketIsClosedAfterThePacketTimeout) {
  SessionTracker tracker;
  // No idle timeout: only the packet timeout can close it.
  SERVERCORE_START_SERVER(server, tracker.Factory(),
                          Timeouts(milliseconds(0), milliseconds(400)));
  TestClient client;
  ConnectAndEcho(client, server->port(), 0);
  std::vector<std::byte> packet = EncodePacket(1, SequencedPayload(0, 1, 500));
  packet.resize(packet.size() / 2);  // the header says more is coming
  ASSERT_TRUE(client.SendAll(packet));
  const auto sent = Clock::now();
  ASSERT_TRUE(client.WaitForClose(std::chrono::seconds(5)));
  EXPECT_GE(Clock::now() - sent, milliseconds(250));
  ExpectClosedFor(tracker, *server, DisconnectReason::kPacketTimeout);
}

// Slowloris proper: one packet trickled a byte every 50 ms never completes
// within the timeout, though bytes keep coming.
TEST_P(LivenessTest, TrickledPacketIsClosedAfterThePacketTimeout) {
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(),
                          Timeouts(milliseconds(0), milliseconds(400)));
  TestClient client;
  ConnectAndEcho(client, server->port(), 0);
  const std::vector<std::byte> packet =
      EncodePacket(1, SequencedPayload(0, 1, 500));
  bool closed = false;
  const auto start = Clock::now();
  for (size_t i = 0; i < packet.size() && !closed; ++i) {
    closed = !client.SendAll({&packet[i], 1});
    std::this_thread::sleep_for(milliseconds(50));
    if (Clock::now() - start > std::chrono::seconds(5)) break;
    closed = closed || !client.IsQuiet(milliseconds(0));
  }
  ASSERT_TRUE(closed || client.WaitForClose(std::chrono::seconds(2)))
      << "a packet trickled for 5 s was never cut off";
  ExpectClosedFor(tracker, *server, DisconnectReason::kPacketTimeout);
}

// A partial packet that is completed in time is no offence, however many
// packets go by with a partial one always behind them.
TEST_P(LivenessTest, PacketsSplitAcrossReadsWithinTheTimeoutStay) {
  SessionTracker tracker;
  // The packet timeout is ten send intervals: a loaded, sanitized run may
  // stretch one interval several times over, and must not be cut for it.
  constexpr milliseconds kTimeout(1000);
  SERVERCORE_START_SERVER(server, tracker.Factory(),
                          Timeouts(milliseconds(0), kTimeout));
  TestClient client;
  ConnectAndEcho(client, server->port(), 0);
  // Each send finishes one packet and begins the next: some packet is always
  // half-sent, for far longer than the timeout (30 sends 100 ms apart, three
  // timeouts), but none for long.
  constexpr uint32_t kPackets = 30;
  const std::vector<std::byte> packet =
      EncodePacket(1, std::vector<std::byte>(40, std::byte{7}));
  std::vector<std::byte> stream;
  for (uint32_t i = 0; i < kPackets; ++i) {
    stream.insert(stream.end(), packet.begin(), packet.end());
  }
  const size_t step = packet.size();
  SendGaps gaps;
  for (size_t at = 0, end = step / 2; at < stream.size(); end += step) {
    end = std::min(end, stream.size());
    gaps.Sent();
    if (!client.SendAll({stream.data() + at, end - at})) break;  // below
    at = end;
    std::this_thread::sleep_for(milliseconds(100));
  }
  for (uint32_t seq = 1; seq <= kPackets; ++seq) {
    if (!client.ReadPacket().has_value()) {
      if (gaps.StalledNear(kTimeout)) {
        GTEST_SKIP() << "the client itself was stalled " << gaps.longest_ms()
                     << " ms between two sends";
      }
      FAIL() << "closed before echo " << seq << ", sends at most "
             << gaps.longest_ms() << " ms apart";
    }
  }
  EXPECT_EQ(tracker.Sessions()[0]->disconnects(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, LivenessTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
