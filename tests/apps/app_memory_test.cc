// docs/PROTOCOL.md "Slow receivers", GameServer's --max-memory from the
// outside: past 90% of the budget new connections wait (they are not
// answered, and the stats line says OVERLOAD) until closes bring the use
// below 80%; the sessions in place go on meanwhile.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
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

using MemoryAppTest = GameServerTestBase<std::string>;

bool Answers(TestClient& client, milliseconds timeout) {
  const std::vector<std::byte> ping = Bytes("there?");
  if (!client.SendPacket(kCEcho, ping)) return false;
  auto reply = client.ReadPacket(timeout);
  return reply && reply->id == kSEcho && reply->payload == ping;
}

// The memory in use as the latest stats line gives it ("memory 2.0/4 MiB"),
// in MiB; -1 before the first.
double LatestMemoryMiB(const std::string& output) {
  const size_t at = output.rfind("| memory ");
  if (at == std::string::npos) return -1;
  return std::stod(output.substr(at + 9));
}

// With --max-packet 65535, a session that has begun a packet of 65535 bytes
// holds 64 KiB for it until the packet is finished. Such receive tails may
// take half the budget at most, so first a session that never reads asks
// for 60 KiB echoes until the stats line shows half of a 4 MiB budget in
// use (replies the kernel would not take; the line has 0.1 MiB steps);
// then sessions begin packets, and with the 26th or so use is past 90%,
// below the tails' half (32). The first session never begins one: it shows
// that the sessions in place go on.
TEST_P(MemoryAppTest, PastNinetyPercentNewConnectionsWait) {
  START_SERVER("--max-packet", "65535", "--max-memory", "4194304",
               "--stats-interval", "0.1");
  std::vector<TestClient> clients(2);
  clients[1].SetReceiveBuffer(4096);
  for (TestClient& client : clients) {
    ASSERT_TRUE(client.Connect(server_.port()));
    ASSERT_TRUE(Answers(client, Seconds(5)));
  }
  const std::vector<std::byte> large(60 * 1024, std::byte{1});
  const auto deadline = std::chrono::steady_clock::now() + Seconds(30);
  while (LatestMemoryMiB(server_.Output()) < 2.0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "the unread echoes never showed\n"
        << server_.Output();
    ASSERT_TRUE(clients[1].SendPacket(kCEcho, large));
    std::this_thread::sleep_for(milliseconds(20));
  }
  bool waiting = false;
  for (int i = 2; i < 48 && !waiting; ++i) {
    clients.emplace_back();
    ASSERT_TRUE(clients.back().Connect(server_.port()));  // backlog
    // Scaled: a slow echo from a sanitized server on a loaded machine must
    // not pass for a connection left waiting.
    waiting = !Answers(clients.back(), Seconds(2));
    if (waiting) continue;
    const uint16_t header[2] = {65535, kCEcho};
    ASSERT_TRUE(clients.back().SendAll(std::as_bytes(std::span(header))));
    // The server takes it.
    std::this_thread::sleep_for(milliseconds(50 * kSlowdown));
  }
  ASSERT_TRUE(waiting) << "45 sessions holding 64 KiB on a 4 MiB budget";
  // Past 90%, not before: about half the budget is output, each session
  // beginning a packet adds 1.6% (and the one waiting is counted).
  EXPECT_GE(clients.size(), 2u + 20u);
  EXPECT_LE(clients.size(), 2u + 32u);
  EXPECT_TRUE(Answers(clients.front(), Seconds(5)));  // the others go on
  // The next stats line (every 0.1 s) says so, however late it comes.
  EXPECT_TRUE(server_.process().WaitForOutput("OVERLOAD", Seconds(5)))
      << server_.Output();
  // Closes take it below 80% (how many depends on the send chunks the
  // workers hold then): the waiting connection is served.
  TestClient late = std::move(clients.back());
  clients.pop_back();
  size_t closed = 0;
  std::optional<Packet> echo;
  while (!echo && 2 + closed < clients.size()) {
    clients[2 + closed++].Close();
    // (The listener asks the budget at least every 100 ms.)
    echo = late.ReadPacket(milliseconds(300 * kSlowdown));
  }
  EXPECT_TRUE(echo && echo->id == kSEcho) << "the waiting connection stayed";
  ASSERT_TRUE(server_.Stop(SIGTERM, Seconds(10)).has_value());
  server_.process().WaitForOutputEnd(Seconds(10));
  EXPECT_NE(server_.Output().find("accepting paused 1 times"),
            std::string::npos)
      << server_.Output();
  // Nobody was cut: the unread echoes stayed within the output's half.
  const std::string out = server_.Output();
  const size_t kicks = out.rfind("budget-kicks ");
  ASSERT_NE(kicks, std::string::npos) << out;
  EXPECT_EQ(out.substr(kicks, 15), "budget-kicks 0 ") << out;
}

INSTANTIATE_TEST_SUITE_P(Backends, MemoryAppTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

}  // namespace
}  // namespace servercore::test
