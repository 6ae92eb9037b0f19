// DummyClient: load generator and correctness checker for GameServer (or any
// server that keeps docs/PROTOCOL.md), built on ServerCore's ClientService.
//
// Usage: DummyClient [--host 127.0.0.1] [--port 7777]
//                    [--hosts HOST:PORT,HOST:PORT,...] [--sessions 100]
//                    [--mode echo|chat|move] [--room-size 0]
//                    [--first-room 1] [--payload 64]
//                    [--rate R | --depth 1] [--duration 10] [--warmup 0]
//                    [--senders N] [--threads 1] [--tick-ms MS]
//                    [--late-grace-ms 500] [--remote-grace-ms 0]
//                    [--keepalive 10] [--idle 0] [--drain-ms 5000]
//                    [--json FILE]
//
//   DummyClient --port 7777 --sessions 100 --mode echo --payload 64 --depth 16
//   DummyClient --mode chat --sessions 500 --senders 4 --rate 50 --duration 15
//   DummyClient --mode chat --sessions 200 --room-size 50 --rate 10
//   DummyClient --mode move --sessions 200 --room-size 50 --rate 10
//   DummyClient --mode=echo --rate=1000 --duration=10 --json=result.json
//   DummyClient --warmup 2 --duration 10    # counters restart after 2 s
//   DummyClient --duration 20 --idle 30     # then 30 s idle but for C_PING
//   DummyClient --hosts 10.0.0.1:7777,10.0.0.2:7777,[::1]:7777 --mode chat
//               --sessions 300 --room-size 30 --rate 5    # a cluster
//   DummyClient --help
//
// --rate R sends R packets per second per sending session on a fixed schedule
// whatever the replies (open loop: latency counts from the scheduled time, so
// a stalled server cannot hide it); without --rate, --depth D keeps D packets
// in flight per sending session (closed loop). --mode move is always open
// loop (10 moves/s without --rate) and checks every snapshot
// (world_checker.h); it learns the server's tick from the snapshots
// (tick_clock.h) unless --tick-ms says what it is. --room-size N sends session
// i to room i / N + 1 first (i / N + F with --first-room F).
// --hosts deals the sessions out over several servers in turn (session i
// connects to host i % H, so a room's members spread over them all; it
// overrides --host and --port) and checks them as one game: every chat must
// reach every member of its room, whichever server each is on, and in move
// mode every member must see every other member's moves (world_checker.h),
// with --remote-grace-ms more for a mover on another node of a cluster. The
// summary says how many sessions went to each host and the errors seen there.
// --payload takes any size (chat at least 8 bytes); payloads under 24 bytes
// carry DummyClient's header cut short (load_session.h).
// A session that has sent nothing for --keepalive seconds sends C_PING.
// --idle S keeps every session connected for S more seconds after the load
// (and its drain), sending only those pings, between the lines "[idle] start"
// and "[idle] end" (scripts/soak.sh measures the server's memory then).
// Flags take `--name value` or `--name=value`; a bad command line prints
// what is wrong and exits 2. Otherwise exits 0 only when every packet came
// back intact and in order, every snapshot kept the rules, and no connection
// was refused or dropped.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../common/command_line.h"
#include "../common/protocol.h"
#include "host_list.h"
#include "keepalive_sweep.h"
#include "load_session.h"
#include "open_loop_schedule.h"
#include "report.h"
#include "servercore/packet_framer.h"
#include "servercore/service.h"

namespace {

using game::HostPort;
using game::KeepAliveSweep;
using game::LoadConfig;
using game::LoadSession;
using game::LoadState;
using game::Mode;
using servercore::kMaxPacketLimit;
using servercore::kPacketHeaderSize;
using Clock = std::chrono::steady_clock;

Clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(seconds));
}

constexpr double kDefaultMoveRate = 10;  // --mode move without --rate

