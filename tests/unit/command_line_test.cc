// The command-line checks GameServer and DummyClient share
// (apps/common/command_line.h): numbers read in decimal and exactly, errors
// that name the flag and its range, --help exiting 0, later flags winning.
#include "apps/common/command_line.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace game {
namespace {

// A small program with one flag of each kind, parsed from `args`.
struct Program {
  int count = 7;
  uint64_t bytes = 1;
  double seconds = 5;
  double timeout = 1;
  std::string mode = "echo";
  std::string cluster;
  std::string host;
  std::string error;  // what the parse printed to stderr
  std::string help;   // and to stdout

  std::optional<int> Parse(std::vector<std::string> args) {
    CommandLine flags("test program", "Prog");
    flags.Add("--count", count, "", InRange(0, 100));
    flags.Add("--bytes", bytes, "",
              InRange<uint64_t>(1, std::numeric_limits<uint64_t>::max()));
    flags.Add("--seconds", seconds, "", AtLeast(0));
    flags.Add("--timeout", timeout, "", Above(0.5));
    flags.Add("--mode", mode, "", OneOf({"echo", "chat"}));
    flags.Add("--cluster", cluster, "", NatsUrls());
    flags.Add("--host", host, "", HostAddress());
    args.insert(args.begin(), "Prog");
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const std::optional<int> exit_code =
        flags.Parse(static_cast<int>(argv.size()), argv.data());
    error = ::testing::internal::GetCapturedStderr();
    help = ::testing::internal::GetCapturedStdout();
    return exit_code;
  }
};

TEST(CommandLineTest, BothSpellingsSetTheFlags) {
  Program p;
  EXPECT_EQ(p.Parse({"--count", "12", "--bytes=4096", "--seconds", "0.25",
                     "--timeout=2", "--mode", "chat"}),
            std::nullopt)
      << p.error;
  EXPECT_EQ(p.count, 12);
  EXPECT_EQ(p.bytes, 4096u);
  EXPECT_EQ(p.seconds, 0.25);
  EXPECT_EQ(p.timeout, 2);
  EXPECT_EQ(p.mode, "chat");
}

TEST(CommandLineTest, DefaultsStayWithoutFlags) {
  Program p;
  EXPECT_EQ(p.Parse({}), std::nullopt) << p.error;
  EXPECT_EQ(p.count, 7);
  EXPECT_EQ(p.bytes, 1u);
  EXPECT_EQ(p.seconds, 5);
  EXPECT_EQ(p.mode, "echo");
}

TEST(CommandLineTest, IntegersAreDecimal) {
  Program p;
  EXPECT_EQ(p.Parse({"--count", "010"}), std::nullopt) << p.error;
  EXPECT_EQ(p.count, 10) << "a leading 0 is not octal";
  EXPECT_EQ(p.Parse({"--count", "0x10"}), 2);
  EXPECT_EQ(p.Parse({"--count", "+5"}), 2);
  EXPECT_EQ(p.Parse({"--count", " 5"}), 2);
  EXPECT_EQ(p.Parse({"--bytes", "18446744073709551615"}), std::nullopt);
  EXPECT_EQ(p.bytes, std::numeric_limits<uint64_t>::max());
}

TEST(CommandLineTest, DoublesAreExact) {
  Program p;
  EXPECT_EQ(p.Parse({"--seconds", "0.1"}), std::nullopt) << p.error;
  EXPECT_EQ(p.seconds, 0.1);
  EXPECT_EQ(p.Parse({"--seconds=1e-3"}), std::nullopt) << p.error;
  EXPECT_EQ(p.seconds, 1e-3);
  EXPECT_EQ(p.Parse({"--seconds", "123456.789012345"}), std::nullopt);
  EXPECT_EQ(p.seconds, 123456.789012345);
  EXPECT_EQ(p.Parse({"--seconds", "0"}), std::nullopt);
  EXPECT_EQ(p.seconds, 0);
}

TEST(CommandLineTest, ErrorsNameTheFlagAndWhatItTakes) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--count", "101"}, "Prog: --count: 101 not in [0 - 100]\n"},
      {{"--count=-1"}, "Prog: --count: -1 not in [0 - 100]\n"},
      {{"--count", "ten"}, "Prog: --count: ten not in [0 - 100]\n"},
      {{"--bytes", "0"},
       "Prog: --bytes: 0 not in [1 - 18446744073709551615]\n"},
      {{"--bytes", "-1"},
       "Prog: --bytes: -1 not in [1 - 18446744073709551615]\n"},
      {{"--seconds", "-0.5"}, "Prog: --seconds: -0.5 not in [0 - inf)\n"},
      {{"--seconds", "inf"}, "Prog: --seconds: inf not in [0 - inf)\n"},
      {{"--seconds", "nan"}, "Prog: --seconds: nan not in [0 - inf)\n"},
      {{"--timeout", "0.5"}, "Prog: --timeout: 0.5 not in (0.5 - inf)\n"},
      {{"--mode", "move"}, "Prog: --mode: move not in {echo,chat}\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args[0]);
    Program p;
    EXPECT_EQ(p.Parse(c.args), 2);
    EXPECT_EQ(p.error.substr(0, p.error.find('\n') + 1), c.message);
    EXPECT_NE(p.error.find("Run with --help"), std::string::npos) << p.error;
  }
}

