#include "command_line.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace game {
namespace {

// The number `text` holds, all of it, as std::from_chars reads it.
template <typename T>
std::optional<T> ReadNumber(std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

// `value` as CLI11 reads it back exactly: its integers go through strtoll or
// strtoull with base 0 (a leading 0 would mean octal), its doubles through
// strtold (so a hexadecimal float, which strtold reads without rounding).
std::string ForCli11(int value) { return std::to_string(value); }
std::string ForCli11(uint64_t value) { return std::to_string(value); }
std::string ForCli11(double value) {
  char digits[64];
  const auto [ptr, ec] =
      std::to_chars(digits, digits + sizeof(digits), std::fabs(value),
                    std::chars_format::hex);
  return (std::signbit(value) ? "-0x" : "0x") + std::string(digits, ptr);
}

// A bound as the messages show it: 0.5, not 0.500000.
std::string Show(double value) {
  char digits[64];
  const auto [ptr, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  return std::string(digits, ptr);
}

// A transform accepting the numbers of type T for which accept(value) holds,
// `range` being how the help and the errors describe them.
template <typename T, typename Accept>
FlagRule Number(const std::string& range, Accept accept) {
  return {range,
          [range, accept](std::string& text) {
            const std::optional<T> value = ReadNumber<T>(text);
            if (!value || !accept(*value)) return text + " not in " + range;
            text = ForCli11(*value);
            return std::string();
          },
          /*rewrites=*/true};
}

// Why `url` is not one NATS server's URL (NatsUrls), or "".
std::string NatsUrlError(std::string_view url) {
  std::string_view rest = url;
  if (const size_t scheme = rest.find("://"); scheme != rest.npos) {
    const std::string_view name = rest.substr(0, scheme);
    if (name != "nats" && name != "tls") {
      return "scheme " + std::string(name) + ":// (nats:// or tls://)";
    }
    rest.remove_prefix(scheme + 3);
  }
  if (const size_t at = rest.rfind('@'); at != rest.npos) {
    rest.remove_prefix(at + 1);
  }
  std::string_view host = rest;
  std::optional<std::string_view> port;
  if (rest.starts_with('[')) {
    const size_t close = rest.find(']');
    if (close == rest.npos) return "no ] after the IPv6 address";
    host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return "what follows ] is not :PORT";
      port = rest.substr(1);
    }
  } else if (const size_t colon = rest.find(':'); colon != rest.npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return "no host";
  for (const char c : host) {
    if (c == '/' || c == '[' || c == ']' || c == ' ' || c == '\t') {
      return "host " + std::string(host) + " is not a host";
    }
  }
  if (port) {
    const std::optional<int> number = ReadNumber<int>(*port);
    if (!number || *number < 1 || *number > 65535) {
      return "port " + std::string(*port) + " not in [1 - 65535]";
    }
  }
  return {};
}

}  // namespace

std::vector<std::string> SplitNatsUrls(std::string_view list) {
  std::vector<std::string> urls;
  for (;;) {
    const size_t comma = list.find(',');
    std::string_view url = list.substr(0, comma);
    while (!url.empty() && url.front() == ' ') url.remove_prefix(1);
    while (!url.empty() && url.back() == ' ') url.remove_suffix(1);
    urls.emplace_back(url);
    if (comma == list.npos) return urls;
    list.remove_prefix(comma + 1);
  }
}

FlagRule NatsUrls() {
  return {"nats://HOST:PORT", [](std::string& text) {
            if (text.empty()) return std::string("no NATS server given");
            for (const std::string& url : SplitNatsUrls(text)) {
              if (std::string why = NatsUrlError(url); !why.empty()) {
                return url + ": " + why;
              }
            }
            return std::string();
          }};
}

FlagRule HostAddress() {
  return {"HOST", [](std::string& text) {
            if (text.empty()) return std::string("no host given");
            // What looks like an address is read as one, with no lookup: a
            // typo in an address is not sent to DNS (nor waits on it).
            if (text.find(':') != text.npos ||
                text.find_first_not_of("0123456789.") == text.npos) {
              in6_addr address;
              if (::inet_pton(AF_INET, text.c_str(), &address) == 1 ||
                  ::inet_pton(AF_INET6, text.c_str(), &address) == 1) {
                return std::string();
              }
              return text + ": not an IPv4 or IPv6 address";
            }
            addrinfo hints{};
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            addrinfo* result = nullptr;
            const int r = ::getaddrinfo(text.c_str(), nullptr, &hints, &result);
            if (r != 0) {
              return text + ": not an address, nor a name that resolves (" +
                     ::gai_strerror(r) + ")";
            }
            ::freeaddrinfo(result);
            return std::string();
          }};
}

FlagRule OneOf(std::vector<std::string> names) {
  const CLI::Validator member = CLI::IsMember(std::move(names));
  return {member.get_description(),
          [member](std::string& text) { return member(text); }};
}

template <typename T>
FlagRule InRange(T min, T max) {
  return Number<T>(
      "[" + std::to_string(min) + " - " + std::to_string(max) + "]",
      [min, max](T value) { return value >= min && value <= max; });
}

template FlagRule InRange<int>(int min, int max);
template FlagRule InRange<uint64_t>(uint64_t min, uint64_t max);

template <>
FlagRule InRange<double>(double min, double max) {
  return Number<double>(
      "[" + Show(min) + " - " + Show(max) + "]", [min, max](double value) {
        return std::isfinite(value) && value >= min && value <= max;
      });
}

FlagRule AtLeast(double min) {
  return Number<double>("[" + Show(min) + " - inf)", [min](double value) {
    return std::isfinite(value) && value >= min;
  });
}

FlagRule Above(double min) {
  return Number<double>("(" + Show(min) + " - inf)", [min](double value) {
    return std::isfinite(value) && value > min;
  });
}

CommandLine::Flag& CommandLine::Flag::Required() {
  option_->required();
  return *this;
}

CommandLine::Flag& CommandLine::Flag::Delimiter(char separator) {
  option_->delimiter(separator);
  return *this;
}

CommandLine::CommandLine(const std::string& description,
                         const std::string& name)
    : app_(std::make_unique<CLI::App>(description, name)) {}

CommandLine::~CommandLine() = default;

template <typename T>
CommandLine::Flag CommandLine::Add(const std::string& name, T& value,
                                   const std::string& help, FlagRule rule) {
  CLI::Option* option = app_->add_option(name, value, help);
  if (rule.test) {
    const bool rewrites = rule.rewrites;
    CLI::Validator validator(std::move(rule.test), std::move(rule.shown));
    if (rewrites) {
      option->transform(std::move(validator));
    } else {
      option->check(std::move(validator));
    }
  }
  return Flag(option);
}

template CommandLine::Flag CommandLine::Add(const std::string&, int&,
                                            const std::string&, FlagRule);
template CommandLine::Flag CommandLine::Add(const std::string&, uint16_t&,
                                            const std::string&, FlagRule);
template CommandLine::Flag CommandLine::Add(const std::string&, uint64_t&,
                                            const std::string&, FlagRule);
template CommandLine::Flag CommandLine::Add(const std::string&, double&,
                                            const std::string&, FlagRule);
template CommandLine::Flag CommandLine::Add(const std::string&, std::string&,
                                            const std::string&, FlagRule);
template CommandLine::Flag CommandLine::Add(const std::string&,
                                            std::vector<std::string>&,
                                            const std::string&, FlagRule);

CommandLine::Flag CommandLine::AddSwitch(const std::string& name, bool& on,
                                         const std::string& help) {
  return Flag(app_->add_flag(name, on, help));
}

std::optional<int> CommandLine::Parse(int argc, char** argv) {
  app_->failure_message([](const CLI::App* failed, const CLI::Error& error) {
    return failed->get_name() + ": " + error.what() +
           "\nRun with --help for more information.\n";
  });
  // A flag given twice takes its last value: a script or a test appends
  // flags to a base command line, and the later ones win.
  for (CLI::Option* option : app_->get_options()) {
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  try {
    app_->parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // Prints the help (stdout) or the error (stderr).
    return app_->exit(error) == 0 ? 0 : 2;
  }
  return std::nullopt;
}

}  // namespace game