// Reads the command line into *config; the code to exit with instead of
// running (0 after --help, 2 after a bad command line), or nullopt.
std::optional<int> ParseConfig(int argc, char** argv, LoadConfig* config) {
  constexpr int kMaxInt = std::numeric_limits<int>::max();
  // The largest S_CHAT (docs/PROTOCOL.md) carries a payload of this many
  // bytes after the sender's id.
  constexpr auto kMaxPayload = static_cast<int>(
      kMaxPacketLimit - kPacketHeaderSize - game::kChatSenderSize);
  game::CommandLine flags(
      "DummyClient: load generator and correctness checker for GameServer "
      "(docs/PROTOCOL.md)",
      "DummyClient");
  std::string mode = "echo";
  std::string hosts;
  flags.Add("--host", config->host, "server address (127.0.0.1)",
            game::HostAddress());
  flags.Add("--port", config->port, "server port (7777)",
            game::InRange(1, 65535));
  flags.Add("--hosts", hosts,
            "HOST:PORT,HOST:PORT,...: servers (a cluster's nodes) to "
            "deal the sessions out to in turn, session i to host i % H; "
            "overrides --host and --port",
            {"", [](std::string& text) {
               std::vector<HostPort> parsed;
               std::string error;
               return game::ParseHostList(text, &parsed, &error) ? std::string()
                                                                 : error;
             }});
  flags.Add("--sessions", config->sessions, "connections (100)",
            game::InRange(1, kMaxInt));
  flags.Add("--mode", mode, "echo, chat or move (echo)",
            game::OneOf({"echo", "chat", "move"}));
  flags.Add("--room-size", config->room_size,
            "sessions per room: session i joins room i / N + 1 (0: all "
            "stay in room 0)",
            game::InRange(0, kMaxInt));
  flags.Add("--first-room", config->first_room,
            "with --room-size: the first room id, so that two "
            "DummyClients can share a server without sharing rooms (1)",
            game::InRange(1, kMaxInt));
  flags.Add("--payload", config->payload,
            "payload bytes per packet, up to 4092 with the default "
            "server; chat at least 8 (64)",
            game::InRange(0, kMaxPayload));
  flags.Add("--rate", config->rate,
            "packets/s per sending session, open loop (0: closed loop; "
            "move: 10)",
            game::AtLeast(0));
  flags.Add("--depth", config->depth,
            "closed loop: packets in flight per sending session (1)",
            game::InRange(1, kMaxInt));
  flags.Add("--duration", config->duration, "seconds of load (10)",
            game::Above(0));
  flags.Add("--warmup", config->warmup,
            "seconds of load before the measured --duration (0)",
            game::AtLeast(0));
  flags.Add("--senders", config->senders,
            "chat: sessions that send, the rest only receive (0: all)",
            game::InRange(0, kMaxInt));
  flags.Add("--threads", config->threads, "client worker threads (1)",
            game::InRange(1, kMaxInt));
  flags.Add("--tick-ms", config->tick_ms,
            "move: the server's tick in ms; a move must show in a "
            "snapshot within two (learned from the snapshots)",
            game::Above(0));
  flags.Add("--late-grace-ms", config->late_grace_ms,
            "move: ms allowed beyond two ticks for the network and the "
            "schedulers before a move counts as late (500)",
            game::AtLeast(0));
  flags.Add("--remote-grace-ms", config->remote_grace_ms,
            "move: ms allowed beyond that for a mover on another node "
            "of a cluster (its session id's node differs) (0)",
            game::AtLeast(0));
  flags.Add("--keepalive", config->keepalive,
            "seconds without sending after which a session sends C_PING "
            "(10)",
            game::Above(0));
  flags.Add("--drain-ms", config->drain_ms,
            "ms to wait after the load for packets still owed before "
            "they count as lost; a move's wait is at least two ticks, "
            "the late grace and a second (5000)",
            game::Above(0));
  flags.Add("--idle", config->idle,
            "seconds to stay connected after the load, sending only "
            "C_PING (0)",
            game::AtLeast(0));
  flags.Add("--json", config->json, "also write the summary to this file");
  if (auto exit_code = flags.Parse(argc, argv)) {
    return exit_code;
  }
  std::string error;
  if (hosts.empty()) {
    config->hosts = {
        HostPort{config->host, static_cast<uint16_t>(config->port)}};
  } else if (!game::ParseHostList(hosts, &config->hosts, &error)) {
    // Not reached: the option's check above refused it already.
    std::fprintf(stderr, "DummyClient: --hosts: %s\n", error.c_str());
    return 2;
  }
  config->mode = mode == "chat"   ? Mode::kChat
                 : mode == "move" ? Mode::kMove
                                  : Mode::kEcho;
  if (config->mode == Mode::kChat &&
      config->payload < static_cast<int>(game::kMinChatPayload)) {
    std::fprintf(stderr,
                 "DummyClient: --payload: chat needs at least %zu bytes (the "
                 "sender's index and a magic number tell this run's chats)\n",
                 game::kMinChatPayload);
    return 2;
  }
  if (config->mode == Mode::kMove && config->rate == 0) {
    config->rate = kDefaultMoveRate;
  }
  if (config->mode != Mode::kChat || config->senders == 0) {
    config->senders = config->sessions;
  }
  config->senders = std::min(config->senders, config->sessions);
  return std::nullopt;
}