TEST(CommandLineTest, UnknownFlagsMissingValuesAndStrayArgumentsFail) {
  Program p;
  EXPECT_EQ(p.Parse({"--bogus", "1"}), 2);
  EXPECT_NE(p.error.find("--bogus"), std::string::npos) << p.error;
  EXPECT_EQ(p.Parse({"--count"}), 2);
  EXPECT_NE(p.error.find("--count"), std::string::npos) << p.error;
  EXPECT_EQ(p.Parse({"stray"}), 2);
  EXPECT_NE(p.error.find("stray"), std::string::npos) << p.error;
}

TEST(CommandLineTest, LaterFlagsWin) {
  Program p;
  EXPECT_EQ(p.Parse({"--count", "1", "--count=2", "--mode", "chat", "--mode",
                     "echo"}),
            std::nullopt)
      << p.error;
  EXPECT_EQ(p.count, 2);
  EXPECT_EQ(p.mode, "echo");
}

TEST(CommandLineTest, HelpExitsZeroAndShowsTheRanges) {
  for (const char* flag : {"--help", "-h"}) {
    SCOPED_TRACE(flag);
    Program p;
    EXPECT_EQ(p.Parse({"--count", "3", flag}), 0);
    EXPECT_EQ(p.error, "");
    EXPECT_NE(p.help.find("--count INT:[0 - 100]"), std::string::npos)
        << p.help;
    EXPECT_NE(p.help.find("--seconds FLOAT:[0 - inf)"), std::string::npos)
        << p.help;
    EXPECT_NE(p.help.find("{echo,chat}"), std::string::npos) << p.help;
  }
}

// What the NATS C client connects to, kept as given; what it would take
// for a server and never reach (no host, a port out of range, another
// scheme) exits 2 before the program starts.
TEST(CommandLineTest, ClusterTakesNatsUrls) {
  for (const char* url :
       {"nats://127.0.0.1:4222", "nats://127.0.0.1", "127.0.0.1:4222",
        "localhost", "tls://broker.example:4443",
        "nats://user:secret@10.0.0.1:4222", "nats://[::1]:4222", "[::1]",
        "nats://a:1,nats://b:2", "nats://a:1, nats://b:2",
        "nats://127.0.0.1:65535"}) {
    SCOPED_TRACE(url);
    Program p;
    EXPECT_EQ(p.Parse({"--cluster", url}), std::nullopt) << p.error;
    EXPECT_EQ(p.cluster, url);
  }
  for (const char* url :
       {"", "nats://", "nats://:4222", "nats://127.0.0.1:", "nats://h:0",
        "nats://h:99999", "nats://h:abc", "nats://h:-1", "http://h:4222",
        "nats://h/path", "nats://[::1", "nats://[::1]x", "nats://a:1,",
        "nats://a:1,,nats://b:2"}) {
    SCOPED_TRACE(url);
    Program p;
    EXPECT_EQ(p.Parse({"--cluster", url}), 2);
    EXPECT_NE(p.error.find("--cluster"), std::string::npos) << p.error;
  }
}

TEST(CommandLineTest, HostTakesAddressesAndNamesThatResolve) {
  for (const char* host :
       {"127.0.0.1", "0.0.0.0", "::1", "::", "localhost", "10.255.255.1"}) {
    SCOPED_TRACE(host);
    Program p;
    EXPECT_EQ(p.Parse({"--host", host}), std::nullopt) << p.error;
    EXPECT_EQ(p.host, host);
  }
  // .invalid never resolves (RFC 2606), with or without a network.
  for (const char* host : {"", "999.1.1.1", "1.2.3", "[::1]", "127.0.0.1:7777",
                           "no-such-host.invalid"}) {
    SCOPED_TRACE(host);
    Program p;
    EXPECT_EQ(p.Parse({"--host", host}), 2);
    EXPECT_NE(p.error.find("--host"), std::string::npos) << p.error;
  }
}

}  // namespace
}  // namespace game
