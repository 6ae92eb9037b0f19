// docs/PROTOCOL.md "Command line" for GameServer: --port 0 prints the real
// port, and SIGINT or SIGTERM stops it with exit status 0 within a few seconds,
// idle or while clients are connected and sending.
#include <atomic>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/apps/app_fixture.h"

namespace servercore::test {
namespace {

using LifecycleTest = GameServerTestBase<std::string>;

TEST_P(LifecycleTest, PortZeroPrintsTheRealPort) {
  START_SERVER();
  EXPECT_NE(server_.port(), 0);
  const std::string line =
      "listening on 127.0.0.1:" + std::to_string(server_.port()) + "\n";
  EXPECT_NE(server_.Output().find(line), std::string::npos) << server_.Output();
  TestClient client;
  ASSERT_TRUE(ConnectReady(client, server_.port()))
      << "nothing serves the printed port";
  // A second server gets a port of its own.
  GameServer second;
  StartGameServer(second, GetParam(), {});
  if (HasFatalFailure()) return;
  EXPECT_NE(second.port(), server_.port());
  TestClient other;
  ASSERT_TRUE(ConnectReady(other, second.port()));
  ExpectCleanStop(second);
}

using StopTest = GameServerTestBase<std::tuple<std::string, int>>;

TEST_P(StopTest, IdleServerExitsZero) {
  START_SERVER();
  ExpectCleanStop(server_, std::get<1>(GetParam()));
}

TEST_P(StopTest, ExitsZeroWhileClientsSend) {
  START_SERVER("--threads", "2");
  const uint16_t port = server_.port();
  constexpr int kClients = 6;
  std::atomic<bool> go_on{true};
  std::atomic<uint64_t> rounds{0};
  std::atomic<int> closed{0};
  std::atomic<int> going{0};  // clients past their first round
  std::vector<std::thread> threads;
  // Joins the clients however the test ends (they end when the server
  // closes them, or time out).
  struct JoinAll {
    std::atomic<bool>& go_on;
    std::vector<std::thread>& threads;
    ~JoinAll() {
      go_on = false;
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } join_all{go_on, threads};
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      TestClient c;
      if (!ConnectReady(c, port)) return;
      // Two rooms, neither of them room 0 where new sessions start.
      if (!Join(c, 9 + static_cast<uint32_t>(i % 2))) return;
      const auto echo = Bytes("echo " + std::to_string(i));
      const auto chat = Bytes("chat " + std::to_string(i));
      uint64_t rounds_here = 0;
      // Each round: a chat and an echo, then read up to the echo's answer
      // (others' chats interleave), so nothing piles up.
      while (go_on) {
        if (!c.SendPacket(kCChat, chat) || !c.SendPacket(kCEcho, echo)) break;
        bool answered = false;
        while (!answered) {
          auto p = c.ReadPacket(Seconds(10));
          if (!p) break;
          answered = p->id == kSEcho && p->payload == echo;
        }
        if (!answered) break;
        if (++rounds_here == 1) ++going;
        ++rounds;
      }
      // Stopped: the server closes every session.
      if (c.WaitForClose(Seconds(10))) ++closed;
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + Seconds(10);
  // Every client must be connected and talking before the stop (a loaded
  // machine can start a thread late; one connecting after the stop would be
  // refused, not closed).
  while ((rounds < 200 || going < kClients) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(rounds.load(), 200u) << "clients never got going";
  ASSERT_EQ(going.load(), kClients) << "not every client got going";
  TestClient idle;
  ASSERT_TRUE(ConnectReady(idle, port));
  ExpectCleanStop(server_, std::get<1>(GetParam()));
  EXPECT_TRUE(idle.WaitForClose(Seconds(5))) << "idle session left open";
  go_on = false;
  for (auto& t : threads) t.join();
  EXPECT_EQ(closed.load(), kClients);
}

INSTANTIATE_TEST_SUITE_P(Signals, StopTest,
                         ::testing::Combine(::testing::ValuesIn(AllBackends()),
                                            ::testing::Values(SIGTERM, SIGINT)),
                         [](const auto& tp) {
                           return std::get<0>(tp.param) +
                                  (std::get<1>(tp.param) == SIGTERM
                                       ? "_SIGTERM"
                                       : "_SIGINT");
                         });

INSTANTIATE_TEST_SUITE_P(Backends, LifecycleTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

}  // namespace
}  // namespace servercore::test