// Connects every session, one after another (no thundering herd), then waits
// until each is ready: its ping answered, or its S_JOIN back.
bool Connect(servercore::ClientService& client, const LoadConfig& config,
             LoadState& state, std::vector<std::shared_ptr<LoadSession>>& all,
             KeepAliveSweep& keepalive) {
  for (int i = 0; i < config.sessions; ++i) {
    const size_t host =
        game::HostOf(static_cast<uint32_t>(i), config.hosts.size());
    const HostPort& to = config.hosts[host];
    servercore::SessionRef session;
    if (std::error_code error = client.Connect(
            to.host, to.port, std::chrono::seconds(5), &session)) {
      state.refused.fetch_add(1);
      state.per_host[host].refused.fetch_add(1);
      std::fprintf(stderr, "DummyClient: connect %d to %s failed: %s\n", i,
                   to.Name().c_str(), error.message().c_str());
      return false;
    }
    state.per_host[host].connected.fetch_add(1);
    all.push_back(std::static_pointer_cast<LoadSession>(session));
  }
  // 15 s, and a second more per thousand sessions (a loaded server, a
  // cluster answering joins through its broker).
  const double wait_s = 15 + config.sessions / 1000.0;
  const auto deadline = Clock::now() + Seconds(wait_s);
  while (Clock::now() < deadline) {
    if (std::all_of(all.begin(), all.end(),
                    [](const auto& s) { return s->ready(); })) {
      return true;
    }
    keepalive.Tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (const auto& s : all) {
    if (!s->ready()) {
      std::fprintf(
          stderr,
          "DummyClient: session %u (on %s) not answered within %.0f s\n",
          s->index(), config.hosts[s->host()].Name().c_str(), wait_s);
      state.per_host[s->host()].refused.fetch_add(1);
      break;
    }
  }
  state.refused.fetch_add(1);
  return false;
}

// Open loop: sends what each sender's schedule (open_loop_schedule.h) says
// is due, then sleeps until the next packet is due, but at least 100 µs (so a
// high total rate is sent in batches, not by a spinning thread) and at most
// 1 ms (progress). A packet leaves at most about 100 µs plus the timer's
// slack after its time, and its latency still counts from that time.
//
// With rooms, the schedule's slots are dealt out room by room (slot =
// index in room * rooms + room), so each room's members spread over the
// whole interval, as independent players would, instead of sending together
// in one sliver of it: a room's tick would otherwise see its members' moves
// arrive at one phase of its period, and move-to-snapshot latency would
// measure that phase rather than the server.
void RunOpenLoop(const LoadConfig& config, LoadState& state,
                 std::vector<std::shared_ptr<LoadSession>>& senders,
                 game::Progress& progress, KeepAliveSweep& keepalive,
                 Clock::time_point end) {
  constexpr int64_t kMinSleepNs = 100'000;
  constexpr int64_t kMaxSleepNs = 1'000'000;
  const size_t room_size =
      config.room_size > 0 ? static_cast<size_t>(config.room_size) : 0;
  const size_t rooms =
      room_size > 0 ? (senders.size() + room_size - 1) / room_size : 1;
  const auto slot = [&](size_t i) {
    return room_size > 0 ? (i % room_size) * rooms + i / room_size : i;
  };
  const game::OpenLoopSchedule schedule(
      state.start_ns, config.rate,
      room_size > 0 ? room_size * rooms : senders.size());
  while (Clock::now() < end) {
    const int64_t now = LoadSession::NowNs();
    int64_t next = now + kMaxSleepNs;
    for (size_t i = 0; i < senders.size(); ++i) {
      LoadSession& s = *senders[i];
      if (!s.IsConnected()) continue;
      const size_t at = slot(i);
      const uint64_t due = schedule.DueBy(at, now);
      for (uint64_t seq = s.sent(); seq < due && s.IsConnected(); ++seq) {
        s.SendNext(schedule.SendTime(at, seq));
      }
      next = std::min(next, schedule.SendTime(at, s.sent()));
    }
    progress.Tick();
    keepalive.Tick();
    const int64_t sleep_ns =
        std::clamp(next - LoadSession::NowNs(), kMinSleepNs, kMaxSleepNs);
    std::this_thread::sleep_for(std::chrono::nanoseconds(sleep_ns));
  }
}

// Whether `receiver` is in the room of session `sender` (chat reaches it).
bool SameRoom(const LoadConfig& config, size_t sender,
              const LoadSession& receiver) {
  return game::RoomOf(config, static_cast<uint32_t>(sender)) ==
         game::RoomOf(config, receiver.index());
}

// Packets sent and never delivered: to their sender (echo), in move mode
// the moves no snapshot showed to their mover or to another member of its
// room, or in chat to each member of the sender's room, whichever server
// each is on. With `per_host`, each loss is also counted against the host
// of the session that missed it.
uint64_t CountLost(const LoadConfig& config,
                   const std::vector<std::shared_ptr<LoadSession>>& all,
                   size_t senders, std::vector<uint64_t>* per_host = nullptr) {
  uint64_t lost = 0;
  const auto add = [&](const LoadSession& missed_by, uint64_t n) {
    lost += n;
    if (per_host != nullptr && n > 0) (*per_host)[missed_by.host()] += n;
  };
  for (size_t i = 0; i < senders; ++i) {
    const uint64_t sent = all[i]->sent();
    switch (config.mode) {
      case Mode::kEcho:
        add(*all[i], sent - std::min(sent, all[i]->acked()));
        break;
      case Mode::kMove:
        add(*all[i], all[i]->PendingMoves());
        break;
      case Mode::kChat:
        for (const auto& receiver : all) {
          if (!SameRoom(config, i, *receiver)) continue;
          const uint64_t got = receiver->ReceivedFrom(static_cast<uint32_t>(i));
          add(*receiver, sent - std::min(sent, got));
        }
        break;
    }
  }
  // And the chats missing before a later one arrived.
  if (config.mode == Mode::kChat) {
    for (const auto& receiver : all) add(*receiver, receiver->Skipped());
  }
  return lost;
}

// "127.0.0.1:7777", or "3 hosts (a:1, b:2, c:3)".
std::string HostsName(const std::vector<HostPort>& hosts) {
  if (hosts.size() == 1) return hosts[0].Name();
  std::string names;
  for (const HostPort& h : hosts) {
    names += (names.empty() ? "" : ", ") + h.Name();
  }
  return std::to_string(hosts.size()) + " hosts (" + names + ")";
}

}  // namespace

