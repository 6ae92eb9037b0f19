// docs/PROTOCOL.md "Command line", checked on the real programs: --help
// lists every flag (GameServer's with the contract's defaults) and exits 0;
// a bad value exits 2 with an error naming the flag and the values it takes,
// before any socket is opened.
#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "tests/apps/app_fixture.h"

namespace servercore::test {
namespace {

struct Result {
  std::string status;  // "exit 0", ...
  std::string output;  // stdout and stderr
};

Result RunProgram(const char* path, const std::vector<std::string>& args) {
  ChildProcess child;
  if (!child.Start(path, args)) return {"not started", child.Output()};
  const auto status = child.Wait(Seconds(10));
  if (status) child.WaitForOutputEnd(Seconds(10));
  return {status ? ChildProcess::DescribeStatus(*status) : "still running",
          child.Output()};
}

TEST(AppCommandLineTest, GameServerHelpListsEveryFlag) {
  const Result run = RunProgram(GAME_SERVER_PATH, {"--help"});
  EXPECT_EQ(run.status, "exit 0") << run.output;
  for (const char* flag :
       {"--host", "--port", "--threads", "--backend", "--max-packet",
        "--max-pending", "--max-memory", "--max-sessions", "--stats-interval",
        "--tick-ms", "--idle-timeout", "--packet-timeout",
        "--send-stall-timeout", "--cluster", "--node-id"}) {
    EXPECT_NE(run.output.find(flag), std::string::npos)
        << flag << " missing in\n"
        << run.output;
  }
}

// The help entry of `flag`: from the line that names it up to the next
// line that names a flag (CLI11 puts a long one's description on a line of
// its own); "" if no line names it.
std::string HelpEntry(const std::string& help, const std::string& flag) {
  size_t start = help.find("\n  " + flag + " ");
  if (start == std::string::npos) start = help.find("\n  " + flag + "\n");
  if (start == std::string::npos) return "";
  ++start;
  size_t end = help.find("\n  -", start);
  return help.substr(start, end == std::string::npos ? end : end - start);
}

// The defaults docs/PROTOCOL.md "Command line" gives GameServer, each shown
// in its flag's entry as "(DEFAULT" (the number whole: "(50, i.e. 20 Hz)"
// shows 50, "(500)" would not). Their effect is checked where it is cheap:
// AppProtocolTest.EchoOfDefaultMaxPacket and BadInputTest's
// SizeOverDefaultMaxPacket (4096 and 4097 bytes),
// WorldTest.DefaultTickIsFiftyMilliseconds.
TEST(AppCommandLineTest, GameServerHelpShowsTheContractDefaults) {
  const Result run = RunProgram(GAME_SERVER_PATH, {"--help"});
  EXPECT_EQ(run.status, "exit 0") << run.output;
  // (--send-stall-timeout is ours, and off unless asked for: the contract
  // cuts a client that stopped reading only at --max-pending.)
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"--host", "0.0.0.0"},        {"--port", "7777"},
      {"--backend", "auto"},        {"--max-packet", "4096"},
      {"--max-pending", "4194304"}, {"--max-memory", "1073741824"},
      {"--tick-ms", "50"},          {"--idle-timeout", "60"},
      {"--packet-timeout", "10"},   {"--send-stall-timeout", "0"},
  };
  for (const auto& [flag, value] : defaults) {
    const std::string entry = HelpEntry(run.output, flag);
    const size_t at = entry.find("(" + value);
    const size_t after = at + 1 + value.size();
    const bool shown =
        at != std::string::npos &&
        (after == entry.size() ||
         !(std::isdigit(static_cast<unsigned char>(entry[after])) ||
           entry[after] == '.'));
    EXPECT_TRUE(shown) << flag << ": default " << value << " not in\n"
                       << (entry.empty() ? run.output : entry);
  }
}

TEST(AppCommandLineTest, DummyClientHelpListsEveryFlag) {
  const Result run = RunProgram(DUMMY_CLIENT_PATH, {"-h"});
  EXPECT_EQ(run.status, "exit 0") << run.output;
  for (const char* flag :
       {"--host", "--port", "--sessions", "--mode", "--room-size", "--payload",
        "--rate", "--depth", "--duration", "--warmup", "--senders", "--threads",
        "--tick-ms", "--late-grace-ms", "--keepalive", "--json", "--hosts",
        "--remote-grace-ms", "--drain-ms"}) {
    EXPECT_NE(run.output.find(flag), std::string::npos)
        << flag << " missing in\n"
        << run.output;
  }
}

struct BadFlag {
  const char* path;
  std::vector<std::string> args;
  std::string error;  // the first line of the output
};

