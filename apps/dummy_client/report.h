// DummyClient's output: a progress line while it runs, the summary at the
// end, and the same figures as JSON.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_REPORT_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_REPORT_H_

#include <chrono>
#include <cstdint>
#include <string>

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

struct Summary {
  std::string mode;
  int sessions = 0;
  int senders = 0;
  double seconds = 0;
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  double sent_per_second = 0;
  double received_per_second = 0;
  uint64_t latency_count = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  uint64_t lost = 0;
  uint64_t corrupt = 0;
  uint64_t out_of_order = 0;
  uint64_t unexpected = 0;
  uint64_t disconnected = 0;
  uint64_t refused = 0;

  uint64_t errors() const noexcept {
    return lost + corrupt + out_of_order + unexpected + disconnected + refused;
  }
  bool ok() const noexcept { return errors() == 0 && sent > 0; }
};

// Zeroes what a summary reports as throughput and latency (errors stay):
// the end of a warm-up.
void ResetCounters(LoadState& state);

Summary Summarize(const LoadConfig& config, const LoadState& state,
                  double seconds, uint64_t lost);
void PrintSummary(const Summary& summary);
[[nodiscard]] bool WriteJson(const Summary& summary, const std::string& path);

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_REPORT_H_
