// JobQueue: an object whose work runs one job at a time, in push order,
// without a lock held by the caller. The base of anything shared between
// threads that would otherwise need a mutex, a room say:
//
//   class Room : public JobQueue {
//    public:
//     void Broadcast(SendBufferRef buf);  // runs on whichever thread executes
//   };
//   auto room = std::make_shared<Room>();
//   room->DoAsync(&Room::Broadcast, buf);  // any thread; never blocks on Room
//
// A JobQueue must be owned by a std::shared_ptr (make_shared): DoAsync with a
// method keeps the object alive through shared_from_this until its job has
// run, and so does the queue's executor. Pushing to a queue that no
// shared_ptr owns aborts.
//
// Execution (the scheme of the original IOCP design). The queue counts jobs
// pushed but not yet run. The push that takes the count from 0 to 1 makes its
// thread the queue's executor: it runs the queue at once, on the spot, unless
// that thread is already executing a queue (no nesting: a job of queue A that
// pushes to an idle queue B does not run B inside A); then it hands the queue
// to the global queue instead. The executor takes the whole pending vector
// under the queue's mutex (two vectors whose capacities circulate, so steady
// state allocates nothing), runs that batch with no lock held, and goes on
// until the count reaches 0. When a batch ends after the executor's time
// slice (TimeSlice(), 2 ms by default) is spent, it hands the queue to the
// global queue and returns, so one busy queue never holds the pushing thread
// for long, and never starves a worker's I/O or other queues. The slice is
// checked between batches, so one batch (everything pushed while the last
// one ran) always runs to its end.
//
// The global queue is a process-wide FIFO of queues awaiting an executor.
// Every worker thread of every running Service drains it between its I/O
// rounds (for at most one time slice per round); a hand-off from a thread
// that is not a worker wakes one worker. A queue handed off while no Service
// is running waits there until some worker drains it.
//
// Stop. JobQueues do not belong to a Service. When a Service stops, each of
// its workers, once its sessions are closed and before its thread ends, runs
// the global queue until it is empty (for at most about a second), so jobs
// handed off before Stop run, and jobs they push run too. A job may Send
// meanwhile (Send on a closed session returns false). A queue still busy then
// (a job that pushes itself forever) stays in the global queue. Jobs pushed
// to an idle queue always run on the pushing thread, service or not.
//
// Timers. DoTimer(delay, ...) pushes its job to this queue once `delay` has
// passed, so it runs as one of the queue's jobs, in order with the others;
// DoTimerEvery(period, ...) pushes one every period, due times exactly
// `period` apart from the first (no drift). A worker that falls a period or
// more behind pushes once and skips the missed periods (no burst). Timers are
// driven by the workers' loops (a min-heap per worker, no thread per timer):
// one added on a worker thread belongs to that worker, one added elsewhere to
// a running worker chosen round-robin; with no Service running, it waits in a
// process-wide list that the next worker to start adopts. A worker's timers
// end with it: a Service's Stop drops the timers of its workers (jobs already
// pushed follow the Stop rules above). Precision: the worker's round clock,
// whole milliseconds; a timer never fires before its due time.
//
// A timer holds a weak reference to its queue: when the queue is gone at due
// time, the timer is dropped (a repeating one too) and its job never runs.
// DoTimer(delay, &T::Method, args...) therefore does not hold the object
// (unlike DoAsync); a callable given to DoTimer that captures a shared_ptr to
// the queue keeps it alive until it fires.
//
// CancelTimer(id), any thread: once it returns, that timer pushes no further
// job. A job it pushed before may still be pending and runs. True when the
// timer was still armed (a one-shot had not fired, a repeating one not been
// dropped).
//
// A repeating timer's callable is kept (one allocation when the timer is
// made) and invoked again at every firing, never two invocations at once
// (they are jobs of one queue); it may be move-only, but must leave itself
// invocable again. A one-shot timer with a small callable allocates nothing
// in steady state.
//
// Jobs must not throw: an exception leaving a job terminates the process.
//
// Thread safety: DoAsync and Push from any thread, the queue's own jobs
// included. Ownership: a queue holds its pending jobs (and what they
// capture) until they have run.
#ifndef SERVERCORE_JOB_QUEUE_H_
#define SERVERCORE_JOB_QUEUE_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "servercore/job.h"
#include "servercore/mutex.h"
#include "servercore/thread_annotations.h"

namespace servercore {

namespace internal {
// Only the library can make one (src/global_job_queue.h).
class JobKey;

template <typename Method>
struct MethodClass;
template <typename Fn, typename C>
struct MethodClass<Fn C::*> {
  using type = C;
};
}  // namespace internal

// Names a timer for CancelTimer; 0 names none.
using TimerId = uint64_t;

class JobQueue : public std::enable_shared_from_this<JobQueue> {
 public:
  JobQueue() = default;
  virtual ~JobQueue() = default;
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Any thread: queues `callable` (anything invocable as void()).
  template <typename F>
  requires std::is_invocable_v < std::decay_t<F>
  & > void DoAsync(F&& callable) { Push(Job(std::forward<F>(callable))); }

