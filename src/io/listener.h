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
// sessions already open go on meanwhile. Such an episode, however long, is
// logged on two lines: one when the first accept fails, one at the next
// accept that succeeds, with how long it lasted and how many accepts failed
// (and one a minute in between, while it lasts): a retry costs one failed
// accept, so retrying often keeps recovery quick, but logging each retry
// would flood the log. Any other failure concerns one connection (reset
// before it was taken, say): one line each, within the log's limit.
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
  // While an episode of resource errors lasts, a reminder this often.
  static constexpr auto kEpisodeReminder = std::chrono::seconds(60);

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
  // An accept succeeded: ends an episode of resource errors, if one lasts.
  void OnAccepted() SERVERCORE_ON_WORKER {
    if (episode_failures_ > 0) [[unlikely]] {
      EndEpisode();
    }
  }
  // The memory budget: over it, connections wait in the backlog until it
  // says otherwise (checked each round and before each accept; no timer).
  void SetOverBudget(bool over) SERVERCORE_ON_WORKER;
  bool accepting() const noexcept { return state_ == State::kAccepting; }
  // Asks for connections again once the back-off has passed.
  void MaybeResume(Clock::time_point now) SERVERCORE_ON_WORKER;
  // When MaybeResume will have work, if it will.
  std::optional<Clock::time_point> ResumeAt() const noexcept;

 private:
  enum class State { kIdle, kAccepting, kBackingOff, kOverBudget, kStopped };

  void EndEpisode() SERVERCORE_ON_WORKER;

  IoBackend& backend_;
  const int fd_;
  const size_t worker_index_;
  State state_ = State::kIdle;
  Clock::time_point resume_at_{};
  // The episode of resource errors under way: accepts failed (0: none
  // under way), since when, the last error, when the next reminder is due.
  uint64_t episode_failures_ = 0;
  Clock::time_point episode_since_{};
  int episode_error_ = 0;
  Clock::time_point episode_reminder_{};
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_IO_LISTENER_H_
