#include "timers.h"

#include <algorithm>
#include <utility>

#include "global_job_queue.h"
#include "io/io_worker.h"
#include "servercore/check.h"

namespace servercore {

TimerId JobQueue::AddTimer(std::chrono::milliseconds delay, Job job) {
  SERVERCORE_CHECK(!weak_from_this().expired(),
                   "a JobQueue must be owned by a std::shared_ptr");
  return internal::TimerRegistry::Instance().Add(
      weak_from_this(),
      std::chrono::steady_clock::now() + std::max(delay, delay.zero()),
      std::chrono::nanoseconds(0), std::move(job), nullptr);
}

TimerId JobQueue::AddRepeatingTimer(std::chrono::steady_clock::time_point first,
                                    std::chrono::milliseconds period,
                                    std::shared_ptr<Job> callable) {
  SERVERCORE_CHECK(period.count() > 0, "a repeating timer needs a period");
  SERVERCORE_CHECK(!weak_from_this().expired(),
                   "a JobQueue must be owned by a std::shared_ptr");
  return internal::TimerRegistry::Instance().Add(
      weak_from_this(), first, period, Job(), std::move(callable));
}

bool JobQueue::CancelTimer(TimerId id) {
  return internal::TimerRegistry::Instance().Cancel(id);
}

namespace internal {

void TimerSlot::FireDue(std::chrono::steady_clock::time_point now) {
  if (next_due_.load() > now.time_since_epoch().count()) return;  // fast path
  for (;;) {
    // Released after the lock: the last reference to a queue, or a dropped
    // timer's captures, may run the application's destructors.
    std::shared_ptr<JobQueue> queue;
    std::optional<TimerEntry> dropped;
    bool start = false;
    {
      MutexLock lock(mu_);
      SERVERCORE_DCHECK(worker_ != nullptr && worker_->InWorkerThread(),
                        "timer slot %zu fired off its worker's thread", index_);
      if (heap_.empty() || heap_.top().due > now) return;
      TimerEntry& top = heap_.top();
      queue = top.queue.lock();
      if (queue == nullptr) {
        dropped = heap_.PopTop();  // its queue is gone
      } else if (top.repeat != nullptr) {
        start = queue->Enqueue(Job([callable = top.repeat] { (*callable)(); }),
                               JobKey{});
        heap_.RearmTop(now);
      } else {
        start = queue->Enqueue(std::move(heap_.PopTop().job), JobKey{});
      }
      PublishNextDue();
    }
    // This thread executes no queue between rounds: the queue runs here,
    // for at most its slice.
    if (start) queue->StartExecutor(JobKey{});
  }
}

TimerRegistry& TimerRegistry::Instance() {
  // Never destroyed (see the header).
  static TimerRegistry* const instance = new TimerRegistry();
  return *instance;
}

TimerRegistry::TimerRegistry() {
  MutexLock lock(mu_);
  slots_.push_back(std::make_unique<TimerSlot>(0));
}

TimerId TimerRegistry::Add(std::weak_ptr<JobQueue> queue,
                           std::chrono::steady_clock::time_point due,
                           std::chrono::nanoseconds period, Job job,
                           std::shared_ptr<Job> repeat) {
  TimerEntry entry{.due = due,
                   .period = period,
                   .queue = std::move(queue),
                   .job = std::move(job),
                   .repeat = std::move(repeat)};
  // On a worker whose loop runs: its own heap; it computes its poll timeout
  // after this round, so it needs no wake-up.
  if (IoWorker* const worker = CurrentWorker(); worker != nullptr) {
    worker->AssertInWorkerThread();
    if (TimerSlot* const own = worker->timer_slot(); own != nullptr) {
      entry.id = NextId(own->index());
      const TimerId id = entry.id;
      MutexLock lock(own->mu_);
      own->heap_.Push(std::move(entry));
      own->PublishNextDue();
      return id;
    }
  }
  MutexLock lock(mu_);
  TimerSlot* slot = slots_[0].get();
  if (!active_.empty()) {
    next_ = (next_ + 1) % active_.size();
    slot = slots_[active_[next_]].get();
  }
  entry.id = NextId(slot->index());
  const TimerId id = entry.id;
  IoWorker* worker;
  {
    MutexLock slot_lock(slot->mu_);
    slot->heap_.Push(std::move(entry));
    slot->PublishNextDue();
    worker = slot->worker_;
  }
  // Under mu_, so the worker cannot unregister (and shut its backend down)
  // meanwhile. Always: cheaper than knowing the worker's poll deadline.
  if (worker != nullptr) worker->Wake();
  return id;
}

TimerSlot* TimerRegistry::SlotOf(TimerId id) {
  const size_t index = static_cast<size_t>(id >> kSlotShift);
  MutexLock lock(mu_);
  return index < slots_.size() ? slots_[index].get() : nullptr;
}

bool TimerRegistry::Cancel(TimerId id) {
  if (id == 0) return false;
  std::optional<TimerEntry> removed;  // destroyed with no lock held
  TimerSlot* const slot = SlotOf(id);
  if (slot == nullptr) return false;
  {
    MutexLock lock(slot->mu_);
    removed = slot->heap_.Remove(id);
    slot->PublishNextDue();
  }
  if (removed.has_value() || slot->index() != 0) return removed.has_value();
  // Added while no worker ran: a worker may have adopted it since. Under mu_,
  // so no adoption moves it meanwhile.
  MutexLock lock(mu_);
  for (const std::unique_ptr<TimerSlot>& other : slots_) {
    MutexLock slot_lock(other->mu_);
    removed = other->heap_.Remove(id);
    other->PublishNextDue();
    if (removed.has_value()) break;
  }
  return removed.has_value();
}

TimerSlot& TimerRegistry::Register(IoWorker& worker) {
  worker.AssertInWorkerThread();
  MutexLock lock(mu_);
  size_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = slots_.size();
    SERVERCORE_CHECK(index < (size_t{1} << (64 - kSlotShift)),
                     "too many timer slots");
    slots_.push_back(std::make_unique<TimerSlot>(index));
  }
  TimerSlot& slot = *slots_[index];
  TimerSlot& pending = *slots_[0];
  {
    MutexLock pending_lock(pending.mu_);
    MutexLock slot_lock(slot.mu_);
    slot.worker_ = &worker;
    // The pending timers, in their order (their ids keep naming slot 0).
    while (!pending.heap_.empty()) slot.heap_.Push(pending.heap_.PopTop());
    pending.PublishNextDue();
    slot.PublishNextDue();
  }
  active_.push_back(index);
  return slot;
}

void TimerRegistry::Unregister(TimerSlot& slot) {
  std::vector<TimerEntry> dropped;  // destroyed with no lock held
  MutexLock lock(mu_);
  const auto it = std::find(active_.begin(), active_.end(), slot.index());
  SERVERCORE_CHECK(it != active_.end(), "timer slot not registered");
  active_.erase(it);
  free_.push_back(slot.index());
  {
    MutexLock slot_lock(slot.mu_);
    SERVERCORE_DCHECK(slot.worker_ == nullptr || slot.worker_->InWorkerThread(),
                      "timer slot %zu unregistered off its worker's thread",
                      slot.index());
    slot.worker_ = nullptr;
    slot.heap_.TakeAll(dropped);
    slot.PublishNextDue();
  }
  // `dropped` is destroyed after `lock` is released.
}

}  // namespace internal
}  // namespace servercore
