#include "log_limiter.h"

#include <cstdarg>

#include "servercore/log.h"

namespace servercore::internal {

LogLimiter& LogLimiter::Instance() {
  static LogLimiter* const limiter = new LogLimiter();
  return *limiter;
}

bool LogLimiter::Admit(LogKind kind, Clock::time_point now) {
  MutexLock lock(mu_);
  // The ring holds the last kMaxLines admissions; the oldest is at next_.
  if (admitted_count_ < kMaxLines || now - admitted_[next_] >= kWindow) {
    admitted_[next_] = now;
    next_ = (next_ + 1) % kMaxLines;
    if (admitted_count_ < kMaxLines) ++admitted_count_;
    return true;
  }
  if (!any_suppressed_.load(std::memory_order_relaxed)) {
    any_suppressed_.store(true, std::memory_order_relaxed);
    if (summary_due_ < now + kWindow) summary_due_ = now + kWindow;
  }
  ++suppressed_[static_cast<size_t>(kind)];
  return false;
}

std::optional<LogLimiter::Counts> LogLimiter::TakeSummary(
    Clock::time_point now) {
  if (!any_suppressed_.load(std::memory_order_relaxed)) return std::nullopt;
  MutexLock lock(mu_);
  if (!any_suppressed_.load(std::memory_order_relaxed) || now < summary_due_) {
    return std::nullopt;
  }
  Counts counts = suppressed_;
  suppressed_ = {};
  any_suppressed_.store(false, std::memory_order_relaxed);
  // The next summary comes a window after this one at the earliest.
  summary_due_ = now + kWindow;
  return counts;
}

void FlushSuppressedLogs(LogLimiter::Clock::time_point now) {
  const std::optional<LogLimiter::Counts> counts =
      LogLimiter::Instance().TakeSummary(now);
  if (!counts) return;
  const auto n = [&](LogKind kind) {
    return static_cast<unsigned long long>(
        (*counts)[static_cast<size_t>(kind)]);
  };
  SERVERCORE_LOG_WARNING(
      "log: more than %zu lines in a second; suppressed since the last "
      "summary: %llu protocol errors, %llu disconnections, %llu accept "
      "failures",
      LogLimiter::kMaxLines, n(LogKind::kProtocolError),
      n(LogKind::kDisconnect), n(LogKind::kAcceptError));
}

void LogLimited(LogKind kind, const char* format, ...) {
  const auto now = LogLimiter::Clock::now();
  FlushSuppressedLogs(now);
  if (!LogLimiter::Instance().Admit(kind, now)) return;
  va_list args;
  va_start(args, format);
  VLog(LogLevel::kWarning, format, args);
  va_end(args);
}

}  // namespace servercore::internal
