// MemoryReclaimer: gives memory back to the kernel once demand has fallen.
//
// The pools give back by themselves what they do not keep in reserve
// (PagePool at each Give; SendBufferManager::TrimIdle). What is left
// is the C library's heap: sessions, their queues and the chunks freed by
// the pool go back to malloc's arenas, which keep the pages. So, at most
// once a second process-wide, a worker calls MaybeReclaim, which trims the
// chunk pool and, when that freed chunks, enough sessions have closed
// since the last time, or the output pinned fell by 4 MiB from its peak
// since then, calls malloc_trim(0) (glibc returns every whole free
// page of every arena, not only the top of the heap). The trim costs the
// worker that runs it about a millisecond per few tens of MiB freed, once,
// after a crowd has left; in a steady state it does not run.
//
// Thread safety: every member may be called from any thread.
#ifndef SERVERCORE_SRC_MEMORY_RECLAIMER_H_
#define SERVERCORE_SRC_MEMORY_RECLAIMER_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace servercore::internal {

class MemoryReclaimer {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kPeriod = std::chrono::seconds(1);
  // Sessions closed since the last trim that make malloc_trim worth it.
  static constexpr uint64_t kClosedSessionsToTrim = 32;
  // A fall of pinned send-buffer memory, from its highest since the last
  // look, that makes malloc_trim worth it.
  static constexpr uint64_t kFallToTrim = 4 << 20;

  static MemoryReclaimer& Instance();

  void NoteSessionClosed() noexcept {
    closed_.fetch_add(1, std::memory_order_relaxed);
  }
  // At most once per kPeriod (the first caller past it wins): trims the
  // chunk pool and, if worth it, the C library's heap. True if it trimmed.
  bool MaybeReclaim(Clock::time_point now);
  // Trims now, whatever the counts say.
  void Reclaim();
  uint64_t trims() const noexcept {
    return trims_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> closed_{0};
  std::atomic<int64_t> next_due_{0};  // Clock ticks
  std::atomic<uint64_t> trims_{0};
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_MEMORY_RECLAIMER_H_
