// The command line of GameServer, DummyClient and ChaosClient, on top of
// CLI11: number checks that say which values a flag takes, and a parse that
// turns --help and errors into an exit code.
//
//   game::CommandLine flags("GameServer: ...", "GameServer");
//   flags.Add("--port", config.port, "TCP port", game::InRange(0, 65535));
//   flags.Add("--stats-interval", config.stats_interval, "seconds",
//             game::AtLeast(0));
//   if (auto exit_code = flags.Parse(argc, argv)) return *exit_code;
//
// A bad command line prints one line naming the flag and what it accepts,
// and the program exits 2:
//
//   GameServer: --port: 70000 not in [0 - 65535]
//   Run with --help for more information.
//
// The number rules rewrite the text they accept: a number is read as
// std::from_chars reads it (the whole text, decimal: "010" is ten,
// "0x10", " 1" and "+1" are errors, and no negative number for an unsigned
// flag), then handed on to CLI11 in a form its own conversion reads back
// exactly.
//
// CLI11 stays inside command_line.cc: it is header-only, and each file that
// declared its options with it took about 15 s to compile, in every build.
#ifndef SERVERCORE_APPS_COMMON_COMMAND_LINE_H_
#define SERVERCORE_APPS_COMMON_COMMAND_LINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace game {

// What a flag accepts. `test` returns why a text is refused ("" if it is
// not); when `rewrites`, it may also rewrite the text into what CLI11 then
// reads (a transform, which CLI11 runs before the checks). `shown` is how
// --help describes the values ("[0 - 100]", "HOST").
struct FlagRule {
  std::string shown;
  std::function<std::string(std::string& text)> test;
  bool rewrites = false;
};

// A number in [min - max]; defined for int, uint64_t and double.
template <typename T>
FlagRule InRange(T min, T max);
// Doubles: finite, and the bounds shown as 0.5, not 0.500000.
template <>
FlagRule InRange<double>(double min, double max);

// A finite number, at least `min`: [min - inf).
FlagRule AtLeast(double min);

// A finite number above `min`: (min - inf).
FlagRule Above(double min);

// A NATS server, or a comma-separated list of them (spaces around the commas
// allowed; GameServer gives the NATS C client a list as its servers), each
// [nats:// or tls://][USER[:PASSWORD]@]HOST[:PORT]: HOST a name, an IPv4
// address or a bracketed IPv6 one, PORT 1 to 65535 (none: the client's
// 4222). The text is kept as given.
FlagRule NatsUrls();
// The URLs of such a list, spaces around the commas removed.
std::vector<std::string> SplitNatsUrls(std::string_view list);

// A host: an IPv4 or IPv6 address (anything with a colon, or only digits and
// dots, is read as one), or a name the resolver knows (looked up once, here). A
// The text is kept as given. An address that is well formed
// but not this machine's is not refused here: binding it fails later, as any
// other failure to listen does.
FlagRule HostAddress();

// One of `names`, shown as {echo,chat}.
FlagRule OneOf(std::vector<std::string> names);

// A program's flags, declared one by one, then parsed from argv.
class CommandLine {
 public:
  // One declared flag, for saying more about it.
  class Flag {
   public:
    // The program does not run without this flag.
    Flag& Required();
    // A list flag: one text splits into values at `separator`.
    Flag& Delimiter(char separator);

   private:
    friend class CommandLine;
    explicit Flag(CLI::Option* option) : option_(option) {}
    CLI::Option* option_;  // owned by the CommandLine
  };

  // `name` is the program's, as errors begin with it.
  CommandLine(const std::string& description, const std::string& name);
  ~CommandLine();
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  // A flag that takes a value into `value` (kept as the default when the
  // flag is not given), if `rule` (when it has a test) accepts it. T is
  // int, uint16_t, uint64_t, double, std::string, or
  // std::vector<std::string> (a list: `rule` takes each of its values).
  template <typename T>
  Flag Add(const std::string& name, T& value, const std::string& help = "",
           FlagRule rule = {});
  // A flag without a value: `on` becomes true when it is given.
  Flag AddSwitch(const std::string& name, bool& on, const std::string& help);

  // Parses argv into the flags declared by now; a flag given more than
  // once takes its last value. nullopt when the program should go on;
  // otherwise the code to exit with: 0 after --help or -h (the help on
  // stdout), 2 after a bad command line (the error, prefixed with the
  // program's name, on stderr).
  std::optional<int> Parse(int argc, char** argv);

 private:
  std::unique_ptr<CLI::App> app_;
};

}  // namespace game

#endif  // SERVERCORE_APPS_COMMON_COMMAND_LINE_H_
