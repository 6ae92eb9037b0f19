// GameServer: echo, rooms and chat broadcast over ServerCore, per PROTOCOL.md.
//
//   GameServer                                  # 0.0.0.0:7777, one worker per
//   core GameServer --port 0 --threads 2 --backend epoll --stats-interval 1
//   GameServer --max-packet 65535 --max-pending 1048576 --max-sessions 20000
//
// Prints "listening on HOST:PORT" once it accepts connections, a stats line
// every --stats-interval seconds (0: none), and runs until SIGINT or SIGTERM,
// then closes every session and exits 0.
#include <signal.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include "../common/flags.h"
#include "game_session.h"
#include "room_manager.h"
#include "servercore/backend.h"
#include "servercore/service.h"
#include "stats_printer.h"

namespace {

struct Config {
  std::string host = "0.0.0.0";
  int port = 7777;
  int threads = 0;
  servercore::Backend backend = servercore::Backend::kAuto;
  int max_packet = 4096;
  uint64_t max_pending = 4 * 1024 * 1024;
  uint64_t max_sessions = 100'000;
  double stats_interval = 5;
};

bool ParseConfig(int argc, char** argv, Config* config, int* exit_code) {
  game::Flags flags("GameServer");
  flags.Add("host", &config->host, "address to listen on (0.0.0.0)");
  flags.Add("port", &config->port, "TCP port, 0 picks a free one (7777)");
  flags.Add("threads", &config->threads, "worker threads (one per core)");
  flags.Add(
      "backend",
      [config](std::string_view v) {
        auto parsed = servercore::ParseBackend(v);
        if (parsed) config->backend = *parsed;
        return parsed.has_value();
      },
      "NAME", "auto|uring|epoll (auto)");
  flags.Add("max-packet", &config->max_packet,
            "largest packet accepted, 4..65535 (4096)");
  flags.Add("max-pending", &config->max_pending,
            "unsent bytes before a session is kicked (4194304)");
  flags.Add("max-sessions", &config->max_sessions,
            "open sessions at most (100000)");
  flags.Add("stats-interval", &config->stats_interval,
            "seconds between stats lines, 0 for none (5)");
  bool help = false;
  if (!flags.Parse(argc, argv, &help)) {
    *exit_code = help ? 0 : 2;
    return false;
  }
  if (config->port < 0 || config->port > 65535 || config->max_packet < 4 ||
      config->max_packet > 65535 || config->threads < 0 ||
      config->stats_interval < 0 || config->max_pending == 0) {
    std::fprintf(stderr, "GameServer: a flag value is out of range\n");
    *exit_code = 2;
    return false;
  }
  return true;
}

// Waits for SIGINT/SIGTERM for up to `seconds`; true when one arrived.
bool WaitForSignal(const sigset_t& signals, double seconds) {
  timespec timeout{};
  timeout.tv_sec = static_cast<time_t>(seconds);
  timeout.tv_nsec = static_cast<long>((seconds - std::floor(seconds)) * 1e9);
  for (;;) {
    const int sig = ::sigtimedwait(&signals, nullptr, &timeout);
    if (sig > 0) return true;
    if (errno == EAGAIN) return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  int exit_code = 0;
  if (!ParseConfig(argc, argv, &config, &exit_code)) return exit_code;

  // Block the stop signals in every thread (the workers inherit the mask);
  // the main thread takes them with sigtimedwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  game::RoomManager rooms;
  const auto max_packet = static_cast<size_t>(config.max_packet);
  servercore::ServerService server(
      servercore::ServiceOptions{
          .worker_threads = config.threads,
          .backend = config.backend,
          .max_sessions = config.max_sessions,
          .max_pending_bytes = config.max_pending,
          .recv_buffer_size = std::max<size_t>(16 * 1024, 2 * max_packet)},
      [&rooms, max_packet] {
        return std::make_shared<game::GameSession>(rooms, max_packet);
      });
  if (std::error_code error = server.Start()) {
    std::fprintf(stderr, "GameServer: cannot start: %s\n",
                 error.message().c_str());
    return 1;
  }
  if (std::error_code error =
          server.Listen(config.host, static_cast<uint16_t>(config.port))) {
    std::fprintf(stderr, "GameServer: cannot listen on %s:%d: %s\n",
                 config.host.c_str(), config.port, error.message().c_str());
    return 1;
  }
  std::printf("listening on %s:%u\n", config.host.c_str(),
              unsigned{server.port()});
  std::printf("backend %s, %zu worker threads\n",
              std::string(servercore::ToString(server.backend())).c_str(),
              server.WorkerCount());
  std::fflush(stdout);

  game::StatsPrinter printer(server, rooms);
  const double interval = config.stats_interval > 0 ? config.stats_interval : 1;
  while (!WaitForSignal(signals, interval)) {
    if (config.stats_interval > 0) printer.Print();
  }
  std::printf("stopping\n");
  std::fflush(stdout);
  server.Stop();
  printer.PrintSummary();
  return 0;
}
