// GlobalJobQueue: the process-wide FIFO of JobQueues awaiting an executor
// (see include/servercore/job_queue.h for when a queue lands here).
//
//   JobQueue::Push / Execute --Push--> [ ring of queues ] --RunFor--> workers
//
// Every IoWorker registers while its loop runs and calls RunFor between I/O
// rounds. A Push from a thread that is not a worker wakes one registered
// worker (round-robin), which may be blocked in Poll; a worker's own Push
// needs none, since it drains before it polls again. With no worker
// registered, queues wait here until one drains them.
//
// The queues are kept in a ring buffer that only grows, so a hand-off
// allocates nothing in steady state.
//
// Thread safety: everything, any thread. Ownership: holds a shared_ptr to
// each waiting queue. Immortal, like SendBufferManager: workers of services
// destroyed during static destruction may still touch it.
#ifndef SERVERCORE_SRC_GLOBAL_JOB_QUEUE_H_
#define SERVERCORE_SRC_GLOBAL_JOB_QUEUE_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "servercore/job_queue.h"
#include "servercore/mutex.h"
#include "servercore/thread_annotations.h"

namespace servercore::internal {

class IoWorker;

// The pass for JobQueue::Execute (the passkey idiom, as IoKey).
class JobKey {
 public:
  constexpr JobKey() noexcept = default;
};

class GlobalJobQueue {
 public:
  static GlobalJobQueue& Instance();

  GlobalJobQueue(const GlobalJobQueue&) = delete;
  GlobalJobQueue& operator=(const GlobalJobQueue&) = delete;

  // Queues `queue` (whose count is not 0 and which nobody executes) for an
  // executor; wakes a worker unless the calling thread is one.
  void Push(std::shared_ptr<JobQueue> queue);
  // Pops queues and executes each (for up to its time slice) until the
  // global queue is empty or `budget` is spent. The calling thread must not
  // be executing a queue.
  void RunFor(std::chrono::microseconds budget);
  // Queues waiting (a snapshot; exact for the thread that last pushed).
  size_t size() const noexcept { return size_.load(std::memory_order_acquire); }
  bool empty() const noexcept { return size() == 0; }

  // A worker's loop started / is ending (call before its backend shuts
  // down: no Wake reaches it after Unregister returns).
  void Register(IoWorker& worker);
  void Unregister(IoWorker& worker);

 private:
  GlobalJobQueue() = default;
  ~GlobalJobQueue() = default;

  std::shared_ptr<JobQueue> Pop();

  mutable Mutex mu_;
  // A ring: `size_` entries from `head_`, its capacity a power of two.
  std::vector<std::shared_ptr<JobQueue>> ring_ SERVERCORE_GUARDED_BY(mu_);
  size_t head_ SERVERCORE_GUARDED_BY(mu_) = 0;
  // Written under mu_; read without it as a hint (PollTimeoutMs).
  std::atomic<size_t> size_{0};
  std::vector<IoWorker*> workers_ SERVERCORE_GUARDED_BY(mu_);
  size_t next_wake_ SERVERCORE_GUARDED_BY(mu_) = 0;
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_GLOBAL_JOB_QUEUE_H_
