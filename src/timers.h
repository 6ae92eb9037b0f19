// TimerRegistry: where JobQueue timers live (see include/servercore/job_queue.h
// for what a timer does). Each running IoWorker has a TimerSlot, a TimerHeap
// under the slot's mutex, which the worker fires each round and whose next
// due time bounds its poll timeout. Slot 0 is the pending list: timers added
// while no worker runs, adopted by the next worker to register.
//
//   DoTimer on a worker       --> its own slot (no registry lock, no wake)
//   DoTimer on another thread --> a registered worker's slot, round-robin,
//                                 then Wake (under the registry's mutex)
//   CancelTimer(id)           --> the slot encoded in id (the top 16 bits);
//                                 ids of pending timers: every slot
//
// A firing moves the job into its queue with the slot's mutex held
// (JobQueue::Enqueue, which runs nothing), so once CancelTimer has removed a
// timer under that mutex, no further job of it is pushed. The queue then runs
// (StartExecutor) with no lock held.
//
// Thread safety: everything, any thread (Register and Unregister from the
// worker whose slot it is). Lock order: the registry's mutex, then a slot's
// (slot 0's before any other), then a JobQueue's. Immortal, like
// GlobalJobQueue.
#ifndef SERVERCORE_SRC_TIMERS_H_
#define SERVERCORE_SRC_TIMERS_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "io/worker_thread.h"
#include "servercore/job.h"
#include "servercore/job_queue.h"
#include "servercore/mutex.h"
#include "servercore/thread_annotations.h"
#include "timer_heap.h"

namespace servercore::internal {

class IoWorker;

class TimerSlot {
 public:
  explicit TimerSlot(size_t index) : index_(index) {}
  TimerSlot(const TimerSlot&) = delete;
  TimerSlot& operator=(const TimerSlot&) = delete;

  size_t index() const noexcept { return index_; }
  // The earliest due time, if any timer is armed. Any thread, no lock: the
  // worker asks every round.
  std::optional<std::chrono::steady_clock::time_point> NextDue()
      const noexcept {
    const int64_t due = next_due_.load();
    if (due == kNone) return std::nullopt;
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(due));
  }
  // Pushes the job of every timer due at `now` to its queue (and runs the
  // queue here when that makes this thread its executor); re-arms repeating
  // timers, drops those whose queue is gone. The owning worker only.
  void FireDue(std::chrono::steady_clock::time_point now) SERVERCORE_ON_WORKER;

 private:
  friend class TimerRegistry;

  static constexpr int64_t kNone = INT64_MAX;

  // Keeps next_due_ the heap's earliest due time; after every change.
  void PublishNextDue() SERVERCORE_REQUIRES(mu_) {
    next_due_.store(heap_.empty() ? kNone
                                  : heap_.top().due.time_since_epoch().count());
  }

  const size_t index_;
  Mutex mu_;
  TimerHeap heap_ SERVERCORE_GUARDED_BY(mu_);
  // heap_'s earliest due time (steady_clock ticks), or kNone: read without
  // the lock, so an empty or not-yet-due slot costs its worker no lock.
  std::atomic<int64_t> next_due_{kNone};
  // The worker firing this slot; null for slot 0 and free slots.
  IoWorker* worker_ SERVERCORE_GUARDED_BY(mu_) = nullptr;
};

class TimerRegistry {
 public:
  static TimerRegistry& Instance();

  TimerRegistry(const TimerRegistry&) = delete;
  TimerRegistry& operator=(const TimerRegistry&) = delete;

  // Arms a timer for `queue`, due at `due`; `period` zero and `job` set for
  // a one-shot, `period` positive and `repeat` set for a repeating one.
  TimerId Add(std::weak_ptr<JobQueue> queue,
              std::chrono::steady_clock::time_point due,
              std::chrono::nanoseconds period, Job job,
              std::shared_ptr<Job> repeat);
  bool Cancel(TimerId id);

  // A worker's loop started: it gets a slot, with the pending timers.
  TimerSlot& Register(IoWorker& worker) SERVERCORE_ON_WORKER;
  // Its loop is ending (before its backend shuts down: no Wake reaches it
  // after this returns): its timers are dropped.
  void Unregister(TimerSlot& slot) SERVERCORE_ON_WORKER;

 private:
  TimerRegistry();
  ~TimerRegistry() = default;

  static constexpr int kSlotShift = 48;

  TimerId NextId(size_t slot) noexcept {
    return (static_cast<uint64_t>(slot) << kSlotShift) |
           (serial_.fetch_add(1, std::memory_order_relaxed) &
            ((uint64_t{1} << kSlotShift) - 1));
  }
  TimerSlot* SlotOf(TimerId id);

  Mutex mu_;
  // Slot i at index i; [0] is the pending list. Only grows; slots are reused.
  std::vector<std::unique_ptr<TimerSlot>> slots_ SERVERCORE_GUARDED_BY(mu_);
  std::vector<size_t> free_ SERVERCORE_GUARDED_BY(mu_);
  // Slots with a worker, for round-robin.
  std::vector<size_t> active_ SERVERCORE_GUARDED_BY(mu_);
  size_t next_ SERVERCORE_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> serial_{1};
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_TIMERS_H_
