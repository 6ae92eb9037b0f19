// DummyClient --hosts, run for real against standalone GameServers (there is
// no cluster here): sessions dealt out to every host in turn; one server
// listed twice keeps every rule exactly as with --host; two servers whose
// rooms each live on one server (rooms of one) keep them too; and two
// standalone servers sharing a room make DummyClient report the chats and
// moves a member on the other server never got: what a broken cluster would
// show.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/apps/app_fixture.h"

namespace servercore::test {
namespace {

std::string HostOf(const GameServer& server) {
  return "127.0.0.1:" + std::to_string(server.port());
}

// The JSON report's entry for `host`, in order: {sessions, lost}; nullopt
// when missing. (Hosts listed twice have two entries: `nth` picks one.)
std::optional<std::pair<uint64_t, uint64_t>> HostEntry(const std::string& json,
                                                       const std::string& host,
                                                       int nth = 0) {
  const std::string start = "{\"host\": \"" + host + "\", ";
  size_t at = json.find(start);
  for (int i = 0; i < nth && at != std::string::npos; ++i) {
    at = json.find(start, at + 1);
  }
  if (at == std::string::npos) return std::nullopt;
  const std::string_view entry =
      std::string_view(json).substr(at, json.find('}', at) - at);
  const auto sessions = NumbersAfter(entry, "\"sessions\":");
  const auto lost = NumbersAfter(entry, "\"lost\":");
  if (sessions.size() != 1 || lost.size() != 1) return std::nullopt;
  return std::make_pair(sessions[0], lost[0]);
}

class DummyClientHostsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void TearDown() override {
    for (GameServer& s : servers_) ExpectCleanStop(s);
  }

  // Starts `n` GameServers (the test's backend) with `flags`.
  void StartServers(size_t n, std::vector<std::string> flags = {}) {
    servers_ = std::vector<GameServer>(n);
    for (GameServer& s : servers_) {
      StartGameServer(s, GetParam(), flags);
      if (IsSkipped() || HasFatalFailure()) return;
    }
  }

  // Runs DummyClient with `args` (after --hosts `hosts` and --json) to its
  // end; its exit code, -1 if it hung or crashed. Its output in client_,
  // its JSON in json_.
  int Run(const std::string& hosts, std::vector<std::string> args) {
    const std::string path = TempPath("json");
    args.insert(args.begin(), {"--hosts", hosts, "--json", path});
    client_ = std::make_unique<ChildProcess>();
    if (!client_->Start(DUMMY_CLIENT_PATH, args)) return -1;
    const auto status = client_->Wait(Seconds(40));
    if (status) client_->WaitForOutputEnd(Seconds(5));
    json_ = ReadFile(path);
    std::remove(path.c_str());
    if (!status || !WIFEXITED(*status)) {
      ADD_FAILURE() << "DummyClient hung or crashed:\n" << client_->Output();
      return -1;
    }
    return WEXITSTATUS(*status);
  }

  std::string Describe() {
    std::string out = "DummyClient:\n" + client_->Output() + "\n" + json_;
    for (GameServer& s : servers_) out += "\nGameServer:\n" + s.Output();
    return out;
  }

