#include "memory_reclaimer.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "servercore/send_buffer_manager.h"

namespace servercore::internal {

MemoryReclaimer& MemoryReclaimer::Instance() {
  static MemoryReclaimer* const reclaimer = new MemoryReclaimer();
  return *reclaimer;
}

bool MemoryReclaimer::MaybeReclaim(Clock::time_point now) {
  const int64_t ticks = now.time_since_epoch().count();
  int64_t due = next_due_.load(std::memory_order_relaxed);
  if (ticks < due) return false;
  const int64_t next = (now + kPeriod).time_since_epoch().count();
  if (!next_due_.compare_exchange_strong(due, next,
                                         std::memory_order_relaxed)) {
    return false;  // another worker took this period
  }
  SendBufferManager& buffers = SendBufferManager::Instance();
  const size_t chunks_freed = buffers.TrimIdle();
  // Output that was pinned and is no more: large packets' own buffers go
  // straight back to malloc, not through the pool, so a few sessions that
  // queued megabytes of them leave them in malloc's arenas.
  const uint64_t high = buffers.TakePinnedHighWater();
  const uint64_t pinned = buffers.PinnedBytes();
  const bool output_fell = high > pinned && high - pinned >= kFallToTrim;
  if (chunks_freed == 0 && !output_fell &&
      closed_.load(std::memory_order_relaxed) < kClosedSessionsToTrim) {
    return false;
  }
  Reclaim();
  return true;
}

void MemoryReclaimer::Reclaim() {
  closed_.store(0, std::memory_order_relaxed);
  trims_.fetch_add(1, std::memory_order_relaxed);
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

}  // namespace servercore::internal
