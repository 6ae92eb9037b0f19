// IoWorker: one thread, one backend, the sessions it owns. Its loop:
//
//   Poll (backend dispatches completions to sessions and accepts)
//   -> drain the inbox (requests from other threads)
//   -> flush every session that had output queued this round (one gather
//      write each, so a burst of Sends becomes one syscall per session)
//   -> finish closing sessions whose last operation has completed
//
// Thread safety: Request*, Adopt, ListenOn and RequestStop may be called from
// any thread; everything else runs on the worker thread only (asserted).
// Ownership: owns its backend, its Listener and its sessions (until
// each is finalised); sockets of sessions are closed in Finalize.
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
#include "io/worker_counters.h"
#include "servercore/backend.h"
#include "servercore/mutex.h"
#include "servercore/session.h"
#include "servercore/thread_annotations.h"

namespace servercore {
class Service;
namespace internal {

class IoWorker {
 public:
  IoWorker(Service& service, size_t index);
  ~IoWorker();
  IoWorker(const IoWorker&) = delete;
  IoWorker& operator=(const IoWorker&) = delete;

  // Starts the thread, which creates its backend there (an io_uring ring
  // with SINGLE_ISSUER belongs to the thread that creates it) and reports
  // back; on failure the thread has ended. kAuto is resolved by the Service.
  [[nodiscard]] std::error_code Start(Backend kind, std::string* why);
  // Any thread: close every session, stop accepting, leave the loop once all
  // I/O has completed. Join waits for that.
  void RequestStop();
  void Join();

  // Any thread.
  void RequestFlush(SessionRef session);
  void RequestClose(SessionRef session);
  void Adopt(SessionRef session);  // a connected client session
  void ListenOn(int listen_fd);

  bool InWorkerThread() const noexcept;
  void AssertInWorkerThread() const;

  // Worker thread: called by the backend.
  void OnAccepted(int fd);
  void OnAcceptError(int error);

  IoBackend& backend() noexcept { return *backend_; }
  WorkerCounters& counters() noexcept { return counters_; }
  const WorkerCounters& counters() const noexcept { return counters_; }
  Service& service() noexcept { return service_; }
  size_t index() const noexcept { return index_; }

  // Worker thread: queue the session for this round's flush.
  void ScheduleFlush(SessionRef session);
  // Worker thread: start closing (state already kClosing).
  void BeginClose(SessionRef session);

 private:
  struct Task {
    enum class Kind : uint8_t { kFlush, kClose, kAdopt, kListen, kStop };
    Kind kind;
    SessionRef session;
    int fd = -1;
  };

  void Post(Task task);
  void Run();
  void RunTasks();
  void FlushScheduled();
  void FinalizeClosed();
  void Finalize(Session& session);
  void DrainAfterExit();
  void AttachSession(SessionRef session);
  void StopAll();
  void MaybeResumeAccept();
  void KickStalledWriters();
  int PollTimeoutMs() const;

  Service& service_;
  const size_t index_;
  std::unique_ptr<IoBackend> backend_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};

  Mutex inbox_mu_;
  std::vector<Task> inbox_ SERVERCORE_GUARDED_BY(inbox_mu_);
  // Set when the loop has ended: later posts are not queued (an adopted
  // session is finalised on the posting thread instead).
  bool exited_ SERVERCORE_GUARDED_BY(inbox_mu_) = false;

  // Worker thread only.
  std::vector<Task> tasks_;  // the inbox, swapped out each round
  std::vector<SessionRef> sessions_;
  std::vector<SessionRef> flush_list_;
  std::vector<SessionRef> closing_;
  std::vector<SessionRef> finalizing_;  // closing_, swapped out each round
  bool backend_down_ = false;  // after Shutdown: start no more operations
  std::optional<Listener> listener_;  // once ListenOn has reached us
  bool stopping_ = false;
  std::chrono::steady_clock::time_point next_stall_check_{};

  WorkerCounters counters_;
};

// The worker whose thread is calling, or null.
IoWorker* CurrentWorker() noexcept;

}  // namespace internal
}  // namespace servercore

#endif  // SERVERCORE_SRC_IO_IO_WORKER_H_
