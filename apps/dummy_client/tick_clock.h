// TickClock: the server's tick period as one DummyClient session sees it,
// learned from the snapshots it gets, so that "within two ticks"
// (docs/PROTOCOL.md "Ticks") needs no --tick-ms: the contract's command line
// gives DummyClient none, and a server may tick at any rate.
//
// A snapshot that is not full is sent at its room's tick, and `tick` counts
// the room's ticks (with gaps where nothing changed), so two of them with
// ticks t1 < t2 that arrived at a1 and a2 measure (a2 - a1) / (t2 - t1) per
// tick. A full snapshot comes when a session joins, between ticks, and a
// split snapshot's packets share one tick: neither measures anything.
//
// The period is the median of the last kSamples measures: a client that
// reads two snapshots in one go (a measure near 0), or a server that stalls
// for a while (one measure far too long), moves it by one place, not by its
// size. Joining another room starts the measures' origin again (a room's
// ticks are its own) and keeps the samples (the period is the server's).
//
// Thread safety: none; it belongs to one WorldChecker.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_TICK_CLOCK_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_TICK_CLOCK_H_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace game {

class TickClock {
 public:
  static constexpr size_t kSamples = 9;
  // Measures before the period is taken as known (Known()): with five, a
  // client stall that makes two of them near 0 still leaves the median.
  static constexpr size_t kKnownAfter = 5;

  // A snapshot of the current room that is not full, with `tick`, arrived
  // at `at_ns`.
  void Observe(uint64_t tick, int64_t at_ns) noexcept {
    if (have_last_ && tick > last_tick_ && at_ns >= last_ns_) {
      samples_[next_ % kSamples] =
          (at_ns - last_ns_) / static_cast<int64_t>(tick - last_tick_);
      ++next_;
    }
    if (!have_last_ || tick > last_tick_) {
      have_last_ = true;
      last_tick_ = tick;
      last_ns_ = at_ns;
    }
  }

  // The session is in another room now: its ticks are counted apart.
  void Restart() noexcept { have_last_ = false; }

  size_t samples() const noexcept { return std::min(next_, kSamples); }
  bool Known() const noexcept { return samples() >= kKnownAfter; }

  // The median of the measures so far, or nullopt before the first.
  std::optional<int64_t> PeriodNs() const noexcept {
    const size_t n = samples();
    if (n == 0) return std::nullopt;
    std::array<int64_t, kSamples> sorted = samples_;
    std::nth_element(sorted.begin(), sorted.begin() + n / 2,
                     sorted.begin() + static_cast<std::ptrdiff_t>(n));
    return sorted[n / 2];
  }

 private:
  std::array<int64_t, kSamples> samples_{};
  size_t next_ = 0;  // measures taken; the next goes to next_ % kSamples
  bool have_last_ = false;
  uint64_t last_tick_ = 0;
  int64_t last_ns_ = 0;
};

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_TICK_CLOCK_H_
