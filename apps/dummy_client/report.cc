#include "report.h"

#include <cstdio>
#include <string>

namespace game {
namespace {

using ull = unsigned long long;

// Every error counter a run can raise, the progress line's total.
uint64_t ErrorsSoFar(const LoadState& s) {
  return s.corrupt.load() + s.out_of_order.load() + s.unexpected.load() +
         s.disconnected.load() + s.refused.load() + s.bad_join.load() +
         s.chat_wrong_room.load() + s.chat_sender_id.load() +
         s.bad_pong.load() + s.after_bye.load() + s.world.Violations();
}

constexpr ErrorField kErrorFields[] = {
    {"lost", "lost", &Summary::lost},
    {"corrupt", "corrupt", &Summary::corrupt},
    {"out-of-order", "out_of_order", &Summary::out_of_order},
    {"unexpected", "unexpected", &Summary::unexpected},
    {"disconnected", "disconnected", &Summary::disconnected},
    {"refused", "refused", &Summary::refused},
    {"bad-join", "bad_join", &Summary::bad_join},
    {"chat-wrong-room", "chat_wrong_room", &Summary::chat_wrong_room},
    {"chat-sender-id", "chat_sender_id", &Summary::chat_sender_id},
    {"bad-pong", "bad_pong", &Summary::bad_pong},
    {"after-bye", "after_bye", &Summary::after_bye},
    {"unsolicited", "unsolicited", &Summary::unsolicited, true},
    {"not-full-first", "not_full_first", &Summary::not_full_first, true},
    {"missing-in-full", "missing_in_full", &Summary::missing_in_full, true},
    {"tick-back", "tick_back", &Summary::tick_back, true},
    {"own-seq-back", "own_seq_back", &Summary::own_seq_back, true},
    {"seq-back", "seq_back", &Summary::seq_back, true},
    {"future-seq", "future_seq", &Summary::future_seq, true},
    {"late", "late", &Summary::late, true, &Summary::worst_late_ms},
    {"snapshot-wrong-room", "snapshot_wrong_room",
     &Summary::snapshot_wrong_room, true},
    {"gone-and-present", "gone_and_present", &Summary::gone_and_present, true},
    {"empty-delta", "empty_delta", &Summary::empty_delta, true},
    {"wrong-position", "wrong_position", &Summary::wrong_position, true},
    {"peer-late", "peer_late", &Summary::peer_late, true,
     &Summary::worst_peer_late_ms},
};

// One line of the summary: `heading`, then each error counter of the group
// as "name N", "(worst X ms)" after those that have one.
void PrintErrors(const Summary& s, const char* heading, bool world) {
  std::printf("%s", heading);
  for (const ErrorField& field : kErrorFields) {
    if (field.world != world) continue;
    std::printf("  %s %llu", field.text, static_cast<ull>(s.*field.count));
    if (field.worst_ms != nullptr) {
      std::printf(" (worst %.1f ms)", s.*field.worst_ms);
    }
  }
  std::printf("\n");
}

const char* LatencyMeasures(Mode mode) {
  switch (mode) {
    case Mode::kEcho:
      return "echo_round_trip";
    case Mode::kChat:
      return "chat_round_trip";
    case Mode::kMove:
      return "move_to_snapshot";
  }
  return "?";
}

}  // namespace

std::span<const ErrorField> ErrorFields() noexcept { return kErrorFields; }

uint64_t Summary::errors() const noexcept {
  uint64_t sum = 0;
  for (const ErrorField& field : kErrorFields) sum += this->*field.count;
  return sum;
}

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kEcho:
      return "echo";
    case Mode::kChat:
      return "chat";
    case Mode::kMove:
      return "move";
  }
  return "?";
}

