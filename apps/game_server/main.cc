// GameServer: echo, rooms, chat broadcast and a world that ticks, over
// ServerCore, per docs/PROTOCOL.md.
//
// Usage: GameServer [--host 0.0.0.0] [--port 7777] [--threads N]
//                   [--backend auto|uring|epoll] [--max-packet 4096]
//                   [--max-pending 4194304] [--max-memory 1073741824]
//                   [--max-sessions 100000]
//                   [--stats-interval 5] [--tick-ms 50] [--idle-timeout 60]
//                   [--packet-timeout 10] [--send-stall-timeout 0]
//                   [--naive-snapshots]
//                   [--cluster nats://HOST:PORT --node-id N]
//                   [--node-expiry 3]
//
//   GameServer                    # 0.0.0.0:7777, one worker thread per core
//   GameServer --port 0 --threads 2 --backend epoll --stats-interval 1
//   GameServer --max-packet=65535 --max-pending=1048576 --max-sessions=20000
//   GameServer --max-memory 268435456  # 256 MiB for the sessions' buffers
//   GameServer --idle-timeout 0 --packet-timeout 2.5  # never idle-kick
//   GameServer --send-stall-timeout 30  # kick a client that stopped
//                                 # reading for 30 s, even under
//                                 # --max-pending
//   GameServer --tick-ms 100      # rooms tick at 10 Hz
//   GameServer --naive-snapshots  # benchmarks only: encode per receiver
//   GameServer --cluster nats://127.0.0.1:4222 --node-id 1  # a node of a
//                                 # cluster (docs/CLUSTER.md)
//   GameServer --help
//
// Flags take `--name value` or `--name=value`. A value out of range, an
// unknown flag or a stray argument prints what is wrong and exits 2.
// Prints "listening on HOST:PORT" once it accepts connections, a stats line
// every --stats-interval seconds (0: none), and runs until SIGINT or SIGTERM,
// then closes every session and exits 0.
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../common/command_line.h"
#include "cluster_link.h"
#include "game_session.h"
#include "room_directory.h"
#include "servercore/backend.h"
#include "servercore/packet_framer.h"
#include "servercore/service.h"
#include "stats_printer.h"

