// IoWorker: one thread, one backend, the sessions it owns. Its loop:
//
//   Poll (the backend reports completions to socket states, and accepts)
//   -> drain the inbox (requests from other threads)
//   -> fire due JobQueue timers (push their jobs; src/timers.h)
//   -> run queues from the global job queue, for at most one time slice
//   -> flush every session that had output queued this round (one gather
//      write each, so a burst of Sends becomes one syscall per session)
//   -> finish closing sessions whose last operation has completed
//
// The worker keeps lists; each session makes its own state transitions
// (Session::Attach, StartClosing, Finalize), which the worker calls.
//
// Thread safety: Request*, Adopt, ListenOn and RequestStop may be called from
// any thread; everything else runs on the worker thread only, which the
// compiler checks (SERVERCORE_ON_WORKER, io/worker_thread.h) and debug and
// sanitizer builds assert. Ownership: owns its backend, its Listener and its
// sessions (until each is finalised).
#ifndef SERVERCORE_SRC_IO_IO_WORKER_H_
#define SERVERCORE_SRC_IO_IO_WORKER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "io/io_backend.h"
#include "io/listener.h"
#include "io/release_batch.h"
#include "io/worker_counters.h"
#include "io/worker_thread.h"
#include "servercore/backend.h"
#include "servercore/mutex.h"
#include "servercore/service.h"
#include "servercore/session.h"
#include "servercore/thread_annotations.h"

namespace servercore::internal {

class IoWorker;
class MemoryBudget;
class TimerSlot;

// What a worker needs from the service that owns it.
class WorkerHost {
 public:
  virtual const ServiceOptions& options() const noexcept = 0;
  // The worker that gets the next new session (round-robin).
  virtual IoWorker& NextWorker() noexcept = 0;
  // The session for an accepted socket, bound to `owner`; null (and the
  // socket closed) past max_sessions.
  virtual SessionRef CreateSession(int fd, IoWorker& owner) = 0;
  // A session of this service was finalised.
  virtual void OnSessionClosed() noexcept = 0;
  // The service's memory budget (memory_budget.h).
  virtual MemoryBudget& budget() noexcept = 0;

 protected:
  ~WorkerHost() = default;
};

class IoWorker {
 public:
  IoWorker(WorkerHost& host, size_t index);
  ~IoWorker();
  IoWorker(const IoWorker&) = delete;
  IoWorker& operator=(const IoWorker&) = delete;

  // Starts the thread, which creates its backend of `kind` (kUring or
  // kEpoll) there (an io_uring ring with SINGLE_ISSUER belongs to the thread
  // that creates it) and reports back; on failure the thread has ended.
  [[nodiscard]] std::error_code Start(Backend kind, std::string* why);
  // Any thread: close every session, stop accepting, leave the loop once all
  // I/O has completed. Join waits for that.
  void RequestStop();
  void Join();

  // Any thread.
  void RequestFlush(SessionRef session);
  // Any thread: SocketState::ResumeReading, on the worker, next round
  // (Session::ResumeReading).
  void RequestResume(SessionRef session);
  void RequestClose(SessionRef session);
  // A session created for this worker: accepted by another worker, or
  // connected by a ClientService (counted as connected).
  void Adopt(SessionRef session);
  void AdoptConnected(SessionRef session);
  void ListenOn(int listen_fd);
  // Any thread: interrupts the worker's wait for events (the global job
  // queue has work). Only while the worker is registered with the global
  // job queue, which guarantees its backend is up.
  void Wake() { backend_->Wake(); }