void Progress::Tick() {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - last_).count();
  if (seconds < 1.0) return;
  const uint64_t sent = state_.sent.load();
  const uint64_t received = state_.received.load();
  std::printf(
      "%s[progress] sent %.0f/s received %.0f/s | total sent %llu "
      "received %llu | p99 %.0f us | errors %llu%s",
      terminal_ ? "\r" : "", static_cast<double>(sent - last_sent_) / seconds,
      static_cast<double>(received - last_received_) / seconds,
      static_cast<ull>(sent), static_cast<ull>(received),
      static_cast<double>(state_.latency.Quantile(0.99)) / 1e3,
      static_cast<ull>(ErrorsSoFar(state_)), terminal_ ? "   " : "\n");
  std::fflush(stdout);
  printed_ = true;
  last_ = now;
  last_sent_ = sent;
  last_received_ = received;
}

void Progress::Restart() {
  last_ = std::chrono::steady_clock::now();
  last_sent_ = 0;
  last_received_ = 0;
}

void ResetCounters(LoadState& state) {
  state.sent = 0;
  state.received = 0;
  state.bytes_sent = 0;
  state.bytes_received = 0;
  state.latency.Reset();
  state.world.snapshots = 0;
  state.world.snapshot_bytes = 0;
  state.world.entities = 0;
  state.world.full_snapshots = 0;
  state.world.moves_reflected = 0;
  state.world.over_two_ticks = 0;
}

void Progress::Finish() {
  if (terminal_ && printed_) std::printf("\n");
}

Summary Summarize(const LoadConfig& config, const LoadState& state,
                  double seconds, uint64_t lost,
                  const std::vector<uint64_t>& lost_per_host) {
  Summary s;
  s.mode = ModeName(config.mode);
  s.sessions = config.sessions;
  s.senders = config.senders;
  s.room_size = config.room_size;
  s.seconds = seconds;
  s.sent = state.sent.load();
  s.received = state.received.load();
  s.bytes_sent = state.bytes_sent.load();
  s.bytes_received = state.bytes_received.load();
  s.sent_per_second = seconds > 0 ? static_cast<double>(s.sent) / seconds : 0;
  s.received_per_second =
      seconds > 0 ? static_cast<double>(s.received) / seconds : 0;
  s.latency_measures = LatencyMeasures(config.mode);
  s.latency_count = state.latency.Count();
  s.p50_us = static_cast<double>(state.latency.Quantile(0.50)) / 1e3;
  s.p99_us = static_cast<double>(state.latency.Quantile(0.99)) / 1e3;
  s.p999_us = static_cast<double>(state.latency.Quantile(0.999)) / 1e3;
  s.max_us = static_cast<double>(state.latency.Max()) / 1e3;
  const WorldStats& w = state.world;
  s.tick_learned = config.tick_ms <= 0;
  s.tick_ms = s.tick_learned
                  ? static_cast<double>(w.median_tick_ns.load()) / 1e6
                  : config.tick_ms;
  s.not_judged = w.not_judged.load();
  s.snapshots = w.snapshots.load();
  s.snapshot_bytes = w.snapshot_bytes.load();
  s.entities = w.entities.load();
  s.full_snapshots = w.full_snapshots.load();
  s.moves_reflected = w.moves_reflected.load();
  s.over_two_ticks = w.over_two_ticks.load();
  s.worst_late_ms = static_cast<double>(w.worst_late_ns.load()) / 1e6;
  s.peer_moves_seen = w.peer_moves_seen.load();
  s.peer_over_two_ticks = w.peer_over_two_ticks.load();
  s.worst_peer_late_ms = static_cast<double>(w.worst_peer_late_ns.load()) / 1e6;
  s.pings = state.pings.load();
  s.pongs = state.pongs.load();
  s.foreign_chats = state.foreign_chats.load();
  s.lost = lost;
  s.corrupt = state.corrupt.load();
  s.out_of_order = state.out_of_order.load();
  s.unexpected = state.unexpected.load();
  s.disconnected = state.disconnected.load();
  s.refused = state.refused.load();
  s.bad_join = state.bad_join.load();
  s.chat_wrong_room = state.chat_wrong_room.load();
  s.chat_sender_id = state.chat_sender_id.load();
  s.bad_pong = state.bad_pong.load();
  s.after_bye = state.after_bye.load();
  s.unsolicited = w.unsolicited.load();
  s.not_full_first = w.not_full_first.load();
  s.missing_in_full = w.missing_in_full.load();
  s.tick_back = w.tick_back.load();
  s.own_seq_back = w.own_seq_back.load();
  s.seq_back = w.seq_back.load();
  s.future_seq = w.future_seq.load();
  s.late = w.late.load();
  s.snapshot_wrong_room = w.wrong_room.load();
  s.gone_and_present = w.gone_and_present.load();
  s.empty_delta = w.empty_delta.load();
  s.wrong_position = w.wrong_position.load();
  s.peer_late = w.peer_late.load();
  for (size_t i = 0; i < config.hosts.size() && i < state.per_host.size();
       ++i) {
    const HostCounters& h = state.per_host[i];
    s.hosts.push_back({.name = config.hosts[i].Name(),
                       .sessions = h.connected.load(),
                       .refused = h.refused.load(),
                       .disconnected = h.disconnected.load(),
                       .lost = i < lost_per_host.size() ? lost_per_host[i] : 0,
                       .other_errors = h.errors.load()});
  }
  return s;
}

