// IoBackend: the one small interface between a worker and its kernel I/O
// mechanism, with one implementation per file: io_uring (uring_backend.cc, a
// proactor like IOCP) and epoll (epoll_backend.cc, a reactor made to look like
// one). The worker and Session hold all protocol and ordering logic; a backend
// only starts operations and reports their results.
//
// Results use the I/O tier of our error handling: bytes, or -errno. Never
// thrown.
//
// Thread safety: every member but Wake() runs on the owning worker's thread.
#ifndef SERVERCORE_SRC_IO_IO_BACKEND_H_
#define SERVERCORE_SRC_IO_IO_BACKEND_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <system_error>

#include "servercore/backend.h"

namespace servercore {
class Session;
namespace internal {

class IoWorker;

// Write() result meaning "started; Session::HandleWrite reports the result".
inline constexpr int64_t kInFlight = std::numeric_limits<int64_t>::min();

class IoBackend {
 public:
  virtual ~IoBackend() = default;

  virtual Backend kind() const noexcept = 0;

  // Starts receiving on a connected non-blocking socket. Data arrives through
  // Session::HandleRecv.
  virtual void Attach(Session& session) = 0;
  // After HandleRecv, when the session is still open: receive again.
  virtual void ResumeRecv(Session& session) = 0;
  // Writes session.msg_ (its iovecs). Returns bytes written or -errno when the
  // write finished at once, or kInFlight when Session::HandleWrite will report
  // it. Called only with no write in flight.
  virtual int64_t Write(Session& session) = 0;
  // Stops receiving on a closing session that is still draining its output
  // (io_uring: the pending recv simply completes and is not renewed).
  virtual void StopRecv(Session& session) = 0;
  // Ends all I/O on the socket (without closing it): operations in flight
  // complete soon, then session.ops_in_flight_ is 0 and no event names the
  // session again.
  virtual void Detach(Session& session) = 0;

  // Accepts on a listening socket, reporting through IoWorker::OnAccepted and
  // IoWorker::OnAcceptError. Pause stops asking for connections (they wait in
  // the backlog); Resume asks again.
  virtual void Listen(int listen_fd) = 0;
  virtual void PauseAccept() = 0;
  virtual void ResumeAccept() = 0;
  // True while an operation of the backend's own (accept, cancel) is still in
  // flight after PauseAccept: the worker waits for it before exiting.
  virtual bool HasOwnOpsInFlight() const noexcept = 0;

  // Waits up to timeout_ms (or until Wake) and dispatches what completed.
  virtual void Poll(int timeout_ms) = 0;
  // Any thread: makes a Poll in progress, or the next one, return.
  virtual void Wake() noexcept = 0;
  // Ends every operation still in flight (io_uring tears the ring down); only
  // Wake() may be called afterwards, until the backend is destroyed.
  virtual void Shutdown() noexcept = 0;
};

// Each returns null and sets *error (and *why, a human-readable reason) when
// the backend cannot run here.
std::unique_ptr<IoBackend> CreateUringBackend(IoWorker& worker,
                                              std::error_code* error,
                                              std::string* why);
std::unique_ptr<IoBackend> CreateEpollBackend(IoWorker& worker,
                                              std::error_code* error,
                                              std::string* why);

}  // namespace internal
}  // namespace servercore

#endif  // SERVERCORE_SRC_IO_IO_BACKEND_H_