  // --- Run inline, by a test harness (src/testing/session_harness.h) ---
  // Instead of Start: the calling thread becomes this worker's thread, with
  // `backend` (which the harness fakes), until EndInline. RunRound runs one
  // round of the loop without waiting for events (the harness reports them to
  // the socket states itself), with timers fired as if the clock were
  // `timer_skew` ahead. Quiet: nothing is left for another round to do.
  // EndInline stops as Run does (every session closed, the jobs drained, the
  // timers dropped). The real loop runs the very same round.
  void BeginInline(std::unique_ptr<IoBackend> backend);
  void RunRound(std::chrono::nanoseconds timer_skew) SERVERCORE_ON_WORKER;
  bool Quiet() SERVERCORE_ON_WORKER;
  void EndInline(std::chrono::nanoseconds timer_skew) SERVERCORE_ON_WORKER;

  bool InWorkerThread() const noexcept;
  // Establishes, for the compiler, that the caller runs on a worker, and
  // checks at run time (debug and sanitizer builds) that it is this one, or
  // that this worker's loop has ended (its last sessions are finalised by
  // whichever thread still hands it one).
  // Inline, so it costs nothing where the check is compiled out.
  void AssertInWorkerThread() const
      SERVERCORE_ASSERT_CAPABILITY(kWorkerThread) {
    SERVERCORE_DCHECK(
        InWorkerThread() || loop_ended_.load(std::memory_order_acquire),
        "worker %zu: called off its thread", index_);
  }

  // Worker thread: called by the backend.
  void OnAccepted(int fd) SERVERCORE_ON_WORKER;
  // Whether the listener may take another connection now. Asks the budget,
  // as each round does, so use that another worker pushed past 90% stops
  // the next accept rather than the next round's (a round's Poll may take
  // a whole batch first). epoll asks before each accept; OnAccepted asks
  // too, for io_uring, whose kernel accepts on its own: a no there cancels
  // the accept and parks the connection (parked_).
  bool MayAccept() SERVERCORE_ON_WORKER;
  // Takes the connections parked_ holds while MayAccept says yes.
  void TakeParked() SERVERCORE_ON_WORKER;
  // A connection accepted and allowed: its session, dealt to a worker.
  void TakeConnection(int fd) SERVERCORE_ON_WORKER;
  void OnAcceptError(int error) SERVERCORE_ON_WORKER;

  // The time the backend's last wait returned (read once per round, before
  // the completions are dispatched): the clock for liveness and stall
  // checks, which need no finer one. The backend calls ReadClock.
  std::chrono::steady_clock::time_point now() const SERVERCORE_ON_WORKER {
    return now_;
  }
  void ReadClock() SERVERCORE_ON_WORKER {
    now_ = std::chrono::steady_clock::now();
  }

  // Worker thread: this worker's JobQueue timers, null outside its loop.
  TimerSlot* timer_slot() const SERVERCORE_ON_WORKER { return timer_slot_; }

  IoBackend& backend() noexcept { return *backend_; }
  // Any thread: the service's memory budget.
  MemoryBudget& budget() const noexcept { return budget_; }
  WorkerCounters& counters() noexcept { return counters_; }
  const WorkerCounters& counters() const noexcept { return counters_; }
  // Worker thread: where written send buffers go, given back per buffer at
  // its last reference or the end of the round (release_batch.h).
  ReleaseBatch& releases() SERVERCORE_ON_WORKER { return releases_; }

 private:
  struct Task {
    enum class Kind : uint8_t {
      kFlush,
      kResume,
      kClose,
      kAdopt,
      kConnect,
      kListen,
      kStop
    };
    Kind kind;
    SessionRef session;
    int fd = -1;
  };

