#include "report.h"

#include <cstdio>

namespace game {

void Progress::Tick() {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - last_).count();
  if (seconds < 1.0) return;
  const uint64_t sent = state_.sent.load();
  const uint64_t received = state_.received.load();
  const uint64_t errors = state_.corrupt.load() + state_.out_of_order.load() +
                          state_.unexpected.load() + state_.disconnected.load();
  std::printf(
      "%s[progress] sent %.0f/s received %.0f/s | total sent %llu "
      "received %llu | p99 %.0f us | errors %llu%s",
      terminal_ ? "\r" : "", static_cast<double>(sent - last_sent_) / seconds,
      static_cast<double>(received - last_received_) / seconds,
      static_cast<unsigned long long>(sent),
      static_cast<unsigned long long>(received),
      static_cast<double>(state_.latency.Quantile(0.99)) / 1e3,
      static_cast<unsigned long long>(errors), terminal_ ? "   " : "\n");
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
}

void Progress::Finish() {
  if (terminal_ && printed_) std::printf("\n");
}

Summary Summarize(const LoadConfig& config, const LoadState& state,
                  double seconds, uint64_t lost) {
  Summary s;
  s.mode = config.mode == Mode::kEcho ? "echo" : "chat";
  s.sessions = config.sessions;
  s.senders = config.senders;
  s.seconds = seconds;
  s.sent = state.sent.load();
  s.received = state.received.load();
  s.bytes_sent = state.bytes_sent.load();
  s.bytes_received = state.bytes_received.load();
  s.sent_per_second = seconds > 0 ? static_cast<double>(s.sent) / seconds : 0;
  s.received_per_second =
      seconds > 0 ? static_cast<double>(s.received) / seconds : 0;
  s.latency_count = state.latency.Count();
  s.p50_us = static_cast<double>(state.latency.Quantile(0.50)) / 1e3;
  s.p99_us = static_cast<double>(state.latency.Quantile(0.99)) / 1e3;
  s.p999_us = static_cast<double>(state.latency.Quantile(0.999)) / 1e3;
  s.max_us = static_cast<double>(state.latency.Max()) / 1e3;
  s.lost = lost;
  s.corrupt = state.corrupt.load();
  s.out_of_order = state.out_of_order.load();
  s.unexpected = state.unexpected.load();
  s.disconnected = state.disconnected.load();
  s.refused = state.refused.load();
  return s;
}

void PrintSummary(const Summary& s) {
  std::printf(
      "== DummyClient summary (%s, %d sessions, %d sending, %.1f s) ==\n"
      "packets  sent %llu (%.0f/s)  received %llu (%.0f/s)\n"
      "bytes    sent %llu  received %llu\n"
      "latency  p50 %.0f us  p99 %.0f us  p99.9 %.0f us  max %.0f us  "
      "(%llu round trips)\n"
      "errors   lost %llu  corrupt %llu  out-of-order %llu  unexpected %llu  "
      "disconnected %llu  refused %llu\n"
      "result   %s\n",
      s.mode.c_str(), s.sessions, s.senders, s.seconds,
      static_cast<unsigned long long>(s.sent), s.sent_per_second,
      static_cast<unsigned long long>(s.received), s.received_per_second,
      static_cast<unsigned long long>(s.bytes_sent),
      static_cast<unsigned long long>(s.bytes_received), s.p50_us, s.p99_us,
      s.p999_us, s.max_us, static_cast<unsigned long long>(s.latency_count),
      static_cast<unsigned long long>(s.lost),
      static_cast<unsigned long long>(s.corrupt),
      static_cast<unsigned long long>(s.out_of_order),
      static_cast<unsigned long long>(s.unexpected),
      static_cast<unsigned long long>(s.disconnected),
      static_cast<unsigned long long>(s.refused), s.ok() ? "OK" : "FAILED");
  std::fflush(stdout);
}

bool WriteJson(const Summary& s, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  std::fprintf(
      f,
      "{\n  \"mode\": \"%s\",\n  \"sessions\": %d,\n  \"senders\": %d,\n"
      "  \"seconds\": %.3f,\n  \"packets_sent\": %llu,\n"
      "  \"packets_received\": %llu,\n  \"bytes_sent\": %llu,\n"
      "  \"bytes_received\": %llu,\n  \"sent_per_second\": %.1f,\n"
      "  \"received_per_second\": %.1f,\n"
      "  \"latency_us\": {\"count\": %llu, \"p50\": %.1f, \"p99\": %.1f, "
      "\"p999\": %.1f, \"max\": %.1f},\n"
      "  \"errors\": {\"lost\": %llu, \"corrupt\": %llu, \"out_of_order\": "
      "%llu, \"unexpected\": %llu, \"disconnected\": %llu, \"refused\": "
      "%llu},\n  \"ok\": %s\n}\n",
      s.mode.c_str(), s.sessions, s.senders, s.seconds,
      static_cast<unsigned long long>(s.sent),
      static_cast<unsigned long long>(s.received),
      static_cast<unsigned long long>(s.bytes_sent),
      static_cast<unsigned long long>(s.bytes_received), s.sent_per_second,
      s.received_per_second, static_cast<unsigned long long>(s.latency_count),
      s.p50_us, s.p99_us, s.p999_us, s.max_us,
      static_cast<unsigned long long>(s.lost),
      static_cast<unsigned long long>(s.corrupt),
      static_cast<unsigned long long>(s.out_of_order),
      static_cast<unsigned long long>(s.unexpected),
      static_cast<unsigned long long>(s.disconnected),
      static_cast<unsigned long long>(s.refused), s.ok() ? "true" : "false");
  return std::fclose(f) == 0;
}

}  // namespace game
