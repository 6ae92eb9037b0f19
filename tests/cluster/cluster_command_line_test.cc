// docs/PROTOCOL.md "Cluster", the command line: --cluster and --node-id go
// together, the node id is 1..65535, and --help lists both.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/apps/app_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

struct Result {
  std::string status;  // "exit 0", ...
  std::string output;
};

Result RunGameServer(const std::vector<std::string>& args) {
  ChildProcess child;
  if (!child.Start(GAME_SERVER_PATH, args)) return {"not started", ""};
  const auto status = child.Wait(Seconds(10));
  if (status) child.WaitForOutputEnd(Seconds(10));
  return {status ? ChildProcess::DescribeStatus(*status) : "still running",
          child.Output()};
}

TEST(ClusterCommandLineTest, HelpListsTheClusterFlags) {
  const Result run = RunGameServer({"--help"});
  EXPECT_EQ(run.status, "exit 0");
  EXPECT_NE(run.output.find("--cluster"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("--node-id"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("--node-expiry"), std::string::npos) << run.output;
}

TEST(ClusterCommandLineTest, BadClusterFlagsExitTwo) {
  const std::string url = "nats://127.0.0.1:1";
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"--cluster", url},
           {"--node-id", "3"},
           {"--cluster", url, "--node-id", "0"},
           {"--cluster", url, "--node-id", "65536"},
           {"--cluster", url, "--node-id", "1", "--node-expiry", "1"},
           {"--cluster", "", "--node-id", "1"},
           {"--cluster", "nats://127.0.0.1:99999", "--node-id", "1"},
           {"--cluster", "nats://", "--node-id", "1"}}) {
    SCOPED_TRACE(args.back());
    const Result run = RunGameServer(args);
    EXPECT_EQ(run.status, "exit 2") << run.output;
    EXPECT_EQ(run.output.find("listening on"), std::string::npos);
  }
}

// A node that cannot listen exits 1 ("cannot listen on ..."), at once,
// although its link to the broker had started (a node starts whether or
// not NATS is up) and must be stopped first.
TEST(ClusterCommandLineTest, ANodeThatCannotListenExitsOne) {
  uint16_t taken = 0;
  const int listener = ListenOnLoopback(&taken);
  ASSERT_GE(listener, 0);
  const std::string url =
      "nats://127.0.0.1:" + std::to_string(UnusedLoopbackPort());
  const Result run =
      RunGameServer({"--cluster", url, "--node-id", "1", "--host", "127.0.0.1",
                     "--port", std::to_string(taken)});
  close(listener);
  EXPECT_EQ(run.status, "exit 1") << run.output;
  EXPECT_NE(run.output.find("cannot listen on"), std::string::npos)
      << run.output;
  EXPECT_EQ(run.output.find("Sanitizer"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace servercore::test
