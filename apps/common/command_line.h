// The command-line pieces GameServer and DummyClient share, on top of CLI11:
// number checks that say which values a flag takes, and a parse that turns
// --help and errors into an exit code.
//
//   CLI::App app("GameServer: ...", "GameServer");
//   app.add_option("--port", config.port, "TCP port")
//       ->transform(game::InRange(0, 65535));
//   app.add_option("--stats-interval", config.stats_interval, "seconds")
//       ->transform(game::AtLeast(0));
//   if (auto exit_code = game::ParseCommandLine(app, argc, argv)) {
//     return *exit_code;
//   }
//
// A bad command line prints one line naming the flag and what it accepts,
// and the program exits 2:
//
//   GameServer: --port: 70000 not in [0 - 65535]
//   Run with --help for more information.
//
// The checks are transforms (->transform, not ->check): a number is read as
// std::from_chars reads it (the whole text, decimal: "010" is ten, "0x10",
// " 1" and "+1" are errors, and no negative number for an unsigned flag),
// then handed on to CLI11 in a form its own conversion reads back exactly.
#ifndef SERVERCORE_APPS_COMMON_COMMAND_LINE_H_
#define SERVERCORE_APPS_COMMON_COMMAND_LINE_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace game {

// A number in [min - max]; defined for int, uint64_t and double.
template <typename T>
CLI::Validator InRange(T min, T max);
// Doubles: finite, and the bounds shown as 0.5, not 0.500000.
template <>
CLI::Validator InRange<double>(double min, double max);

// A finite number, at least `min`: [min - inf).
CLI::Validator AtLeast(double min);

// A finite number above `min`: (min - inf).
CLI::Validator Above(double min);

// A NATS server, or a comma-separated list of them (spaces around the commas
// allowed; GameServer gives the NATS C client a list as its servers), each
// [nats:// or tls://][USER[:PASSWORD]@]HOST[:PORT]: HOST a name, an IPv4
// address or a bracketed IPv6 one, PORT 1 to 65535 (none: the client's
// 4222). A check (->check): the text is kept as given.
CLI::Validator NatsUrls();
// The URLs of such a list, spaces around the commas removed.
std::vector<std::string> SplitNatsUrls(std::string_view list);

// A host: an IPv4 or IPv6 address (anything with a colon, or only digits and
// dots, is read as one), or a name the resolver knows (looked up once, here). A
// check (->check): the text is kept as given. An address that is well formed
// but not this machine's is not refused here: binding it fails later, as any
// other failure to listen does.
CLI::Validator HostAddress();

// Parses argv into `app`, whose options are all declared by now; a flag
// given more than once takes its last value. nullopt when the program should
// go on; otherwise the code to exit with: 0 after --help or -h (the help on
// stdout), 2 after a bad command line (the error, prefixed with the
// program's name, on stderr).
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv);

}  // namespace game

#endif  // SERVERCORE_APPS_COMMON_COMMAND_LINE_H_
