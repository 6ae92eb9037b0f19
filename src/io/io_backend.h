// IoBackend: the one small interface between a worker and its kernel I/O
// mechanism, with one implementation per file: io_uring (uring_backend.cc, a
// proactor like IOCP) and epoll (epoll_backend.cc, a reactor made to look like
// one). A backend works on a SocketState, never on the application's Session:
// it starts operations on the socket and reports each result to the socket
// state (Received, RecvEnded, WriteDone); the socket state, the worker and the
// Session hold all protocol and ordering logic.
//
// Results use the I/O tier of our error handling: bytes, or -errno. Never
// thrown.
//
// Thread safety: every member but Wake() runs on the owning worker's thread.
#ifndef SERVERCORE_SRC_IO_IO_BACKEND_H_
#define SERVERCORE_SRC_IO_IO_BACKEND_H_

#include <sys/socket.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <system_error>

#include "io/worker_thread.h"
#include "servercore/backend.h"

namespace servercore::internal {

class IoWorker;
class SocketState;

// Write() result meaning "started; SocketState::WriteDone gets the result".
inline constexpr int64_t kInFlight = std::numeric_limits<int64_t>::min();

class IoBackend {
 public:
  virtual ~IoBackend() = default;

  // Starts receiving on a connected non-blocking socket, until StopRecv or
  // Detach: data arrives through SocketState::Received, in a buffer of the
  // backend's, and the end of the stream or an error through
  // SocketState::RecvEnded.
  virtual void Attach(SocketState& socket) SERVERCORE_ON_WORKER = 0;
  // Writes socket.write_message(). Returns bytes written or -errno when the
  // write finished at once, or kInFlight when SocketState::WriteDone will
  // get the result. Called only with no write in flight; the message and
  // its iovecs stay unchanged until then.
  virtual int64_t Write(SocketState& socket) SERVERCORE_ON_WORKER = 0;
  // Writes `message` at once, never waiting (SocketState::WriteNow, for
  // Session::SendNow, with nothing queued and no write in flight): bytes
  // written, or -errno (-EAGAIN: the socket buffer is full). Both kernels'
  // backends make the same non-blocking sendmsg on socket.fd(), this one; a
  // backend whose fd() is not a socket overrides it, as the test harness's
  // fake does (it takes the bytes as its Write does), so that fuzzers and
  // harness tests reach this path too.
  virtual int64_t WriteNow(SocketState& socket,
                           const msghdr& message) SERVERCORE_ON_WORKER;
  // Stops receiving on a closing socket that is still draining its output,
  // or on one paused (SocketState::PauseReading; what arrives meanwhile
  // still goes to SocketState::Received, which keeps it).
  virtual void StopRecv(SocketState& socket) SERVERCORE_ON_WORKER = 0;
  // Receives again on a socket that was paused.
  virtual void ResumeRecv(SocketState& socket) SERVERCORE_ON_WORKER = 0;
  // The peer's stream ended and the session stays open to send
  // (SocketState::read_ended): no more receiving. A backend that learns of
  // a hang-up or an error on the socket meanwhile reports it
  // (SocketState::HungUp); the worker's sweep asks the others.
  virtual void ReadEnded(SocketState& socket) SERVERCORE_ON_WORKER = 0;
  // A drained socket that lingers (SocketState::Lingers): no more readiness
  // events for it, though its operations in flight still complete. Unlike
  // Detach it never shuts the socket down for reading: new data on a socket
  // shut down both ways is answered with a reset.
  virtual void Unwatch(SocketState& socket) SERVERCORE_ON_WORKER = 0;
  // Ends all I/O on the socket (without closing it): operations in flight
  // complete soon, then socket.ops_in_flight is 0 and no event names the
  // socket again.
  virtual void Detach(SocketState& socket) SERVERCORE_ON_WORKER = 0;

  // Accepts on a listening socket, reporting through IoWorker::OnAccepted and
  // IoWorker::OnAcceptError. Pause stops asking for connections (they wait in
  // the backlog); Resume asks again.
  virtual void Listen(int listen_fd) SERVERCORE_ON_WORKER = 0;
  virtual void PauseAccept() SERVERCORE_ON_WORKER = 0;
  virtual void ResumeAccept() SERVERCORE_ON_WORKER = 0;
  // True while an operation of the backend's own (accept, cancel) is still in
  // flight after PauseAccept: the worker waits for it before exiting.
  virtual bool HasOwnOpsInFlight() const noexcept = 0;

  // Waits up to timeout_ms (or until Wake), then reads the worker's clock
  // (IoWorker::ReadClock) and dispatches what completed.
  virtual void Poll(int timeout_ms) SERVERCORE_ON_WORKER = 0;
  // About once a second, between Polls: gives back to the kernel receive
  // memory the backend keeps warm but has not used since the previous call
  // (a worker gone quiet after a flood must not keep its peak resident:
  // docs/PROTOCOL.md, memory goes back within 10 seconds).
  virtual void ReleaseIdleMemory() SERVERCORE_ON_WORKER {}
  // Any thread: makes a Poll in progress, or the next one, return.
  virtual void Wake() noexcept = 0;
  // Ends every operation still in flight (io_uring tears the ring down); only
  // Wake() may be called afterwards, until the backend is destroyed.
  virtual void Shutdown() noexcept = 0;
};

// The backend a service runs, decided once before its workers start:
// `requested`, unless it is kAuto, in which case the SERVERCORE_BACKEND
// environment variable (uring|epoll) decides, and failing that a probe: a
// throw-away io_uring ring must come up with every operation we use, else
// epoll (logged once, with the reason). Never returns kAuto.
Backend ChooseBackend(Backend requested);

// Creates a worker's backend of `kind` (kUring or kEpoll) on the calling
// thread. Returns null and sets *error (and *why, a human-readable reason)
// when it cannot run here.
std::unique_ptr<IoBackend> CreateBackend(Backend kind, IoWorker& worker,
                                         std::error_code* error,
                                         std::string* why);

// Per backend (uring_backend.cc, epoll_backend.cc).
std::unique_ptr<IoBackend> CreateUringBackend(IoWorker& worker,
                                              std::error_code* error,
                                              std::string* why);
std::unique_ptr<IoBackend> CreateEpollBackend(IoWorker& worker,
                                              std::error_code* error,
                                              std::string* why);
// Whether io_uring runs here with every operation the backend uses; *why
// says why not.
bool UringAvailable(std::string* why);

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_IO_IO_BACKEND_H_