  void Post(Task task);
  void Run() SERVERCORE_ON_WORKER;
  // Joins the global job queue and the timer registry (the loop starts).
  void Register() SERVERCORE_ON_WORKER;
  // One round of the loop after the wait for events; timers fire at
  // `timer_now` (now_, but for a harness's clock).
  void Round(std::chrono::steady_clock::time_point timer_now)
      SERVERCORE_ON_WORKER;
  // Stopping, with every session gone and no operation of the backend's own
  // left.
  bool Stopped() const SERVERCORE_ON_WORKER;
  void RunTasks() SERVERCORE_ON_WORKER;
  void ScheduleFlush(SessionRef session) SERVERCORE_ON_WORKER;
  void FlushScheduled() SERVERCORE_ON_WORKER;
  void BeginClose(SessionRef session) SERVERCORE_ON_WORKER;
  void FinalizeClosed() SERVERCORE_ON_WORKER;
  void Finalize(Session& session) SERVERCORE_ON_WORKER;
  void DrainAfterExit() SERVERCORE_ON_WORKER;
  void AttachSession(SessionRef session) SERVERCORE_ON_WORKER;
  void StopAll() SERVERCORE_ON_WORKER;
  void SweepSessions() SERVERCORE_ON_WORKER;
  void DrainJobsForStop() SERVERCORE_ON_WORKER;
  int PollTimeoutMs() const SERVERCORE_ON_WORKER;

  WorkerHost& host_;
  MemoryBudget& budget_;
  const size_t index_;  // for log lines
  std::unique_ptr<IoBackend> backend_;
  std::thread thread_;
  std::atomic<bool> loop_ended_{false};

  Mutex inbox_mu_;
  std::vector<Task> inbox_ SERVERCORE_GUARDED_BY(inbox_mu_);
  // Set when the loop has ended: later posts are not queued (an adopted
  // session is finalised on the posting thread instead).
  bool exited_ SERVERCORE_GUARDED_BY(inbox_mu_) = false;

  // The inbox, swapped out each round.
  std::vector<Task> tasks_ SERVERCORE_GUARDED_BY(kWorkerThread);
  std::vector<SessionRef> sessions_ SERVERCORE_GUARDED_BY(kWorkerThread);
  std::vector<SessionRef> flush_list_ SERVERCORE_GUARDED_BY(kWorkerThread);
  std::vector<SessionRef> closing_ SERVERCORE_GUARDED_BY(kWorkerThread);
  // closing_, swapped out each round.
  std::vector<SessionRef> finalizing_ SERVERCORE_GUARDED_BY(kWorkerThread);
  // When FinalizeClosed next asks lingering sessions about their peers.
  std::chrono::steady_clock::time_point next_linger_ask_
      SERVERCORE_GUARDED_BY(kWorkerThread){};
  // After Shutdown: start no more operations.
  bool backend_down_ SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  // Once ListenOn has reached us.
  std::optional<Listener> listener_ SERVERCORE_GUARDED_BY(kWorkerThread);
  // Connections io_uring's kernel accepted while the budget said no: they
  // wait here unread, as they would have in the backlog, and are taken in
  // order once it says yes (TakeParked). A few at most: the kernel stops
  // once the cancel that MayAccept asked for lands.
  std::vector<int> parked_ SERVERCORE_GUARDED_BY(kWorkerThread);
  bool stopping_ SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  std::chrono::steady_clock::time_point now_
      SERVERCORE_GUARDED_BY(kWorkerThread){};
  // Registered while the loop runs (TimerRegistry).
  TimerSlot* timer_slot_ SERVERCORE_GUARDED_BY(kWorkerThread) = nullptr;
  // Liveness and stall checks: one sweep over the sessions per period.
  const std::chrono::milliseconds sweep_period_;
  // When the backend is next asked to give back receive memory it has not
  // used (IoBackend::ReleaseIdleMemory), once a second.
  std::chrono::steady_clock::time_point next_idle_release_
      SERVERCORE_GUARDED_BY(kWorkerThread){};
  std::chrono::steady_clock::time_point next_sweep_
      SERVERCORE_GUARDED_BY(kWorkerThread){};

  WorkerCounters counters_;
  ReleaseBatch releases_ SERVERCORE_GUARDED_BY(kWorkerThread);
};

// The worker whose thread is calling, or null.
IoWorker* CurrentWorker() noexcept;

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_IO_IO_WORKER_H_
