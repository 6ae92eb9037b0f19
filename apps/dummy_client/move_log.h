// MoveLog: when each DummyClient session sent its latest C_MOVEs (--mode
// move), so that the other members of its room can time how long the move
// took to show in their snapshots (WorldChecker's peer checks), and how far
// each mover got (the moves every member must see before the run ends).
//
// Each mover keeps the send times of its last kHeld moves; an older move's
// time is gone (SentAt says so) and its lateness is not measured. At 10
// moves a second that is 6.4 s, far beyond any lateness bound.
//
// Thread safety: OnSent is called by the mover's session alone (under its
// send lock); the readers may be on any thread. A reader racing with the
// slot's reuse gets nullopt, never a wrong time.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_MOVE_LOG_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_MOVE_LOG_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace game {

class MoveLog {
 public:
  static constexpr uint32_t kHeld = 64;

  explicit MoveLog(size_t sessions) : movers_(sessions) {}

  // Session `index` sent move `seq` (1, 2, …, in order) at `ns`.
  void OnSent(uint32_t index, uint32_t seq, int64_t ns) noexcept {
    Slot& slot = movers_[index].slots[seq % kHeld];
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
    const Slot& slot = movers_[index].slots[seq % kHeld];
    if (slot.seq.load(std::memory_order_acquire) != seq) return std::nullopt;
    const int64_t ns = slot.ns.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.seq.load(std::memory_order_relaxed) != seq) return std::nullopt;
    return ns;
  }

 private:
  struct Slot {
    std::atomic<uint32_t> seq{0};
    std::atomic<int64_t> ns{0};
  };
  struct Mover {
    std::atomic<uint32_t> last{0};
    std::array<Slot, kHeld> slots;
  };
  std::vector<Mover> movers_;
};

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_MOVE_LOG_H_