void PrintSummary(const Summary& s) {
  std::printf(
      "== DummyClient summary (%s, %d sessions, %d sending, %s, %.1f s) ==\n"
      "packets  sent %llu (%.0f/s)  received %llu (%.0f/s)\n"
      "bytes    sent %llu  received %llu\n"
      "latency  (%s) p50 %.0f us  p99 %.0f us  p99.9 %.0f us  max %.0f us  "
      "(%llu samples)\n",
      s.mode.c_str(), s.sessions, s.senders,
      s.room_size > 0 ? ("rooms of " + std::to_string(s.room_size)).c_str()
                      : "all in room 0",
      s.seconds, static_cast<ull>(s.sent), s.sent_per_second,
      static_cast<ull>(s.received), s.received_per_second,
      static_cast<ull>(s.bytes_sent), static_cast<ull>(s.bytes_received),
      s.latency_measures.c_str(), s.p50_us, s.p99_us, s.p999_us, s.max_us,
      static_cast<ull>(s.latency_count));
  if (s.mode == "move") {
    const std::string tick =
        s.tick_ms > 0
            ? std::to_string(static_cast<long long>(s.tick_ms + 0.5)) +
                  (s.tick_learned ? " ms (learned)" : " ms (--tick-ms)")
            : std::string("not learned (no two deltas seen)");
    std::printf(
        "world    tick %s  snapshots %llu (%llu full, %llu bytes, %llu "
        "entities)  moves shown %llu (%llu after 2 ticks, within the grace)  "
        "others' moves seen %llu (%llu after 2 ticks, within the grace)\n",
        tick.c_str(), static_cast<ull>(s.snapshots),
        static_cast<ull>(s.full_snapshots), static_cast<ull>(s.snapshot_bytes),
        static_cast<ull>(s.entities), static_cast<ull>(s.moves_reflected),
        static_cast<ull>(s.over_two_ticks), static_cast<ull>(s.peer_moves_seen),
        static_cast<ull>(s.peer_over_two_ticks));
    if (s.not_judged > 0) {
      std::printf(
          "world    %llu moves shown were not judged late or in time: no tick "
          "was measured (fewer than two deltas); --tick-ms says it\n",
          static_cast<ull>(s.not_judged));
    }
  }
  for (const HostSummary& h : s.hosts) {
    std::printf(
        "host     %s  sessions %llu  errors: refused %llu  disconnected %llu  "
        "lost %llu  other %llu\n",
        h.name.c_str(), static_cast<ull>(h.sessions),
        static_cast<ull>(h.refused), static_cast<ull>(h.disconnected),
        static_cast<ull>(h.lost), static_cast<ull>(h.other_errors));
  }
  std::printf("keepalive pings %llu  pongs %llu\n", static_cast<ull>(s.pings),
              static_cast<ull>(s.pongs));
  if (s.foreign_chats > 0) {
    std::printf(
        "others   %llu chats of clients not of this run (not checked)\n",
        static_cast<ull>(s.foreign_chats));
  }
  PrintErrors(s, "errors ", false);
  PrintErrors(s, "world errors", true);
  // A run that sent nothing (a --rate too low for its --duration, say)
  // showed nothing either way: not a pass, and it says so.
  std::printf("result   %s\n", s.ok()            ? "OK"
                               : s.errors() == 0 ? "FAILED (nothing was sent)"
                                                 : "FAILED");
  std::fflush(stdout);
}

