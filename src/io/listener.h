// Listener: the server's listening socket and its accept policy, on the
// first worker (ServerService::Listen).
//
// One accept queue keeps accept order; the worker deals each connection out
// to the workers in turn (IoWorker::OnAccepted). The backend keeps an accept
// armed (multishot accept on io_uring, readiness on epoll) and reports each
// connection to the worker, each failure here.
//
// Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) the listener
// neither spins on the error nor gives up: it stops asking for connections
// (they wait in the kernel's backlog) and asks again after a back-off. The
// sessions already open go on meanwhile.
//
//   kIdle --Start--> kAccepting --resource error--> kBackingOff
//                      ^   ^                            |
//                      |   +------ back-off elapsed ----+
//                      |                                | over budget
//                      +-- budget back below 80% -- kOverBudget
//   kAccepting --past 90% of the memory budget--> kOverBudget
//   any --Stop--> kStopped (for good)
//
// Thread safety: the worker thread only. Ownership: owns the socket, closed
// on destruction (after the backend, which may still reference it, is gone).
#ifndef SERVERCORE_SRC_IO_LISTENER_H_
#define SERVERCORE_SRC_IO_LISTENER_H_

#include <chrono>
#include <cstddef>
#include <optional>

#include "io/io_backend.h"
#include "io/worker_thread.h"

namespace servercore::internal {

class Listener {
 public:
  using Clock = std::chrono::steady_clock;
  // How long accepting pauses after a resource error before trying again.
  static constexpr auto kBackoff = std::chrono::milliseconds(100);

  // Takes ownership of the bound, listening socket `fd`.
  Listener(IoBackend& backend, int fd, size_t worker_index) noexcept
      : backend_(backend), fd_(fd), worker_index_(worker_index) {}
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Starts accepting. Does nothing once stopped.
  void Start() SERVERCORE_ON_WORKER;
  // Stops accepting for good; an accept already in the backend's hands may
  // still complete (the worker closes what arrives while it stops).
  void Stop() SERVERCORE_ON_WORKER;
  // An accept failed with `error` (an errno value).
  void OnError(int error) SERVERCORE_ON_WORKER;
  // The memory budget: over it, connections wait in the backlog until it
  // says otherwise (checked each round; no timer).
  void SetOverBudget(bool over) SERVERCORE_ON_WORKER;
  // Asks for connections again once the back-off has passed.
  void MaybeResume(Clock::time_point now) SERVERCORE_ON_WORKER;
  // When MaybeResume will have work, if it will.
  std::optional<Clock::time_point> ResumeAt() const noexcept;

 private:
  enum class State { kIdle, kAccepting, kBackingOff, kOverBudget, kStopped };

  IoBackend& backend_;
  const int fd_;
  const size_t worker_index_;
  State state_ = State::kIdle;
  Clock::time_point resume_at_{};
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_IO_LISTENER_H_
