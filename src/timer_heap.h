// TimerHeap: the timers of one worker, a binary min-heap ordered by due time,
// then by insertion order (timers due at the same instant fire in the order
// they were added). A plain data structure: the caller locks (see
// src/timers.h). Its vector keeps its capacity, so adding and firing a timer
// allocates nothing in steady state.
//
//   heap.Push(TimerEntry{.due = t, .id = id, .queue = q, .job = std::move(j)});
//   while (!heap.empty() && heap.top().due <= now) { ... heap.PopTop(); }
//
// Thread safety: Distinct objects: Safe. Shared objects: Unsafe.
#ifndef SERVERCORE_SRC_TIMER_HEAP_H_
#define SERVERCORE_SRC_TIMER_HEAP_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "servercore/job.h"
#include "servercore/job_queue.h"

namespace servercore::internal {

struct TimerEntry {
  std::chrono::steady_clock::time_point due{};
  // Set by TimerHeap::Push: breaks ties between equal due times.
  uint64_t seq = 0;
  TimerId id = 0;
  // Zero for a one-shot timer.
  std::chrono::nanoseconds period{0};
  // Never a strong reference: a timer does not keep its queue alive.
  std::weak_ptr<JobQueue> queue{};
  // A one-shot timer's job.
  Job job{};
  // A repeating timer's callable; each firing pushes a job holding a
  // reference to it.
  std::shared_ptr<Job> repeat{};
};

class TimerHeap {
 public:
  bool empty() const noexcept { return entries_.empty(); }
  size_t size() const noexcept { return entries_.size(); }
  // The earliest timer. Must not be empty.
  TimerEntry& top() noexcept { return entries_.front(); }
  const TimerEntry& top() const noexcept { return entries_.front(); }

  void Push(TimerEntry entry);
  // Removes and returns the earliest timer. Must not be empty.
  TimerEntry PopTop();
  // The earliest timer is repeating and fired at `now`: its next due time is
  // due + period (no drift), or, when that has passed already, the first
  // due + k * period after `now` (the missed periods are skipped, not
  // fired in a burst).
  void RearmTop(std::chrono::steady_clock::time_point now);
  // Removes the timer `id`, if here: O(n) to find it, O(log n) to remove.
  std::optional<TimerEntry> Remove(TimerId id);
  // Moves every timer out (into `out`, appended); the heap is empty after.
  void TakeAll(std::vector<TimerEntry>& out);

 private:
  static bool Before(const TimerEntry& a, const TimerEntry& b) noexcept {
    return a.due != b.due ? a.due < b.due : a.seq < b.seq;
  }
  void SiftUp(size_t i) noexcept;
  void SiftDown(size_t i) noexcept;
  // Removes entries_[i], returning it.
  TimerEntry RemoveAt(size_t i);

  std::vector<TimerEntry> entries_;
  uint64_t next_seq_ = 0;
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_TIMER_HEAP_H_