bool WriteJson(const Summary& s, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  std::fprintf(
      f,
      "{\n  \"mode\": \"%s\",\n  \"sessions\": %d,\n  \"senders\": %d,\n"
      "  \"room_size\": %d,\n"
      "  \"seconds\": %.3f,\n  \"packets_sent\": %llu,\n"
      "  \"packets_received\": %llu,\n  \"bytes_sent\": %llu,\n"
      "  \"bytes_received\": %llu,\n  \"sent_per_second\": %.1f,\n"
      "  \"received_per_second\": %.1f,\n"
      "  \"latency_us\": {\"measures\": \"%s\", \"count\": %llu, "
      "\"p50\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f},\n",
      s.mode.c_str(), s.sessions, s.senders, s.room_size, s.seconds,
      static_cast<ull>(s.sent), static_cast<ull>(s.received),
      static_cast<ull>(s.bytes_sent), static_cast<ull>(s.bytes_received),
      s.sent_per_second, s.received_per_second, s.latency_measures.c_str(),
      static_cast<ull>(s.latency_count), s.p50_us, s.p99_us, s.p999_us,
      s.max_us);
  std::fprintf(
      f,
      "  \"world\": {\"tick_ms\": %.1f, \"tick_learned\": %s, "
      "\"moves_not_judged\": %llu, "
      "\"snapshots\": %llu, \"full_snapshots\": %llu, "
      "\"snapshot_bytes\": %llu, \"entities\": %llu, \"moves_shown\": %llu, "
      "\"moves_after_two_ticks\": %llu, \"worst_late_ms\": %.1f, "
      "\"peer_moves_seen\": %llu, \"peer_moves_after_two_ticks\": %llu, "
      "\"worst_peer_late_ms\": %.1f},\n"
      "  \"keepalive\": {\"pings\": %llu, \"pongs\": %llu},\n"
      "  \"foreign_chats\": %llu,\n",
      s.tick_ms, s.tick_learned ? "true" : "false",
      static_cast<ull>(s.not_judged), static_cast<ull>(s.snapshots),
      static_cast<ull>(s.full_snapshots), static_cast<ull>(s.snapshot_bytes),
      static_cast<ull>(s.entities), static_cast<ull>(s.moves_reflected),
      static_cast<ull>(s.over_two_ticks), s.worst_late_ms,
      static_cast<ull>(s.peer_moves_seen),
      static_cast<ull>(s.peer_over_two_ticks), s.worst_peer_late_ms,
      static_cast<ull>(s.pings), static_cast<ull>(s.pongs),
      static_cast<ull>(s.foreign_chats));
  std::fprintf(f, "  \"hosts\": [");
  for (size_t i = 0; i < s.hosts.size(); ++i) {
    const HostSummary& h = s.hosts[i];
    std::fprintf(f,
                 "%s\n    {\"host\": \"%s\", \"sessions\": %llu, "
                 "\"refused\": %llu, \"disconnected\": %llu, \"lost\": %llu, "
                 "\"other_errors\": %llu}",
                 i == 0 ? "" : ",", h.name.c_str(),
                 static_cast<ull>(h.sessions), static_cast<ull>(h.refused),
                 static_cast<ull>(h.disconnected), static_cast<ull>(h.lost),
                 static_cast<ull>(h.other_errors));
  }
  std::fprintf(f, "\n  ],\n");
  std::fprintf(f, "  \"errors\": {");
  for (const ErrorField& field : kErrorFields) {
    std::fprintf(f, "%s\"%s\": %llu", &field == kErrorFields ? "" : ", ",
                 field.json, static_cast<ull>(s.*field.count));
  }
  std::fprintf(f, "},\n  \"ok\": %s\n}\n", s.ok() ? "true" : "false");
  return std::fclose(f) == 0;
}

}  // namespace game
