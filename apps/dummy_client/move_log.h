// MoveLog: when each DummyClient session sent its latest C_MOVEs (--mode
// move), so that the other members of its room can time how long the move
// took to show in their snapshots (WorldChecker's peer checks), and how far
// each mover got (the moves every member must see before the run ends).
//
// Each mover keeps the send times of its last held() moves (at least
// kMinHeld; DummyClient holds about 4 s of moves at its --rate, HeldFor); an
// older move's time is gone (SentAt says so) and its lateness is not
// measured. At 10 moves a second 64 are 6.4 s, far beyond any lateness
// bound; at 1,000 a second 64 were 64 ms, and a late move went untimed.
//
// Thread safety: OnSent is called by the mover's session alone (under its
// send lock); the readers may be on any thread. A reader racing with the
// slot's reuse gets nullopt, never a wrong time.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_MOVE_LOG_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_MOVE_LOG_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace game {

class MoveLog {
 public:
  static constexpr uint32_t kMinHeld = 64;
  // The most memory the send times may take, all movers together.
  static constexpr size_t kMaxBytes = size_t{256} << 20;

  // Enough for `seconds` of moves at `rate` a second, within kMaxBytes for
  // `sessions` movers, and at least kMinHeld.
  static uint32_t HeldFor(double rate, double seconds, size_t sessions) {
    const double wanted = rate * seconds;
    const double affordable = static_cast<double>(
        kMaxBytes / sizeof(Slot) / std::max<size_t>(sessions, 1));
    return static_cast<uint32_t>(
        std::max<double>(kMinHeld, std::min(wanted, affordable)));
  }

  explicit MoveLog(size_t sessions, uint32_t held = kMinHeld)
      : held_(std::max(held, kMinHeld)),
        movers_(sessions),
        slots_(sessions * held_) {}

  uint32_t held() const noexcept { return held_; }

  // Session `index` sent move `seq` (1, 2, …, in order) at `ns`.
  void OnSent(uint32_t index, uint32_t seq, int64_t ns) noexcept {
    Slot& slot = slots_[size_t{index} * held_ + seq % held_];
    slot.seq.store(0, std::memory_order_relaxed);  // being rewritten
    std::atomic_thread_fence(std::memory_order_release);
    slot.ns.store(ns, std::memory_order_relaxed);
    slot.seq.store(seq, std::memory_order_release);
    movers_[index].last.store(seq, std::memory_order_release);
  }

  // The last move session `index` sent (0: none yet).
  uint32_t last(uint32_t index) const noexcept {
    return movers_[index].last.load(std::memory_order_acquire);
  }

  // When session `index` sent move `seq`, if still held.
  std::optional<int64_t> SentAt(uint32_t index, uint32_t seq) const noexcept {
    const Slot& slot = slots_[size_t{index} * held_ + seq % held_];
    if (slot.seq.load(std::memory_order_acquire) != seq) return std::nullopt;
    const int64_t ns = slot.ns.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.seq.load(std::memory_order_relaxed) != seq) return std::nullopt;
    return ns;
  }

  // When session `index` sent move `seq`, or, if that time is gone, when it
  // sent one of the oldest moves it still holds (after `seq`: how long ago
  // `seq` was sent, bounded from below). nullopt if neither is to be had.
  std::optional<int64_t> SentByAt(uint32_t index, uint32_t seq) const noexcept {
    if (const auto sent = SentAt(index, seq)) return sent;
    const uint32_t last = this->last(index);
    if (seq > last || last - seq < held_) return std::nullopt;
    // The second oldest: the oldest may be being rewritten already.
    return SentAt(index, last - held_ + 2);
  }

 private:
  struct Slot {
    std::atomic<uint32_t> seq{0};
    std::atomic<int64_t> ns{0};
  };
  struct Mover {
    std::atomic<uint32_t> last{0};
  };
  const uint32_t held_;
  std::vector<Mover> movers_;
  std::vector<Slot> slots_;  // held_ per mover, mover after mover
};

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_MOVE_LOG_H_
