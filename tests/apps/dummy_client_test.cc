// DummyClient, run for real: it exits 0 against GameServer (echo and chat)
// and writes valid --json, and exits non-zero against a server that drops,
// corrupts or reorders one echo answer.
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/apps/app_fixture.h"
#include "tests/apps/fake_echo_server.h"

namespace servercore::test {
namespace {

std::string TempPath(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string test = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : test) {
    if (c == '/') c = '_';
  }
  return ::testing::TempDir() + "/" + test + "." + std::to_string(::getpid()) +
         "." + name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs DummyClient with `args` to the end; its waitpid status.
std::optional<int> RunDummyClient(ChildProcess& client,
                                  const std::vector<std::string>& args) {
  if (!client.Start(DUMMY_CLIENT_PATH, args)) return std::nullopt;
  return client.Wait(Seconds(30));
}

// ---- Against GameServer -----------------------------------------------------

using DummyClientTest = GameServerTestBase<std::string>;

void ExpectOkJson(const std::string& path, const std::string& mode) {
  const std::string json = ReadFile(path);
  EXPECT_TRUE(IsValidJson(json)) << "not valid JSON:\n" << json;
  EXPECT_NE(json.find("\"mode\": \"" + mode + "\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"ok\": true"), std::string::npos) << json;
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(json, m, std::regex("\"packets_sent\": (\\d+)")))
      << json;
  EXPECT_GT(std::stoull(m[1]), 0u) << json;
  for (const char* error : {"lost", "corrupt", "out_of_order", "unexpected",
                            "disconnected", "refused"}) {
    EXPECT_NE(json.find("\"" + std::string(error) + "\": 0"), std::string::npos)
        << error << " not 0 in\n"
        << json;
  }
}

TEST_P(DummyClientTest, EchoAgainstGameServerExitsZero) {
  START_SERVER();
  const std::string json = TempPath("echo.json");
  ChildProcess client;
  const auto status =
      RunDummyClient(client, {"--port", std::to_string(server_.port()),
                              "--sessions", "4", "--mode", "echo", "--depth",
                              "4", "--duration", "1", "--json", json});
  ASSERT_TRUE(status.has_value()) << "DummyClient hung:\n" << client.Output();
  EXPECT_EQ(ChildProcess::DescribeStatus(*status), "exit 0")
      << client.Output() << "\nGameServer:\n"
      << server_.Output();
  ExpectOkJson(json, "echo");
  std::remove(json.c_str());
}

TEST_P(DummyClientTest, ChatAgainstGameServerExitsZero) {
  START_SERVER();
  const std::string json = TempPath("chat.json");
  ChildProcess client;
  const auto status = RunDummyClient(
      client, {"--port", std::to_string(server_.port()), "--sessions", "5",
               "--mode", "chat", "--rate", "100", "--payload", "200",
               "--duration", "1", "--json", json});
  ASSERT_TRUE(status.has_value()) << "DummyClient hung:\n" << client.Output();
  EXPECT_EQ(ChildProcess::DescribeStatus(*status), "exit 0")
      << client.Output() << "\nGameServer:\n"
      << server_.Output();
  ExpectOkJson(json, "chat");
  std::remove(json.c_str());
}

TEST_P(DummyClientTest, ClosedLoopChatWithFewSendersExitsZero) {
  START_SERVER();
  ChildProcess client;
  const auto status = RunDummyClient(
      client, {"--port", std::to_string(server_.port()), "--sessions", "4",
               "--senders", "2", "--mode", "chat", "--depth", "8", "--duration",
               "1", "--threads", "2"});
  ASSERT_TRUE(status.has_value()) << "DummyClient hung:\n" << client.Output();
  EXPECT_EQ(ChildProcess::DescribeStatus(*status), "exit 0") << client.Output();
}

INSTANTIATE_TEST_SUITE_P(Backends, DummyClientTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

// ---- Against a faulty fake server -------------------------------------------

struct FaultCase {
  Fault fault;
  std::string name;
  std::string error;  // the summary's error counter expected above 0
};

class DummyClientFaultTest : public ::testing::TestWithParam<FaultCase> {};

TEST_P(DummyClientFaultTest, ExitsNonZero) {
  const FaultCase& c = GetParam();
  FakeEchoServer fake(c.fault);
  ASSERT_NE(fake.port(), 0);
  ChildProcess client;
  // Two packets in flight, so a reply can overtake another.
  const auto status = RunDummyClient(
      client, {"--port", std::to_string(fake.port()), "--sessions", "1",
               "--mode", "echo", "--depth", "2", "--duration", "1"});
  ASSERT_TRUE(status.has_value()) << "DummyClient hung:\n" << client.Output();
  ASSERT_TRUE(WIFEXITED(*status))
      << "DummyClient crashed: " << ChildProcess::DescribeStatus(*status)
      << "\n"
      << client.Output();
  EXPECT_EQ(fake.faults(), 1) << client.Output();
  EXPECT_NE(WEXITSTATUS(*status), 0)
      << "DummyClient missed a " << c.name << ":\n"
      << client.Output();
  EXPECT_TRUE(
      std::regex_search(client.Output(), std::regex(c.error + " [1-9]")))
      << "expected '" << c.error << " N' with N > 0:\n"
      << client.Output();
}

INSTANTIATE_TEST_SUITE_P(
    Faults, DummyClientFaultTest,
    ::testing::Values(FaultCase{Fault::kDrop, "dropped reply", "lost"},
                      FaultCase{Fault::kCorrupt, "corrupted byte", "corrupt"},
                      FaultCase{Fault::kReorder, "reorder", "out-of-order"}),
    [](const auto& tp) {
      switch (tp.param.fault) {
        case Fault::kDrop:
          return std::string("DroppedReply");
        case Fault::kCorrupt:
          return std::string("CorruptedByte");
        case Fault::kReorder:
          return std::string("ReorderedReplies");
        default:
          return std::string("None");
      }
    });

// The fake server itself is faithful when asked to be: the faults above are
// what DummyClient reacts to.
TEST(DummyClientFakeServerTest, FaithfulFakeServerExitsZero) {
  FakeEchoServer fake(Fault::kNone);
  ASSERT_NE(fake.port(), 0);
  ChildProcess client;
  const auto status = RunDummyClient(
      client, {"--port", std::to_string(fake.port()), "--sessions", "1",
               "--mode", "echo", "--depth", "2", "--duration", "1"});
  ASSERT_TRUE(status.has_value()) << "DummyClient hung:\n" << client.Output();
  EXPECT_EQ(ChildProcess::DescribeStatus(*status), "exit 0") << client.Output();
}

// A server that is not there: DummyClient reports it and exits non-zero.
TEST(DummyClientFakeServerTest, NoServerExitsNonZero) {
  uint16_t port = 0;
  {
    FakeEchoServer fake(Fault::kNone);  // take a free port, then free it
    port = fake.port();
  }
  ASSERT_NE(port, 0);
  ChildProcess client;
  const auto status = RunDummyClient(
      client,
      {"--port", std::to_string(port), "--sessions", "1", "--duration", "1"});
  ASSERT_TRUE(status.has_value()) << "DummyClient hung:\n" << client.Output();
  ASSERT_TRUE(WIFEXITED(*status)) << ChildProcess::DescribeStatus(*status);
  EXPECT_NE(WEXITSTATUS(*status), 0) << client.Output();
}

}  // namespace
}  // namespace servercore::test
