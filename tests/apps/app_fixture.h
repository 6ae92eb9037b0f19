// The fixture of the GameServer contract suite: every test runs once per
// backend (--backend epoll, --backend uring; uring skipped cleanly where the
// kernel refuses it), starts its own GameServer, and at the end checks that
// SIGTERM stops it with exit status 0.
#ifndef SERVERCORE_TESTS_APPS_APP_FIXTURE_H_
#define SERVERCORE_TESTS_APPS_APP_FIXTURE_H_

#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <tuple>
#include <vector>

#include "tests/apps/app_test_util.h"

namespace servercore::test {

inline const std::vector<std::string>& AllBackends() {
  static const std::vector<std::string> kBackends = {"epoll", "uring"};
  return kBackends;
}

// Starts GameServer with `--backend backend` and `flags`; skips the test when
// io_uring is not available here, fails it on any other start failure.
inline void StartGameServer(GameServer& server, const std::string& backend,
                            std::vector<std::string> flags) {
  flags.insert(flags.begin(), {"--backend", backend});
  if (server.Start(flags)) return;
  const std::string out = server.Output();
  if (backend == "uring" && out.find("cannot start") != std::string::npos) {
    GTEST_SKIP() << "io_uring unavailable: " << out;
  }
  FAIL() << "GameServer did not start:\n" << out;
}

// Stops `server` with `sig` and expects exit status 0 within a few seconds.
inline void ExpectCleanStop(GameServer& server, int sig = SIGTERM) {
  if (!server.process().running()) return;
  const auto status = server.Stop(sig, Seconds(5));
  ASSERT_TRUE(status.has_value())
      << "GameServer still running 5 s after signal " << sig << "\n"
      << server.Output();
  EXPECT_EQ(ChildProcess::DescribeStatus(*status), "exit 0") << server.Output();
}

// Proves `client` got nothing queued before now: its next packet is the
// answer to a fresh echo.
inline void ExpectNothingPending(TestClient& client, const std::string& what) {
  const auto marker = Bytes("marker:" + what);
  ASSERT_TRUE(client.SendPacket(kCEcho, marker)) << what;
  auto reply = client.ReadPacket(Seconds(10));
  ASSERT_TRUE(reply.has_value()) << what << ": no echo";
  EXPECT_EQ(reply->id, kSEcho) << what << ": got another packet first";
  EXPECT_EQ(reply->payload, marker) << what;
}

// Base for suites whose parameter starts with the backend name.
template <typename Param>
class GameServerTestBase : public ::testing::TestWithParam<Param> {
 protected:
  void TearDown() override { ExpectCleanStop(server_); }
  GameServer server_;
};

inline const std::string& BackendOf(const std::string& p) { return p; }
template <typename... T>
const std::string& BackendOf(const std::tuple<std::string, T...>& p) {
  return std::get<0>(p);
}

}  // namespace servercore::test

// Starts the fixture's server_ (backend from the test parameter) with the
// given flags, leaving the test on skip or failure.
#define START_SERVER(...)                                                   \
  do {                                                                      \
    ::servercore::test::StartGameServer(                                    \
        server_, ::servercore::test::BackendOf(GetParam()), {__VA_ARGS__}); \
    if (IsSkipped() || HasFatalFailure()) return;                           \
  } while (0)

#endif  // SERVERCORE_TESTS_APPS_APP_FIXTURE_H_
