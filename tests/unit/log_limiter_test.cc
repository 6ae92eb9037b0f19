#include "log_limiter.h"

#include <gtest/gtest.h>

#include <chrono>

namespace servercore::internal {
namespace {

using Clock = LogLimiter::Clock;
using std::chrono::milliseconds;

constexpr size_t kProtocol = static_cast<size_t>(LogKind::kProtocolError);
constexpr size_t kDisconnect = static_cast<size_t>(LogKind::kDisconnect);
constexpr size_t kAccept = static_cast<size_t>(LogKind::kAcceptError);

// A clock the test moves by hand.
const Clock::time_point kStart = Clock::time_point{} + std::chrono::hours(1);

TEST(LogLimiterTest, AdmitsTwentyLinesASecondThenCounts) {
  LogLimiter limiter;
  Clock::time_point now = kStart;
  for (size_t i = 0; i < LogLimiter::kMaxLines; ++i) {
    EXPECT_TRUE(limiter.Admit(LogKind::kProtocolError, now)) << i;
    now += milliseconds(1);
  }
  EXPECT_FALSE(limiter.Admit(LogKind::kProtocolError, now));
  EXPECT_FALSE(limiter.Admit(LogKind::kAcceptError, now));
  EXPECT_FALSE(limiter.Admit(LogKind::kDisconnect, now));
  EXPECT_FALSE(limiter.Admit(LogKind::kDisconnect, now + milliseconds(500)));
  // Nothing is due before a second has passed since the first suppression.
  EXPECT_FALSE(limiter.TakeSummary(now + milliseconds(999)));
  const auto summary = limiter.TakeSummary(now + milliseconds(1000));
  ASSERT_TRUE(summary);
  EXPECT_EQ((*summary)[kProtocol], 1u);
  EXPECT_EQ((*summary)[kAccept], 1u);
  EXPECT_EQ((*summary)[kDisconnect], 2u);
  // Taken: nothing more to say until more is suppressed.
  EXPECT_FALSE(limiter.TakeSummary(now + milliseconds(5000)));
}

// "At most 20 in any one second": a sliding window, not calendar seconds.
TEST(LogLimiterTest, TheWindowSlides) {
  LogLimiter limiter;
  // 20 lines at t = 0..950 ms, every 50 ms.
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(
        limiter.Admit(LogKind::kDisconnect, kStart + milliseconds(50 * i)));
  }
  // At 999 ms the first line is still within the last second.
  EXPECT_FALSE(limiter.Admit(LogKind::kDisconnect, kStart + milliseconds(999)));
  // At 1000 ms it has left the window: one more line, then full again.
  EXPECT_TRUE(limiter.Admit(LogKind::kDisconnect, kStart + milliseconds(1000)));
  EXPECT_FALSE(
      limiter.Admit(LogKind::kDisconnect, kStart + milliseconds(1001)));
  EXPECT_TRUE(limiter.Admit(LogKind::kDisconnect, kStart + milliseconds(1050)));
}

// A flood for ten seconds: 20 lines and then one summary a second, never
// more; every suppressed line is counted in exactly one summary.
TEST(LogLimiterTest, FloodGivesOneSummaryASecond) {
  LogLimiter limiter;
  size_t admitted = 0;
  uint64_t summarized = 0;
  size_t summaries = 0;
  size_t lines_this_second = 0;
  Clock::time_point second_start = kStart;
  for (int ms = 0; ms < 10'000; ++ms) {
    const Clock::time_point now = kStart + milliseconds(ms);
    if (now - second_start >= std::chrono::seconds(1)) {
      EXPECT_LE(lines_this_second, LogLimiter::kMaxLines + 1);  // + summary
      second_start = now;
      lines_this_second = 0;
    }
    if (const auto summary = limiter.TakeSummary(now)) {
      ++summaries;
      ++lines_this_second;
      summarized += (*summary)[kProtocol];
    }
    for (int k = 0; k < 10; ++k) {  // 10,000 lines a second
      if (limiter.Admit(LogKind::kProtocolError, now)) {
        ++admitted;
        ++lines_this_second;
      }
    }
  }
  if (const auto last =
          limiter.TakeSummary(kStart + std::chrono::seconds(11))) {
    ++summaries;
    summarized += (*last)[kProtocol];
  }
  EXPECT_EQ(admitted + summarized, 100'000u);
  EXPECT_LE(admitted, 10 * LogLimiter::kMaxLines);
  EXPECT_GE(summaries, 9u);
  EXPECT_LE(summaries, 11u);
}

TEST(LogLimiterTest, QuietLogHasNoSummary) {
  LogLimiter limiter;
  for (int i = 0; i < 100; ++i) {
    // Ten a second: never limited.
    EXPECT_TRUE(
        limiter.Admit(LogKind::kAcceptError, kStart + milliseconds(100 * i)));
  }
  EXPECT_FALSE(limiter.TakeSummary(kStart + std::chrono::seconds(60)));
}

}  // namespace
}  // namespace servercore::internal
