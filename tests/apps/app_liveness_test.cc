// docs/PROTOCOL.md, "Liveness", from the outside: GameServer closes a session
// that sends no complete packet for --idle-timeout seconds, and one that
// began a packet and did not finish it within --packet-timeout seconds,
// whether it went silent or trickles it; it counts both in its summary.
// Sessions that keep talking, and every other session, go on.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/apps/app_fixture.h"
#include "tests/apps/app_test_util.h"

namespace servercore::test {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

using LivenessAppTest = GameServerTestBase<std::string>;

// After Stop: whether the server's "[summary]" line says `what` ("idle 1,").
bool SummarySays(GameServer& server, const std::string& what) {
  server.process().WaitForOutputEnd(Seconds(10));
  const std::string out = server.Output();
  const size_t at = out.find("[summary]");
  return at != std::string::npos && out.find(what, at) != std::string::npos;
}

TEST_P(LivenessAppTest, IdleSessionIsClosedOthersStay) {
  START_SERVER("--idle-timeout", "1", "--packet-timeout", "0");
  TestClient idle;
  TestClient talker;
  // Before the idle one's last packet: the server's idle clock for it starts
  // no earlier, however slowly the two connect.
  const auto start = Clock::now();
  ASSERT_TRUE(ConnectReady(idle, server_.port()));
  ASSERT_TRUE(ConnectReady(talker, server_.port()));
  // The talker echoes every 200 ms for 2.4 s; the idle one says nothing.
  for (int i = 0; i < 12; ++i) {
    std::this_thread::sleep_for(milliseconds(200));
    ASSERT_TRUE(talker.SendPacket(kCEcho, Bytes("still here")));
    auto echo = talker.ReadPacket(Seconds(5));
    ASSERT_TRUE(echo && echo->id == kSEcho) << "talker cut off at " << i;
  }
  EXPECT_TRUE(idle.WaitForClose(Seconds(5)));
  // Not before its 1 s (less 100 ms for the server reading its clock once
  // per round of its loop).
  EXPECT_GE(Clock::now() - start, milliseconds(900));
  talker.Close();  // before it falls idle in its turn
  // A half packet is no offence with --packet-timeout 0, but idleness is.
  TestClient half;
  ASSERT_TRUE(ConnectReady(half, server_.port()));
  ASSERT_TRUE(half.SendAll(RawHeader(100, kCEcho)));
  EXPECT_TRUE(half.WaitForClose(Seconds(5)));
  ASSERT_TRUE(server_.Stop(SIGTERM, Seconds(10)).has_value());
  EXPECT_TRUE(SummarySays(server_, "idle 2,")) << server_.Output();
  EXPECT_TRUE(SummarySays(server_, "half-sent 0,")) << server_.Output();
}

// Docs/PROTOCOL.md "Logs": each disconnection on one line. A session timed
// out with a goodbye it does not read stays closing for up to two seconds
// (the drain lingers until the client acknowledges it), across more than
// one of the worker's once-a-second sweeps: it is not logged again.
TEST_P(LivenessAppTest, TimeoutOfALingeringSessionIsLoggedOnce) {
  START_SERVER("--idle-timeout", "1", "--packet-timeout", "0");
  TestClient client;
  client.SetReceiveBuffer(4096);
  ASSERT_TRUE(ConnectReady(client, server_.port()));
  ASSERT_TRUE(client.SendPacket(kCPing, ProtoVarint(1, 1)));  // S_BYE due
  // Unread echoes: the client's window closes with the goodbye unsent.
  const std::vector<std::byte> payload(2000, std::byte{1});
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(client.SendPacket(kCEcho, payload));
  }
  // The idle timeout (1 s), then the whole linger (2 s) and more sweeps.
  std::this_thread::sleep_for(milliseconds(3500));
  ASSERT_TRUE(server_.Stop(SIGTERM, Seconds(10)).has_value());
  server_.process().WaitForOutputEnd(Seconds(10));
  const std::string out = server_.Output();
  size_t lines = 0;
  for (size_t at = out.find("idle timeout; disconnecting");
       at != std::string::npos;
       at = out.find("idle timeout; disconnecting", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << out;
}

TEST_P(LivenessAppTest, HalfSentPacketIsClosed) {
  START_SERVER("--idle-timeout", "0", "--packet-timeout", "1");
  TestClient silent;
  TestClient trickler;
  TestClient other;
  ASSERT_TRUE(ConnectReady(silent, server_.port()));
  ASSERT_TRUE(ConnectReady(trickler, server_.port()));
  ASSERT_TRUE(ConnectReady(other, server_.port()));
  // Silent: 4 of a 100-byte packet's bytes, then nothing.
  ASSERT_TRUE(silent.SendAll(RawHeader(100, kCEcho)));
  // Trickling: one byte of the same packet every 100 ms, 40 in all (4 s).
  const std::vector<std::byte> header = RawHeader(100, kCEcho);
  bool trickler_closed = false;
  for (int i = 0; i < 40 && !trickler_closed; ++i) {
    const std::byte b = i < 4 ? header[static_cast<size_t>(i)] : std::byte{1};
    trickler_closed =
        !trickler.SendAll({&b, 1}) || !trickler.IsQuiet(milliseconds(100));
  }
  EXPECT_TRUE(trickler_closed || trickler.WaitForClose(Seconds(2)))
      << "a packet trickled for 4 s was never cut off";
  EXPECT_TRUE(silent.WaitForClose(Seconds(5)));
  // The idle-timeout is off: the quiet but whole-packeted client stays.
  ASSERT_TRUE(other.SendPacket(kCEcho, Bytes("fine")));
  auto echo = other.ReadPacket(Seconds(5));
  EXPECT_TRUE(echo && echo->id == kSEcho);
  ASSERT_TRUE(server_.Stop(SIGTERM, Seconds(10)).has_value());
  EXPECT_TRUE(SummarySays(server_, "half-sent 2,")) << server_.Output();
}

// The defaults (docs/PROTOCOL.md): --packet-timeout 10 and --idle-timeout
// 60. A half-sent packet is cut between 10 s and a few seconds after, with
// the idle timeout far off; a session that sent one whole packet stays all
// that time.
TEST_P(LivenessAppTest, DefaultPacketTimeoutIsTenSecondsAndIdleLonger) {
  START_SERVER();
  TestClient half;
  TestClient whole;
  ASSERT_TRUE(ConnectReady(whole, server_.port()));
  ASSERT_TRUE(ConnectReady(half, server_.port()));
  const auto start = Clock::now();
  ASSERT_TRUE(half.SendAll(RawHeader(100, kCEcho)));
  // (Once seen cut early, in one run of many: what both sides saw is said.)
  EXPECT_TRUE(half.IsQuiet(milliseconds(9500)))
      << "a half-sent packet cut before 10 s, at "
      << std::chrono::duration_cast<milliseconds>(Clock::now() - start).count()
      << " ms; the server said:\n"
      << server_.Output();
  EXPECT_TRUE(half.WaitForClose(Seconds(6)))
      << "a half-sent packet not cut within 15 s";
  EXPECT_GE(Clock::now() - start, milliseconds(9500));
  // 10 s without a packet: well within the default idle timeout.
  ASSERT_TRUE(whole.SendPacket(kCEcho, Bytes("still here")));
  auto echo = whole.ReadPacket(Seconds(5));
  EXPECT_TRUE(echo && echo->id == kSEcho);
}

// The timeouts take fractions of a second (docs/PROTOCOL.md), and only 0
// means never. Guards a bug: GameServer truncated the seconds to whole
// milliseconds, so --idle-timeout 0.0004 became 0, never, and a silent
// session stayed forever. (--packet-timeout goes through the same
// conversion.)
TEST_P(LivenessAppTest, TimeoutUnderAMillisecondIsNotNever) {
  START_SERVER("--idle-timeout", "0.0004", "--packet-timeout", "0");
  TestClient silent;
  ASSERT_TRUE(silent.Connect(server_.port()));
  EXPECT_TRUE(silent.WaitForClose(Seconds(5)))
      << "a 0.4 ms idle timeout never closed a silent session";
}

// --send-stall-timeout (ours; off by default, since docs/PROTOCOL.md cuts a
// client that stopped reading only at --max-pending): a client that keeps
// pinging but has read nothing of what waits for it for the timeout is cut
// as a slow receiver, under --max-pending, and logged as such.
TEST_P(LivenessAppTest, SendStallTimeoutCutsAClientThatStoppedReading) {
  START_SERVER("--send-stall-timeout", "1", "--max-pending", "67108864");
  TestClient client;
  client.SetReceiveBuffer(4096);
  ASSERT_TRUE(ConnectReady(client, server_.port()));
  // 8 MB of echoes, never read: far under --max-pending, more than the
  // sockets take (the server's send buffer grows to a few megabytes).
  const std::vector<std::byte> payload(4000, std::byte{7});
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(client.SendPacket(kCEcho, payload));
  }
  const auto start = Clock::now();
  // Talking all along: neither idle nor half-sent.
  bool cut = false;
  while (!cut && Clock::now() - start < Seconds(8)) {
    std::this_thread::sleep_for(milliseconds(200));
    cut = !client.SendPacket(kCPing, ProtoVarint(1, 1)) ||
          server_.Output().find("send stall timeout") != std::string::npos;
  }
  EXPECT_TRUE(cut) << server_.Output();
  EXPECT_GE(Clock::now() - start, milliseconds(900));
  EXPECT_TRUE(server_.process().WaitForOutput(
      "no output taken within the send stall timeout; disconnecting",
      Seconds(5)))
      << server_.Output();
  ASSERT_TRUE(server_.Stop(SIGTERM, Seconds(10)).has_value());
  EXPECT_TRUE(SummarySays(server_, "slow 1,")) << server_.Output();
}

INSTANTIATE_TEST_SUITE_P(Backends, LivenessAppTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

}  // namespace
}  // namespace servercore::test