  // Any thread: queues a call of `method` on this object, which must be of
  // type T (T derived from JobQueue). The job holds a shared_ptr<T> to the
  // object and `args` by value; they are moved into the call.
  template <typename Method, typename... Args>
  requires std::is_member_function_pointer_v<Method>
  void DoAsync(Method method, Args&&... args) {
    using T = typename internal::MethodClass<Method>::type;
    static_assert(std::is_base_of_v<JobQueue, T>,
                  "DoAsync(&T::Method, ...): T must derive from JobQueue");
    std::shared_ptr<T> self = std::static_pointer_cast<T>(SharedSelf());
    Push(Job([self = std::move(self), method,
              ... args = std::forward<Args>(args)]() mutable {
      std::invoke(method, *self, std::move(args)...);
    }));
  }

  // Any thread: queues `job`; runs the queue here when it was idle (see
  // above).
  void Push(Job job);

  // Any thread: pushes `callable` to this queue after `delay` (see Timers
  // above).
  template <typename F>
  requires std::is_invocable_v < std::decay_t<F>
  & > TimerId DoTimer(std::chrono::milliseconds delay, F&& callable) {
    return AddTimer(delay, Job(std::forward<F>(callable)));
  }

  // Any thread: pushes a call of `method` on this object (of type T) after
  // `delay`. Holds `args` by value, and this object only weakly (see above).
  template <typename Method, typename... Args>
  requires std::is_member_function_pointer_v<Method> TimerId
  DoTimer(std::chrono::milliseconds delay, Method method, Args&&... args) {
    using T = typename internal::MethodClass<Method>::type;
    static_assert(std::is_base_of_v<JobQueue, T>,
                  "DoTimer(delay, &T::Method, ...): T must derive from "
                  "JobQueue");
    // A raw pointer: the job runs only inside Execute, which holds the
    // queue, and dies with the queue when it is never run.
    T* self = static_cast<T*>(this);
    return AddTimer(delay, Job([self, method,
                                ... args = std::forward<Args>(args)]() mutable {
                      std::invoke(method, *self, std::move(args)...);
                    }));
  }

  // Any thread: pushes a call of `callable` to this queue every `period`
  // (> 0), the first after one period, until cancelled or the queue is gone.
  template <typename F>
  requires std::is_invocable_v < std::decay_t<F>
  & > TimerId DoTimerEvery(std::chrono::milliseconds period, F&& callable) {
    return AddRepeatingTimer(std::chrono::steady_clock::now() + period, period,
                             std::make_shared<Job>(std::forward<F>(callable)));
  }

  // Any thread: the same, the first at `first` (a steady_clock time; one
  // already past fires at once), then every `period` after it: a timer on a
  // grid that other queues, or other processes on the same clock, share.
  template <typename F>
  requires std::is_invocable_v < std::decay_t<F>
  & > TimerId DoTimerEvery(std::chrono::steady_clock::time_point first,
                           std::chrono::milliseconds period, F&& callable) {
    return AddRepeatingTimer(first, period,
                             std::make_shared<Job>(std::forward<F>(callable)));
  }

  // Any thread: disarms the timer `id` (see above).
  static bool CancelTimer(TimerId id);

  // Jobs pushed and not yet run (a snapshot).
  size_t PendingJobs() const noexcept {
    return job_count_.load(std::memory_order_relaxed);
  }

  // How long an executor runs one queue before handing it to the global
  // queue; also how long a worker drains the global queue per I/O round.
  // Process-wide; any thread.
  static void SetTimeSlice(std::chrono::microseconds slice) noexcept;
  static std::chrono::microseconds TimeSlice() noexcept;

  // Library only: runs this queue as its executor (its count is not 0 and
  // nobody else executes it), until it is empty or the slice is spent.
  void Execute(const internal::JobKey&);
  // Library only (a firing timer): Push in two halves. Enqueue queues `job`
  // and returns true when the caller became the executor, which must then
  // call StartExecutor (with no lock held).
  bool Enqueue(Job job, const internal::JobKey&);
  void StartExecutor(const internal::JobKey&);

 private:
  std::shared_ptr<JobQueue> SharedSelf();
  bool Enqueue(Job job);
  void StartExecutor();
  TimerId AddTimer(std::chrono::milliseconds delay, Job job);
  TimerId AddRepeatingTimer(std::chrono::steady_clock::time_point first,
                            std::chrono::milliseconds period,
                            std::shared_ptr<Job> callable);
  void Execute() noexcept;

  // Pushed and not run yet. Moved up under mu_ together with the push, so
  // the executor's batches keep push order.
  std::atomic<size_t> job_count_{0};
  Mutex mu_;
  std::vector<Job> pending_ SERVERCORE_GUARDED_BY(mu_);
  // The batch being run. Only the executor touches it, and there is one at a
  // time: the count hands that role over (0 -> 1 makes an executor, the
  // executor leaves when it brings the count back to 0), and the global
  // queue's mutex orders a hand-off.
  std::vector<Job> running_;
};

}  // namespace servercore

#endif  // SERVERCORE_JOB_QUEUE_H_
