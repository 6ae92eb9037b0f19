#include "global_job_queue.h"

#include <algorithm>
#include <utility>

#include "io/io_worker.h"
#include "servercore/check.h"

namespace servercore::internal {

GlobalJobQueue& GlobalJobQueue::Instance() {
  // Never destroyed (see the header).
  static GlobalJobQueue* const instance = new GlobalJobQueue();
  return *instance;
}

void GlobalJobQueue::Push(std::shared_ptr<JobQueue> queue) {
  const bool wake = CurrentWorker() == nullptr;
  MutexLock lock(mu_);
  const size_t size = size_.load(std::memory_order_relaxed);
  if (size == ring_.size()) {
    // Full: grow, unrolling the ring so it starts at 0.
    std::vector<std::shared_ptr<JobQueue>> bigger(
        std::max<size_t>(16, ring_.size() * 2));
    for (size_t i = 0; i < size; ++i) {
      bigger[i] = std::move(ring_[(head_ + i) & (ring_.size() - 1)]);
    }
    ring_.swap(bigger);
    head_ = 0;
  }
  ring_[(head_ + size) & (ring_.size() - 1)] = std::move(queue);
  size_.store(size + 1, std::memory_order_release);
  // Under the lock, so the worker cannot unregister (and shut its backend
  // down) meanwhile. An eventfd write: cheap, and only for hand-offs from
  // application threads.
  if (wake && !workers_.empty()) {
    next_wake_ = (next_wake_ + 1) % workers_.size();
    workers_[next_wake_]->Wake();
  }
}

std::shared_ptr<JobQueue> GlobalJobQueue::Pop() {
  if (size_.load(std::memory_order_acquire) == 0) return nullptr;
  MutexLock lock(mu_);
  const size_t size = size_.load(std::memory_order_relaxed);
  if (size == 0) return nullptr;
  std::shared_ptr<JobQueue> queue = std::move(ring_[head_]);
  head_ = (head_ + 1) & (ring_.size() - 1);
  size_.store(size - 1, std::memory_order_release);
  return queue;
}

void GlobalJobQueue::RunFor(std::chrono::microseconds budget) {
  if (empty()) return;
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (std::shared_ptr<JobQueue> queue = Pop()) {
    queue->Execute(JobKey{});
    // Dropped here, not with the next Pop's assignment: the last reference
    // may be this one, and the queue's destructor is the application's.
    queue.reset();
    if (std::chrono::steady_clock::now() >= deadline) return;
  }
}

void GlobalJobQueue::Register(IoWorker& worker) {
  MutexLock lock(mu_);
  workers_.push_back(&worker);
}

void GlobalJobQueue::Unregister(IoWorker& worker) {
  MutexLock lock(mu_);
  const auto it = std::find(workers_.begin(), workers_.end(), &worker);
  SERVERCORE_CHECK(it != workers_.end(), "worker not registered");
  workers_.erase(it);
}

}  // namespace servercore::internal
