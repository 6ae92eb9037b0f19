// DummyClient's output: a progress line while it runs, the summary at the
// end, and the same figures as JSON.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_REPORT_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_REPORT_H_

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "load_session.h"

namespace game {

// Once a second: one updating line on a terminal, a new line otherwise.
class Progress {
 public:
  Progress(const LoadState& state, bool terminal)
      : state_(state), terminal_(terminal) {}
  void Tick();
  void Finish();
  // After ResetCounters: rates start again from zero.
  void Restart();

 private:
  const LoadState& state_;
  const bool terminal_;
  std::chrono::steady_clock::time_point last_ =
      std::chrono::steady_clock::now();
  uint64_t last_sent_ = 0;
  uint64_t last_received_ = 0;
  bool printed_ = false;
};

// One server of the run (LoadConfig::hosts): its sessions, and the errors
// its sessions saw (refused, disconnected, losses, and all the others).
struct HostSummary {
  std::string name;  // "host:port"
  uint64_t sessions = 0;
  uint64_t refused = 0;
  uint64_t disconnected = 0;
  uint64_t lost = 0;
  uint64_t other_errors = 0;
};

struct Summary {
  std::string mode;
  int sessions = 0;
  int senders = 0;
  int room_size = 0;
  double seconds = 0;
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  double sent_per_second = 0;
  double received_per_second = 0;
  // What the latency measures: "echo_round_trip", "chat_round_trip" or
  // "move_to_snapshot" (a move's send to the first snapshot showing it).
  std::string latency_measures;
  uint64_t latency_count = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  // Move mode's figures (WorldStats). The tick moves were judged in: from
  // --tick-ms, or learned from the snapshots (0 if none was learned).
  double tick_ms = 0;
  bool tick_learned = false;
  // Moves shown but never judged late or in time: no tick was measured.
  uint64_t not_judged = 0;
  uint64_t snapshots = 0;
  uint64_t snapshot_bytes = 0;
  uint64_t entities = 0;
  uint64_t full_snapshots = 0;
  uint64_t moves_reflected = 0;
  uint64_t over_two_ticks = 0;  // shown after 2 ticks, within the grace
  double worst_late_ms = 0;
  // Other members' moves shown to a session, how many after two ticks
  // within the grace, and the slowest of the late ones.
  uint64_t peer_moves_seen = 0;
  uint64_t peer_over_two_ticks = 0;
  double worst_peer_late_ms = 0;
  uint64_t pings = 0;
  uint64_t pongs = 0;
  uint64_t foreign_chats = 0;  // other clients' S_CHATs, not checked
  // Errors.
  uint64_t lost = 0;
  uint64_t corrupt = 0;
  uint64_t out_of_order = 0;
  uint64_t unexpected = 0;
  uint64_t disconnected = 0;
  uint64_t refused = 0;
  uint64_t bad_join = 0;
  uint64_t chat_wrong_room = 0;
  uint64_t chat_sender_id = 0;
  uint64_t bad_pong = 0;
  uint64_t after_bye = 0;
  // The world's rules (world_checker.h).
  uint64_t unsolicited = 0;
  uint64_t not_full_first = 0;
  uint64_t missing_in_full = 0;
  uint64_t tick_back = 0;
  uint64_t own_seq_back = 0;
  uint64_t seq_back = 0;
  uint64_t future_seq = 0;
  uint64_t late = 0;
  uint64_t snapshot_wrong_room = 0;
  uint64_t gone_and_present = 0;
  uint64_t empty_delta = 0;
  uint64_t wrong_position = 0;
  uint64_t peer_late = 0;
  std::vector<HostSummary> hosts;

  // The sum of every counter ErrorFields() lists.
  uint64_t errors() const noexcept;
  bool ok() const noexcept { return errors() == 0 && sent > 0; }
};

// One error counter of a Summary: its name in the printed summary and in the
// JSON, whether it is one of the world's rules (printed on the line "world
// errors"), and the worst lateness printed after it, if it has one.
struct ErrorField {
  const char* text;  // "out-of-order"
  const char* json;  // "out_of_order"
  uint64_t Summary::*count;
  bool world = false;
  double Summary::*worst_ms = nullptr;
};

// Every error counter, in the order the reports list them: the one list the
// summary, the JSON and ok() read, so that a new counter cannot be left out
// of any of them.
std::span<const ErrorField> ErrorFields() noexcept;

const char* ModeName(Mode mode);

// Zeroes what a summary reports as throughput and latency (errors stay):
// the end of a warm-up.
void ResetCounters(LoadState& state);

// `lost_per_host`: the losses by the host of the session that missed them.
Summary Summarize(const LoadConfig& config, const LoadState& state,
                  double seconds, uint64_t lost,
                  const std::vector<uint64_t>& lost_per_host = {});
void PrintSummary(const Summary& summary);
[[nodiscard]] bool WriteJson(const Summary& summary, const std::string& path);

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_REPORT_H_
