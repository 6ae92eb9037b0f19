// LogLimiter: keeps the lines about what peers do (protocol errors, sessions
// the server disconnects, failed accepts) from flooding the log. At most
// kMaxLines such lines are written in any one second (a sliding window, all
// kinds together, process-wide); past that each line is only counted, and
// one summary line a second says how many of each kind were left out.
//
//   LogLimited(LogKind::kProtocolError, "session %llu: protocol error: %s",
//              ...);                  // the library's call sites
//   FlushSuppressedLogs(now);         // each worker, about once a second,
//                                     // so a summary is never left pending
//
// LogLimiter itself takes the time as an argument (tests inject a clock);
// LogLimited and FlushSuppressedLogs use the process-wide instance and the
// steady clock.
//
// Thread safety: every member may be called from any thread (one mutex, taken
// once per limited line, never per packet; FlushSuppressed reads an atomic
// first and locks only when something was suppressed).
#ifndef SERVERCORE_SRC_LOG_LIMITER_H_
#define SERVERCORE_SRC_LOG_LIMITER_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "servercore/mutex.h"
#include "servercore/thread_annotations.h"

namespace servercore::internal {

enum class LogKind : uint8_t {
  kProtocolError,  // a peer broke the wire protocol
  kDisconnect,     // the server closed a session (slow, timeouts, budget)
  kAcceptError,    // accept failed (EMFILE and the like)
  kCount,
};
inline constexpr size_t kLogKindCount = static_cast<size_t>(LogKind::kCount);

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxLines = 20;
  static constexpr auto kWindow = std::chrono::seconds(1);

  using Counts = std::array<uint64_t, kLogKindCount>;

  // The process-wide limiter (immortal).
  static LogLimiter& Instance();

  // True when a line of `kind` may be written at `now`; otherwise it is
  // counted as suppressed.
  bool Admit(LogKind kind, Clock::time_point now);
  // The suppressed counts, once a window has passed since the previous
  // summary (or since the first line suppressed after it); nullopt when no
  // summary is due. Resets the counts it returns.
  std::optional<Counts> TakeSummary(Clock::time_point now);

 private:
  Mutex mu_;
  // When the last kMaxLines admitted lines were written (a ring).
  std::array<Clock::time_point, kMaxLines> admitted_
      SERVERCORE_GUARDED_BY(mu_){};
  size_t admitted_count_ SERVERCORE_GUARDED_BY(mu_) = 0;
  size_t next_ SERVERCORE_GUARDED_BY(mu_) = 0;
  Counts suppressed_ SERVERCORE_GUARDED_BY(mu_){};
  // No summary before this (set by the first suppression after a summary).
  Clock::time_point summary_due_ SERVERCORE_GUARDED_BY(mu_){};
  std::atomic<bool> any_suppressed_{false};
};

// Writes one warning line through the process-wide limiter (and, first, the
// summary of suppressed lines if one is due).
void LogLimited(LogKind kind, const char* format, ...)
    __attribute__((format(printf, 2, 3)));
// Writes the summary line if one is due at `now`; cheap when nothing was
// suppressed. The workers call it about once a second.
void FlushSuppressedLogs(LogLimiter::Clock::time_point now);

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_LOG_LIMITER_H_