TEST(AppCommandLineTest, BadValuesNameTheFlagAndItsRange) {
  const std::vector<BadFlag> cases = {
      {GAME_SERVER_PATH,
       {"--port", "70000"},
       "GameServer: --port: 70000 not in [0 - 65535]"},
      {GAME_SERVER_PATH,
       {"--max-packet=3"},
       "GameServer: --max-packet: 3 not in [4 - 65535]"},
      // With --host and --port after it, a GameServer that took the value
      // listens on loopback, port 0, not on 7777 everywhere, for the 10 s
      // until the test gives up on it.
      {GAME_SERVER_PATH,
       {"--max-packet", "65536", "--host", "127.0.0.1", "--port", "0"},
       "GameServer: --max-packet: 65536 not in [4 - 65535]"},
      {GAME_SERVER_PATH,
       {"--backend", "kqueue"},
       "GameServer: --backend: kqueue not in {auto,uring,epoll,io_uring}"},
      {GAME_SERVER_PATH,
       {"--stats-interval", "-1"},
       "GameServer: --stats-interval: -1 not in [0 - inf)"},
      {GAME_SERVER_PATH,
       {"--max-pending", "0"},
       "GameServer: --max-pending: 0 not in [1 - 18446744073709551615]"},
      {GAME_SERVER_PATH,
       {"--max-memory", "0"},
       "GameServer: --max-memory: 0 not in [1 - 18446744073709551615]"},
      {GAME_SERVER_PATH,
       {"--host", "999.1.1.1"},
       "GameServer: --host: 999.1.1.1: not an IPv4 or IPv6 address"},
      {DUMMY_CLIENT_PATH,
       {"--host", "::1::2"},
       "DummyClient: --host: ::1::2: not an IPv4 or IPv6 address"},
      {DUMMY_CLIENT_PATH,
       {"--mode=fly"},
       "DummyClient: --mode: fly not in {echo,chat,move}"},
      {DUMMY_CLIENT_PATH,
       {"--payload", "-1"},
       "DummyClient: --payload: -1 not in [0 - 65523]"},
      {DUMMY_CLIENT_PATH,
       {"--mode", "chat", "--payload", "7"},
       "DummyClient: --payload: chat needs at least 8 bytes (the sender's "
       "index and a magic number tell this run's chats)"},
      {DUMMY_CLIENT_PATH,
       {"--duration", "0"},
       "DummyClient: --duration: 0 not in (0 - inf)"},
      {DUMMY_CLIENT_PATH,
       {"--port", "0"},
       "DummyClient: --port: 0 not in [1 - 65535]"},
      {DUMMY_CLIENT_PATH,
       {"--hosts", "127.0.0.1:7777,127.0.0.1"},
       "DummyClient: --hosts: '127.0.0.1': expected HOST:PORT"},
      {DUMMY_CLIENT_PATH,
       {"--hosts=::1:7777"},
       "DummyClient: --hosts: '::1:7777': an IPv6 address goes in brackets: "
       "[::1]:7777"},
      {DUMMY_CLIENT_PATH,
       {"--hosts", "a:1,,b:2"},
       "DummyClient: --hosts: empty entry in 'a:1,,b:2'"},
      {DUMMY_CLIENT_PATH,
       {"--hosts", "a:70000"},
       "DummyClient: --hosts: 'a:70000': the port must be 1 to 65535"},
      {DUMMY_CLIENT_PATH,
       {"--remote-grace-ms", "-1"},
       "DummyClient: --remote-grace-ms: -1 not in [0 - inf)"},
      {DUMMY_CLIENT_PATH,
       {"--drain-ms", "0"},
       "DummyClient: --drain-ms: 0 not in (0 - inf)"},
  };
  for (const BadFlag& c : cases) {
    SCOPED_TRACE(c.args[0]);
    const Result run = RunProgram(c.path, c.args);
    EXPECT_EQ(run.status, "exit 2") << run.output;
    EXPECT_EQ(run.output.substr(0, run.output.find('\n')), c.error)
        << run.output;
  }
}

TEST(AppCommandLineTest, UnknownFlagsAndStrayArgumentsExitTwo) {
  for (const char* path : {GAME_SERVER_PATH, DUMMY_CLIENT_PATH}) {
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{
             {"--no-such-flag", "1"}, {"stray"}, {"--port"}}) {
      SCOPED_TRACE(std::string(path) + " " + args[0]);
      const Result run = RunProgram(path, args);
      EXPECT_EQ(run.status, "exit 2") << run.output;
      EXPECT_NE(run.output.find(args[0]), std::string::npos) << run.output;
    }
  }
}

}  // namespace
}  // namespace servercore::test
