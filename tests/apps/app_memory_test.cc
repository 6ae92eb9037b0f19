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

// With --max-packet 65535, a session that has begun a packet of 65535 bytes
// holds 64 KiB for it until the packet is finished: a 1 MiB budget is past
// 90% with the 15th such session. The first session never begins one: it
// shows that the sessions in place go on.
TEST_P(MemoryAppTest, PastNinetyPercentNewConnectionsWait) {
  START_SERVER("--max-packet", "65535", "--max-memory", "1048576",
               "--stats-interval", "0.2");
  std::vector<TestClient> clients;
  bool waiting = false;
  for (int i = 0; i < 24 && !waiting; ++i) {
    clients.emplace_back();
    ASSERT_TRUE(clients.back().Connect(server_.port()));  // backlog
    // Scaled: a slow echo from a sanitized server on a loaded machine must
    // not pass for a connection left waiting.
    waiting = !Answers(clients.back(), Seconds(2));
    if (waiting || i == 0) continue;
    const uint16_t header[2] = {65535, kCEcho};
    ASSERT_TRUE(clients.back().SendAll(std::as_bytes(std::span(header))));
    // The server takes it.
    std::this_thread::sleep_for(milliseconds(50 * kSlowdown));
  }
  ASSERT_TRUE(waiting) << "23 sessions holding 64 KiB on a 1 MiB budget";
  // Past 90%, not before: 14 sessions holding 64 KiB are 87.5% of the
  // budget; with the send chunks the workers hold, the pause may come a
  // session or two earlier, never at half of it.
  EXPECT_GE(clients.size(), 12u);
  EXPECT_LE(clients.size(), 18u);
  EXPECT_TRUE(Answers(clients.front(), Seconds(5)));  // the others go on
  // The next stats line (every 0.2 s) says so, however late it comes.
  EXPECT_TRUE(server_.process().WaitForOutput("OVERLOAD", Seconds(5)))
      << server_.Output();
  // Closes take it below 80% (how many depends on the send chunks the
  // workers hold then): the waiting connection is served.
  TestClient late = std::move(clients.back());
  clients.pop_back();
  size_t closed = 0;
  std::optional<Packet> echo;
  while (!echo && 1 + closed < clients.size()) {
    clients[1 + closed++].Close();
    echo = late.ReadPacket(Seconds(1));
  }
  EXPECT_TRUE(echo && echo->id == kSEcho) << "the waiting connection stayed";
  ASSERT_TRUE(server_.Stop(SIGTERM, Seconds(10)).has_value());
  server_.process().WaitForOutputEnd(Seconds(10));
  EXPECT_NE(server_.Output().find("accepting paused 1 times"),
            std::string::npos)
      << server_.Output();
}

INSTANTIATE_TEST_SUITE_P(Backends, MemoryAppTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

}  // namespace
}  // namespace servercore::test