namespace {

using servercore::kMaxPacketLimit;
using servercore::kPacketHeaderSize;

struct Config {
  std::string host = "0.0.0.0";
  int port = 7777;
  int threads = 0;
  servercore::Backend backend = servercore::Backend::kAuto;
  int max_packet = 4096;
  uint64_t max_pending = 4 * 1024 * 1024;
  uint64_t max_memory = uint64_t{1} << 30;
  uint64_t max_sessions = 100'000;
  double stats_interval = 5;
  double idle_timeout = 60;       // seconds, 0 = never
  double packet_timeout = 10;     // seconds, 0 = never
  double send_stall_timeout = 0;  // seconds, 0 = never
  int tick_ms = 50;
  bool naive_snapshots = false;
  std::string cluster;  // nats://HOST:PORT, empty when standalone
  int node_id = 0;
  double node_expiry = 3;  // seconds
};

// The nearest whole milliseconds, and at least one for any time above 0:
// a timeout under half a millisecond must not become 0, which means never.
std::chrono::milliseconds Millis(double seconds) {
  if (seconds <= 0) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(
      std::max<int64_t>(1, std::llround(seconds * 1000)));
}

// Reads the command line into *config; the code to exit with instead of
// running (0 after --help, 2 after a bad command line), or nullopt.
std::optional<int> ParseConfig(int argc, char** argv, Config* config) {
  game::CommandLine flags(
      "GameServer: echo, rooms, chat broadcast and a ticking world over "
      "ServerCore "
      "(docs/PROTOCOL.md)",
      "GameServer");
  std::string backend = "auto";
  flags.Add("--host", config->host, "address to listen on (0.0.0.0)",
            game::HostAddress());
  flags.Add("--port", config->port, "TCP port, 0 picks a free one (7777)",
            game::InRange(0, 65535));
  flags.Add("--threads", config->threads,
            "worker threads, 0 for one per core (0)",
            game::InRange(0, std::numeric_limits<int>::max()));
  flags.Add("--backend", backend, "I/O backend (auto)",
            game::OneOf({"auto", "uring", "epoll", "io_uring"}));
  flags.Add("--max-packet", config->max_packet,
            "largest packet accepted, in bytes (4096)",
            game::InRange(static_cast<int>(kPacketHeaderSize),
                          static_cast<int>(kMaxPacketLimit)));
  flags.Add("--max-pending", config->max_pending,
            "unsent bytes before a session is kicked (4194304)",
            game::InRange<uint64_t>(1, std::numeric_limits<uint64_t>::max()));
  flags.Add("--max-memory", config->max_memory,
            "bytes for the sessions' buffers: past 90% no new "
            "connection is accepted, past 100% the largest holders of "
            "unsent output are kicked (1073741824)",
            game::InRange<uint64_t>(1, std::numeric_limits<uint64_t>::max()));
  flags.Add("--max-sessions", config->max_sessions,
            "open sessions at most (100000)",
            game::InRange<uint64_t>(0, std::numeric_limits<uint64_t>::max()));
  flags.Add("--stats-interval", config->stats_interval,
            "seconds between stats lines, 0 for none (5)", game::AtLeast(0));
  flags.Add("--idle-timeout", config->idle_timeout,
            "seconds without a complete packet before a session is "
            "kicked, 0 for never (60)",
            game::InRange(0.0, 1e6));
  flags.Add("--packet-timeout", config->packet_timeout,
            "seconds a begun packet may take to complete, 0 for never "
            "(10)",
            game::InRange(0.0, 1e6));
  flags.Add("--send-stall-timeout", config->send_stall_timeout,
            "seconds a client may leave output unread (its socket "
            "taking none) before it is kicked as a slow receiver, even "
            "under --max-pending; 0 for never (0)",
            game::InRange(0.0, 1e6));
  flags.Add("--tick-ms", config->tick_ms,
            "milliseconds between a room's ticks (50, i.e. 20 Hz)",
            game::InRange(1, 60'000));
  flags.AddSwitch("--naive-snapshots", config->naive_snapshots,
                  "encode each receiver's snapshot for it alone (the naive "
                  "design, kept to benchmark against)");
  flags.Add("--cluster", config->cluster,
            "NATS server of the cluster this node joins, "
            "nats://HOST:PORT (none: standalone)",
            game::NatsUrls());
  flags.Add("--node-id", config->node_id,
            "this node's id in the cluster, unique, 1..65535",
            game::InRange(1, 65535));
  flags.Add("--node-expiry", config->node_expiry,
            "seconds without a word from another node before its "
            "members leave; at least two of its 1 s heartbeats (3)",
            game::InRange(2.0, 3600.0));
  if (auto exit_code = flags.Parse(argc, argv)) {
    return exit_code;
  }
  if (config->cluster.empty() != (config->node_id == 0)) {
    std::fprintf(stderr, "GameServer: --cluster and --node-id go together\n");
    return 2;
  }
  config->backend = *servercore::ParseBackend(backend);  // checked above
  return std::nullopt;
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
  if (auto exit_code = ParseConfig(argc, argv, &config)) return *exit_code;

  // Block the stop signals in every thread (the workers inherit the mask);
  // the main thread takes them with sigtimedwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The cluster: ids name this node; the link outlives the rooms.
  std::unique_ptr<game::ClusterLink> cluster;
  if (!config.cluster.empty()) {
    const auto node = static_cast<uint16_t>(config.node_id);
    servercore::Session::SetIdBase(uint64_t{node} << 48);
    cluster = std::make_unique<game::ClusterLink>(
        game::ClusterOptions{.servers = game::SplitNatsUrls(config.cluster),
                             .node_id = node,
                             .node_expiry = Millis(config.node_expiry)});
  }
  game::RoomDirectory rooms(
      game::WorldOptions{.tick = std::chrono::milliseconds(config.tick_ms),
                         .epoch = game::WallClockEpoch(),
                         .shared_snapshots = !config.naive_snapshots,
                         .cluster = cluster.get(),
                         .node_id = static_cast<uint16_t>(config.node_id)},
      config.max_memory);
  if (cluster != nullptr) {
    const std::string error = cluster->Start(
        [&rooms](std::vector<std::pair<uint32_t, uint32_t>>& out) {
          rooms.Counts(out);
        });
    if (!error.empty()) {
      std::fprintf(stderr, "GameServer: cannot join the cluster: %s\n",
                   error.c_str());
      return 1;
    }
  }
  // A start that fails past here: the link's thread, which reads the rooms
  // for its presence, ends before they go (as on a normal stop).
  auto fail = [&cluster] {
    if (cluster != nullptr) cluster->Stop();
    return 1;
  };
  const auto max_packet = static_cast<size_t>(config.max_packet);
  servercore::ServerService server(
      servercore::ServiceOptions{
          .worker_threads = config.threads,
          .backend = config.backend,
          .max_sessions = config.max_sessions,
          .max_pending_bytes = config.max_pending,
          .recv_buffer_size = std::max<size_t>(16 * 1024, 2 * max_packet),
          .send_stall_timeout = Millis(config.send_stall_timeout),
          .idle_timeout = Millis(config.idle_timeout),
          .packet_timeout = Millis(config.packet_timeout),
          .max_memory = config.max_memory},
      [&rooms, max_packet] {
        return std::make_shared<game::GameSession>(rooms, max_packet);
      });
  // The rooms' queued work counts in the server's memory budget; the
  // guard detaches it before the server goes, whichever way main returns.
  rooms.work().Attach(server);
  struct DetachWork {
    game::RoomWork& work;
    ~DetachWork() { work.Detach(); }
  } detach_work{rooms.work()};
  if (std::error_code error = server.Start()) {
    std::fprintf(stderr, "GameServer: cannot start: %s\n",
                 error.message().c_str());
    return fail();
  }
  if (std::error_code error =
          server.Listen(config.host, static_cast<uint16_t>(config.port))) {
    std::fprintf(stderr, "GameServer: cannot listen on %s:%d: %s\n",
                 config.host.c_str(), config.port, error.message().c_str());
    return fail();
  }
  std::printf("listening on %s:%u\n", config.host.c_str(),
              unsigned{server.port()});
  std::printf("backend %s, %zu worker threads\n",
              std::string(servercore::ToString(server.backend())).c_str(),
              server.WorkerCount());
  if (cluster != nullptr) {
    std::printf("cluster node %d via %s\n", config.node_id,
                config.cluster.c_str());
  }
  std::fflush(stdout);

  game::StatsPrinter printer(server, rooms, cluster.get());
  const double interval = config.stats_interval > 0 ? config.stats_interval : 1;
  while (!WaitForSignal(signals, interval)) {
    if (config.stats_interval > 0) printer.Print();
  }
  std::printf("stopping\n");
  std::fflush(stdout);
  server.Stop();
  // Then the link: the leaves the rooms published as their sessions closed
  // go out, and an empty presence, so other nodes count them out at once.
  if (cluster != nullptr) cluster->Stop();
  printer.PrintSummary();
  return 0;
}
