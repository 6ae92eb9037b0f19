// asio_game_server: docs/PROTOCOL.md on plain Boost.Asio, the bar GameServer is
// measured against (docs/DESIGN.md, "Where we are headed"). Same command line
// and output lines as GameServer; --backend is accepted and ignored.
//
//   asio_game_server --port 0 --threads 1
//   asio_game_server --port 7777 --threads 2 --stats-interval 1
//   asio_game_server --port 0 --threads 1 --broadcast copy
//
// Prints "listening on HOST:PORT" once it accepts connections, a stats line
// every --stats-interval seconds (0: none), runs until SIGINT or SIGTERM,
// then closes every session, prints one "[summary]" line and exits 0.
// "writes" in both lines counts writes of a session's whole output (each a
// loop of async_write_some); "write_somes" counts those operations (sendmsg
// calls) Asio issued for them, the number comparable to GameServer's writes.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "asio_peer.h"
#include "asio_server.h"

namespace {

using asio_peer::Config;

constexpr const char* kUsage =
    "usage: asio_game_server [--host 0.0.0.0] [--port 7777] [--threads N]\n"
    "         [--backend auto|uring|epoll (ignored)] [--max-packet 4096]\n"
    "         [--max-pending 4194304] [--max-sessions 100000]\n"
    "         [--stats-interval 5] [--broadcast shared|copy]\n";

template <typename T>
bool ParseNumber(std::string_view text, T* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

// Sets the flag `name` from `value`; false when unknown or malformed.
bool SetFlag(std::string_view name, std::string_view value, Config* config) {
  if (name == "host") {
    config->host = std::string(value);
    return true;
  }
  if (name == "port") return ParseNumber(value, &config->port);
  if (name == "threads") return ParseNumber(value, &config->threads);
  if (name == "backend") {
    return value == "auto" || value == "uring" || value == "epoll";
  }
  if (name == "max-packet") return ParseNumber(value, &config->max_packet);
  if (name == "max-pending") return ParseNumber(value, &config->max_pending);
  if (name == "max-sessions") return ParseNumber(value, &config->max_sessions);
  if (name == "broadcast") {
    if (value != "shared" && value != "copy") return false;
    config->broadcast = value == "shared" ? asio_peer::Broadcast::kShared
                                          : asio_peer::Broadcast::kCopy;
    return true;
  }
  if (name == "stats-interval") {
    return ParseNumber(value, &config->stats_interval);
  }
  return false;
}

// `--name value` or `--name=value`; --copy-broadcast (--broadcast copy, kept
// for old command lines) takes no value.
bool ParseConfig(int argc, char** argv, Config* config, int* exit_code) {
  *exit_code = 2;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      *exit_code = 0;
      return false;
    }
    if (arg == "--copy-broadcast") {
      config->broadcast = asio_peer::Broadcast::kCopy;
      continue;
    }
    if (!arg.starts_with("--")) {
      std::fprintf(stderr, "asio_game_server: unexpected '%s'\n%s", argv[i],
                   kUsage);
      return false;
    }
    arg.remove_prefix(2);
    std::string_view value;
    if (const size_t eq = arg.find('='); eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "asio_game_server: --%s needs a value\n%s",
                   std::string(arg).c_str(), kUsage);
      return false;
    }
    if (!SetFlag(arg, value, config)) {
      std::fprintf(stderr, "asio_game_server: bad flag --%s %s\n%s",
                   std::string(arg).c_str(), std::string(value).c_str(),
                   kUsage);
      return false;
    }
  }
  if (config->port < 0 || config->port > 65535 || config->max_packet < 4 ||
      config->max_packet > 65535 || config->threads < 0 ||
      config->stats_interval < 0 || config->max_pending == 0) {
    std::fprintf(stderr, "asio_game_server: a flag value is out of range\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  int exit_code = 0;
  if (!ParseConfig(argc, argv, &config, &exit_code)) return exit_code;

  asio_peer::Server server(config);
  if (boost::system::error_code error = server.Listen()) {
    std::fprintf(stderr, "asio_game_server: cannot listen on %s:%d: %s\n",
                 config.host.c_str(), config.port, error.message().c_str());
    return 1;
  }
  std::printf("listening on %s:%u\n", config.host.c_str(),
              unsigned{server.port()});
  std::printf("backend asio, %zu worker threads, broadcast %s\n",
              server.WorkerCount(),
              config.broadcast == asio_peer::Broadcast::kCopy
                  ? "copied into each receiver's output"
                  : "one shared buffer");
  std::fflush(stdout);
  server.Run();
  server.PrintSummary();
  return 0;
}