int main(int argc, char** argv) {
  LoadConfig config;
  if (auto exit_code = ParseConfig(argc, argv, &config)) return *exit_code;

  LoadState state(config.hosts.size());
  {
    std::random_device random;
    do {
      state.magic = random();
    } while (state.magic == 0);
    // Any base that leaves room for every session below 2^32.
    const uint64_t bases =
        (uint64_t{1} << 32) - static_cast<uint64_t>(config.sessions);
    state.path_base =
        static_cast<uint32_t>(((uint64_t{random()} << 32) | random()) % bases);
  }
  if (config.mode == Mode::kMove) {
    // About 4 s of moves each: past two ticks and the grace, a move still
    // unseen is late whenever it shows, and is timed.
    const auto sessions = static_cast<size_t>(config.sessions);
    state.moves = std::make_unique<game::MoveLog>(
        sessions, game::MoveLog::HeldFor(config.rate, 4, sessions));
  }
  if (config.mode == Mode::kChat) {
    state.chat_sender_ids = std::make_unique<std::atomic<uint64_t>[]>(
        static_cast<size_t>(config.sessions));
  }
  uint32_t next_index = 0;
  servercore::ClientService client(
      servercore::ServiceOptions{
          .worker_threads = config.threads,
          .max_sessions = static_cast<size_t>(config.sessions),
          // Open loop keeps sending while the server lags: allow a backlog.
          .max_pending_bytes = 256u << 20},
      [&] {
        return std::make_shared<LoadSession>(config, state, next_index++);
      });
  if (std::error_code error = client.Start()) {
    std::fprintf(stderr, "DummyClient: cannot start: %s\n",
                 error.message().c_str());
    return 1;
  }
  std::vector<std::shared_ptr<LoadSession>> sessions;
  KeepAliveSweep keepalive(sessions, config.keepalive);
  const bool connected = Connect(client, config, state, sessions, keepalive);
  const auto senders_count = static_cast<size_t>(
      std::min<int>(config.senders, static_cast<int>(sessions.size())));
  std::vector<std::shared_ptr<LoadSession>> senders(
      sessions.begin(),
      sessions.begin() + static_cast<std::ptrdiff_t>(senders_count));

  game::Progress progress(state, isatty(STDOUT_FILENO) != 0);
  auto measure_start = Clock::now();
  double seconds = 0;
  if (connected) {
    std::printf("DummyClient: %d sessions connected to %s, %s mode, %s\n",
                config.sessions, HostsName(config.hosts).c_str(),
                game::ModeName(config.mode),
                config.rate > 0 ? "open loop" : "closed loop");
    std::fflush(stdout);
    const auto start = Clock::now();
    state.start_ns = LoadSession::NowNs();
    state.sending = true;
    // Runs the load until `until`: the schedule (open loop), or the replies
    // themselves (closed loop, kicked off below).
    auto run_until = [&](Clock::time_point until) {
      if (config.rate > 0) {
        RunOpenLoop(config, state, senders, progress, keepalive, until);
        return;
      }
      while (Clock::now() < until) {
        progress.Tick();
        keepalive.Tick();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    };
    if (config.rate == 0) {
      for (auto& s : senders) {
        for (int d = 0; d < config.depth; ++d) s->SendNext();
      }
    }
    measure_start = start;
    if (config.warmup > 0) {
      run_until(start + Seconds(config.warmup));
      game::ResetCounters(state);
      progress.Restart();
      measure_start = Clock::now();
      std::printf("[measure] start\n");
      std::fflush(stdout);
    }
    run_until(measure_start + Seconds(config.duration));
    seconds =
        std::chrono::duration<double>(Clock::now() - measure_start).count();
    if (config.warmup > 0) {
      std::printf("[measure] end\n");
      std::fflush(stdout);
    }
    state.sending = false;
    // Drain: every packet sent before the end must still arrive (a move: be
    // shown back, late or not).
    // A move waits at least two ticks, the grace and a second: the ticks
    // --tick-ms gives, or the longest any session measured so far (it may
    // learn a longer one while it waits).
    const auto drain_start = Clock::now();
    const auto drain_end = [&] {
      const double tick_ms =
          config.tick_ms > 0
              ? config.tick_ms
              : static_cast<double>(std::max<uint64_t>(
                    state.world.learned_tick_ns.load(),
                    static_cast<uint64_t>(game::kDefaultTickNs))) /
                    1e6;
      return drain_start +
             std::max(Seconds(config.drain_ms / 1e3),
                      Seconds((2 * tick_ms + config.late_grace_ms) / 1e3 + 1));
    };
    while (CountLost(config, sessions, senders_count) > 0 &&
           Clock::now() < drain_end()) {
      keepalive.Tick();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (config.idle > 0) {
      std::printf("[idle] start\n");
      std::fflush(stdout);
      const auto idle_end = Clock::now() + Seconds(config.idle);
      while (Clock::now() < idle_end) {
        keepalive.Tick();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      std::printf("[idle] end\n");
      std::fflush(stdout);
    }
    // Every C_PING is owed its S_PONG: up to --drain-ms for the last ones
    // (Finish counts those that never came). And in echo mode a fence
    // (SendFence), so that no reply sent twice comes after the run stopped
    // reading.
    if (config.mode == Mode::kEcho) {
      for (auto& s : sessions) s->SendFence();
    }
    const auto pongs_end = Clock::now() + Seconds(config.drain_ms / 1e3);
    while (std::any_of(sessions.begin(), sessions.end(),
                       [](const auto& s) {
                         return s->PingsOwed() || s->FenceOwed();
                       }) &&
           Clock::now() < pongs_end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (config.mode == Mode::kMove && config.tick_ms <= 0) {
    // The summary's tick: the median of what the sessions measured.
    std::vector<int64_t> ticks;
    for (const auto& s : sessions) {
      if (const auto tick = s->MeasuredTickNs()) ticks.push_back(*tick);
    }
    if (!ticks.empty()) {
      const auto middle =
          ticks.begin() + static_cast<std::ptrdiff_t>(ticks.size() / 2);
      std::nth_element(ticks.begin(), middle, ticks.end());
      state.world.median_tick_ns = static_cast<uint64_t>(*middle);
    }
  }
  std::vector<uint64_t> lost_per_host(config.hosts.size());
  const uint64_t lost =
      CountLost(config, sessions, senders_count, &lost_per_host);
  for (auto& s : sessions) s->Finish();
  state.stopping = true;
  client.Stop();
  progress.Finish();

  const game::Summary summary =
      game::Summarize(config, state, seconds, lost, lost_per_host);
  game::PrintSummary(summary);
  if (!config.json.empty() && !game::WriteJson(summary, config.json)) {
    std::fprintf(stderr, "DummyClient: cannot write %s\n", config.json.c_str());
    return 1;
  }
  return summary.ok() ? 0 : 1;
}