  std::vector<GameServer> servers_;
  std::unique_ptr<ChildProcess> client_ = std::make_unique<ChildProcess>();
  std::string json_;
};

// Five sessions over two servers: three to the first, two to the second,
// as the report says and as the servers themselves counted them.
TEST_P(DummyClientHostsTest, EchoSpreadsTheSessionsOverTheHostsInTurn) {
  StartServers(2);
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string hosts = HostOf(servers_[0]) + "," + HostOf(servers_[1]);
  EXPECT_EQ(Run(hosts, {"--sessions", "5", "--mode", "echo", "--depth", "2",
                        "--duration", "1"}),
            0)
      << Describe();
  EXPECT_TRUE(IsValidJson(json_)) << json_;
  EXPECT_EQ(HostEntry(json_, HostOf(servers_[0])), std::make_pair(3ul, 0ul))
      << json_;
  EXPECT_EQ(HostEntry(json_, HostOf(servers_[1])), std::make_pair(2ul, 0ul))
      << json_;
  EXPECT_NE(
      client_->Output().find("connected to 2 hosts (" + HostOf(servers_[0]) +
                             ", " + HostOf(servers_[1]) + ")"),
      std::string::npos)
      << client_->Output();
  for (const char* accepted : {"accepted 3 ", "accepted 2 "}) {
    GameServer& s = servers_[accepted[9] == '3' ? 0 : 1];
    ASSERT_TRUE(s.Stop(SIGTERM, Seconds(5)).has_value());
    s.process().WaitForOutputEnd(Seconds(5));
    EXPECT_NE(s.Output().find(accepted), std::string::npos) << s.Output();
  }
}

// One server listed twice is one game: chat in rooms of 3 (which straddle
// the two "hosts") keeps every rule, exactly as with --host.
TEST_P(DummyClientHostsTest, ChatInRoomsOnOneServerListedTwiceKeepsEveryRule) {
  StartServers(1);
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string hosts = HostOf(servers_[0]) + "," + HostOf(servers_[0]);
  EXPECT_EQ(Run(hosts, {"--sessions", "7", "--room-size", "3", "--senders", "5",
                        "--mode", "chat", "--rate", "50", "--duration", "1.5"}),
            0)
      << Describe();
  EXPECT_NE(json_.find("\"ok\": true"), std::string::npos) << json_;
  EXPECT_EQ(HostEntry(json_, HostOf(servers_[0]), 0), std::make_pair(4ul, 0ul))
      << json_;
  EXPECT_EQ(HostEntry(json_, HostOf(servers_[0]), 1), std::make_pair(3ul, 0ul))
      << json_;
}

// The same for the world: every member sees every other member's moves, in
// time, and its own.
TEST_P(DummyClientHostsTest, MoveInRoomsOnOneServerListedTwiceKeepsEveryRule) {
  StartServers(1, {"--tick-ms", "20"});
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string hosts = HostOf(servers_[0]) + "," + HostOf(servers_[0]);
  EXPECT_EQ(Run(hosts, {"--sessions", "7", "--room-size", "3", "--mode", "move",
                        "--rate", "30", "--tick-ms", "20", "--duration", "1.5",
                        "--late-grace-ms", LateGraceMs()}),
            0)
      << Describe();
  EXPECT_NE(json_.find("\"ok\": true"), std::string::npos) << json_;
  // Rooms 3, 3 and 1: six members see two others each, every move of theirs.
  const auto seen = NumbersAfter(json_, "\"peer_moves_seen\":");
  ASSERT_FALSE(seen.empty()) << json_;
  EXPECT_GE(seen[0], 6u * 2 * 30) << json_;
}

// Three standalone servers, each room on one of them (rooms of one
// session): chat and the world keep every rule.
TEST_P(DummyClientHostsTest, RoomsEachOnOneOfThreeServersKeepEveryRule) {
  StartServers(3, {"--tick-ms", "20"});
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string hosts = HostOf(servers_[0]) + "," + HostOf(servers_[1]) +
                            "," + HostOf(servers_[2]);
  EXPECT_EQ(Run(hosts, {"--sessions", "6", "--room-size", "1", "--mode", "chat",
                        "--rate", "50", "--duration", "1"}),
            0)
      << Describe();
  EXPECT_EQ(Run(hosts, {"--sessions", "6", "--room-size", "1", "--mode", "move",
                        "--rate", "30", "--tick-ms", "20", "--duration", "1",
                        "--late-grace-ms", LateGraceMs()}),
            0)
      << Describe();
  for (const GameServer& s : servers_) {
    EXPECT_EQ(HostEntry(json_, HostOf(s)), std::make_pair(2ul, 0ul)) << json_;
  }
}

// Two standalone servers sharing rooms (rooms of 2: one member on each) are
// what a cluster that forwards nothing would look like. DummyClient must
// see that each member missed the other's chats, and fail.
TEST_P(DummyClientHostsTest, ChatMissingOnTheOtherServerIsCaught) {
  StartServers(2);
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string hosts = HostOf(servers_[0]) + "," + HostOf(servers_[1]);
  EXPECT_NE(Run(hosts, {"--sessions", "4", "--room-size", "2", "--mode", "chat",
                        "--rate", "20", "--duration", "1", "--drain-ms",
                        ShortDrainMs()}),
            0)
      << Describe();
  EXPECT_TRUE(AnyAbove(NumbersAfter(client_->Output(), "lost"), 0))
      << client_->Output();
  // Both servers' sessions missed the other's: 2 senders x ~20 chats each.
  for (const GameServer& s : servers_) {
    const auto entry = HostEntry(json_, HostOf(s));
    ASSERT_TRUE(entry.has_value()) << json_;
    EXPECT_EQ(entry->first, 2u) << json_;
    EXPECT_GE(entry->second, 2u * 15) << json_;
  }
}

// The same for the world: a member must see the mover on the other server.
TEST_P(DummyClientHostsTest, MovesMissingOnTheOtherServerAreCaught) {
  StartServers(2, {"--tick-ms", "20"});
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string hosts = HostOf(servers_[0]) + "," + HostOf(servers_[1]);
  // The scaled grace: it must fail for the moves lost, not for late ones.
  EXPECT_NE(Run(hosts, {"--sessions", "4", "--room-size", "2", "--mode", "move",
                        "--rate", "20", "--tick-ms", "20", "--duration", "1",
                        "--late-grace-ms", LateGraceMs(), "--drain-ms",
                        ShortDrainMs()}),
            0)
      << Describe();
  EXPECT_TRUE(AnyAbove(NumbersAfter(client_->Output(), "lost"), 0))
      << client_->Output();
  for (const GameServer& s : servers_) {
    const auto entry = HostEntry(json_, HostOf(s));
    ASSERT_TRUE(entry.has_value()) << json_;
    EXPECT_GE(entry->second, 2u * 15) << json_;
  }
  // Each session's own moves did show: only the other member's are lost.
  EXPECT_NE(json_.find("\"late\": 0"), std::string::npos) << json_;
}

// A host that is not there: the run fails, and the report says which.
TEST_P(DummyClientHostsTest, AnUnreachableHostIsNamed) {
  StartServers(1);
  if (IsSkipped() || HasFatalFailure()) return;
  uint16_t port = 0;
  const int fd = ListenOnLoopback(&port);  // a free port, then freed
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string gone = "127.0.0.1:" + std::to_string(port);
  EXPECT_NE(Run(HostOf(servers_[0]) + "," + gone,
                {"--sessions", "2", "--duration", "1"}),
            0)
      << Describe();
  EXPECT_NE(client_->Output().find("connect 1 to " + gone + " failed"),
            std::string::npos)
      << client_->Output();
  EXPECT_NE(
      json_.find("\"host\": \"" + gone + "\", \"sessions\": 0, \"refused\": 1"),
      std::string::npos)
      << json_;
}

INSTANTIATE_TEST_SUITE_P(Backends, DummyClientHostsTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

}  // namespace
}  // namespace servercore::test
