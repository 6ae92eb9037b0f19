// docs/PROTOCOL.md "Slow receivers", GameServer's --max-sessions from the
// outside: with that many sessions open, a new connection is accepted and
// closed at once (the client's connect succeeds, then EOF with not a byte
// before it); the sessions in place go on, and a place freed by a close is
// taken by the next connection.
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/apps/app_fixture.h"

namespace servercore::test {
namespace {

using std::chrono::milliseconds;

using SessionLimitTest = GameServerTestBase<std::string>;

// True when the server closes `client` (EOF) within `timeout` without having
// sent it anything: the first recv() returns 0. False on data, a reset or
// the timeout.
bool ClosedWithoutData(TestClient& client, milliseconds timeout) {
  pollfd p{.fd = client.fd(), .events = POLLIN, .revents = 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (r < 0 && errno == EINTR);
  if (r <= 0) return false;
  std::byte byte;
  ssize_t k;
  do {
    k = ::recv(client.fd(), &byte, 1, 0);
  } while (k < 0 && errno == EINTR);
  return k == 0;
}

bool Answers(TestClient& client, const std::string& what) {
  const std::vector<std::byte> ping = Bytes(what);
  if (!client.SendPacket(kCEcho, ping)) return false;
  auto reply = client.ReadPacket(Seconds(10));
  return reply && reply->id == kSEcho && reply->payload == ping;
}

TEST_P(SessionLimitTest, ConnectionsPastMaxSessionsAreClosedAtOnce) {
  START_SERVER("--max-sessions", "2");
  TestClient a, b;
  ASSERT_TRUE(ConnectReady(a, server_.port()));
  ASSERT_TRUE(ConnectReady(b, server_.port()));

  // The third sends nothing, so the server's close is a plain FIN (no reset
  // for unread input) and anything before it would be the server's own.
  TestClient third;
  ASSERT_TRUE(third.Connect(server_.port())) << "accepted by the kernel";
  EXPECT_TRUE(ClosedWithoutData(third, Seconds(10)))
      << "a third connection at --max-sessions 2 was not closed at once, "
         "or got data first\n"
      << server_.Output();
  EXPECT_TRUE(Answers(a, "a still served"));
  EXPECT_TRUE(Answers(b, "b still served"));

  // The server learns of a's close a moment after it, on a worker of its
  // own, so a connection made meanwhile may still be refused: connect again
  // until one is served, each attempt ending in an echo or a close.
  a.Close();
  TestClient again;
  bool served = false;
  const auto deadline = std::chrono::steady_clock::now() + Seconds(10);
  while (!served && std::chrono::steady_clock::now() < deadline) {
    again = TestClient();
    ASSERT_TRUE(again.Connect(server_.port()));
    served = Answers(again, "the freed place");
    if (!served) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(served) << "the place a closed session left was not taken\n"
                      << server_.Output();
  EXPECT_TRUE(Answers(b, "b after the new one"));

  // b and the new one fill both places again: the next is refused at once.
  TestClient fourth;
  ASSERT_TRUE(fourth.Connect(server_.port()));
  EXPECT_TRUE(ClosedWithoutData(fourth, Seconds(10)))
      << "a third connection after the place was taken stayed\n"
      << server_.Output();
}

INSTANTIATE_TEST_SUITE_P(Backends, SessionLimitTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

}  // namespace
}  // namespace servercore::test
