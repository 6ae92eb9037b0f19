// The epoll backend: a reactor presented as a proactor. Sockets are watched
// level-triggered for input, and read into one buffer of the worker's (the
// session keeps only a message's unfinished tail); a write is tried at once
// with sendmsg and only what would block waits for EPOLLOUT, so in the common
// case a flush costs exactly one syscall and no epoll_ctl.
//
// Level- rather than edge-triggered, measured (docs/BENCHMARKS.md): with one
// recv per readiness event that usually drains the socket, edge-triggering
// (plus a read loop until a short read) changed neither throughput nor
// server CPU beyond run-to-run noise, while level-triggering needs no loop
// and gives every session one read per round.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <span>

#include "io/io_backend.h"
#include "io/io_worker.h"
#include "io/socket_state.h"
#include "servercore/log.h"

namespace servercore::internal {

class EpollBackend final : public IoBackend {
 public:
  EpollBackend(IoWorker& worker, int epoll_fd, int wake_fd)
      : worker_(worker), epoll_fd_(epoll_fd), wake_fd_(wake_fd) {}
  ~EpollBackend() override {
    ::close(wake_fd_);
    ::close(epoll_fd_);
  }

  void Attach(SocketState& socket) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    if (!Control(EPOLL_CTL_ADD, socket.fd(), kReadEvents, &socket)) {
      // Reported like any failed receive: the session closes.
      socket.RecvEnded(-errno);
    }
  }

  int64_t Write(SocketState& socket) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    const ssize_t n =
        ::sendmsg(socket.fd(), &socket.write_message(), MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    // The socket buffer is full: finish the write when it drains.
    if (!Control(EPOLL_CTL_MOD, socket.fd(), ReadEvents(socket) | EPOLLOUT,
                 &socket)) {
      return -errno;
    }
    return kInFlight;
  }

  void StopRecv(SocketState& socket) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    // Level-triggered input left unread would wake every round: watch only
    // for room to write (or nothing).
    SetInterest(socket, socket.write_in_flight() ? uint32_t{EPOLLOUT} : 0);
  }

  void ResumeRecv(SocketState& socket) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    SetInterest(socket,
                ReadEvents(socket) |
                    (socket.write_in_flight() ? uint32_t{EPOLLOUT} : 0));
  }

  // EPOLLHUP and EPOLLERR come whatever the interest (Dispatch: HungUp).
  void ReadEnded(SocketState& socket) override SERVERCORE_ON_WORKER {
    StopRecv(socket);
  }

  // A shut-down socket is always writable, and hung up once the peer closes
  // too: level-triggered, either would wake every round.
  void Unwatch(SocketState& socket) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, socket.fd(), nullptr);
  }

  void Detach(SocketState& socket) override {
    worker_.AssertInWorkerThread();
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, socket.fd(), nullptr);
  }

  void Listen(int listen_fd) override {
    worker_.AssertInWorkerThread();
    listen_fd_ = listen_fd;
    ResumeAccept();
  }
  void PauseAccept() override {
    worker_.AssertInWorkerThread();
    if (listen_fd_ >= 0) {
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    }
  }
  void ResumeAccept() override {
    worker_.AssertInWorkerThread();
    if (listen_fd_ >= 0 &&
        !Control(EPOLL_CTL_ADD, listen_fd_, EPOLLIN, &listen_tag_)) {
      SERVERCORE_LOG_ERROR("epoll: cannot watch the listening socket: %d",
                           errno);
    }
  }
  bool HasOwnOpsInFlight() const noexcept override { return false; }

  void Poll(int timeout_ms) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    const int n = ::epoll_wait(epoll_fd_, events_.data(),
                               static_cast<int>(events_.size()), timeout_ms);
    worker_.ReadClock();
    for (int i = 0; i < n; ++i) {
      const epoll_event& event = events_[static_cast<size_t>(i)];
      if (event.data.ptr == &wake_tag_) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof(count));
      } else if (event.data.ptr == &listen_tag_) {
        AcceptAll();
      } else {
        Dispatch(*static_cast<SocketState*>(event.data.ptr), event.events);
      }
    }
  }

  void Wake() noexcept override {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wake_fd_, &one, sizeof(one));
  }

  void Shutdown() noexcept override {}

  [[nodiscard]] bool WatchWakeFd() {
    return Control(EPOLL_CTL_ADD, wake_fd_, EPOLLIN, &wake_tag_);
  }

 private:
  static constexpr uint32_t kReadEvents = EPOLLIN | EPOLLRDHUP;

  // A draining socket no longer reads, nor one whose peer's stream ended,
  // nor one paused.
  static uint32_t ReadEvents(const SocketState& socket) SERVERCORE_ON_WORKER {
    return socket.CanRead() && !socket.recv_paused() ? kReadEvents : 0;
  }
  // Connections taken per readiness event, so one busy listener cannot starve
  // the sessions (level-triggered: the rest come next round).
  static constexpr int kAcceptBatch = 64;

  bool Control(int op, int fd, uint32_t events, void* tag) {
    epoll_event event{};
    event.events = events;
    event.data.ptr = tag;
    return ::epoll_ctl(epoll_fd_, op, fd, &event) == 0;
  }
  // A session's interest on a pause or a resume: the socket may have left
  // the list while paused (Dispatch, a reset behind a kept end).
  void SetInterest(SocketState& socket, uint32_t events) SERVERCORE_ON_WORKER {
    if (!Control(EPOLL_CTL_MOD, socket.fd(), events, &socket) &&
        errno == ENOENT) {
      Control(EPOLL_CTL_ADD, socket.fd(), events, &socket);
    }
  }

  void AcceptAll() SERVERCORE_ON_WORKER {
    for (int i = 0; i < kAcceptBatch; ++i) {
      if (!worker_.MayAccept()) return;  // the rest wait in the backlog
      const int fd =
          ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        worker_.OnAccepted(fd);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == ECONNABORTED) {  // that connection only: on to the next
        worker_.OnAcceptError(errno);
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) worker_.OnAcceptError(errno);
      return;
    }
  }

  void Dispatch(SocketState& socket, uint32_t events) SERVERCORE_ON_WORKER {
    // An event from this round's batch may name a socket that an earlier
    // event of the same batch closed; it is still alive (the worker finalises
    // after Poll) but must not be touched.
    if (!socket.CanWrite()) return;
    if ((events & EPOLLOUT) != 0 && socket.write_in_flight()) {
      const ssize_t n =
          ::sendmsg(socket.fd(), &socket.write_message(), MSG_NOSIGNAL);
      if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        const int64_t result = n >= 0 ? n : -errno;
        Control(EPOLL_CTL_MOD, socket.fd(), ReadEvents(socket), &socket);
        socket.WriteDone(result);
      }
    }
    // A paused socket reads only to learn of a reset or an error (EPOLLHUP
    // and EPOLLERR come whatever the interest, level-triggered): no FIN
    // alone raises EPOLLHUP, and what it reads is kept. Not once it has
    // kept the stream's end (below).
    const bool hung_up = (events & (EPOLLHUP | EPOLLERR)) != 0;
    if (((events & (EPOLLIN | EPOLLRDHUP)) != 0 || hung_up) &&
        socket.CanRead() &&
        (!socket.recv_paused() || (hung_up && !socket.eof_kept()))) {
      const size_t size =
          socket.SmallReads() ? SocketState::kThrottledRead : kReadBuffer;
      const ssize_t n = ::recv(socket.fd(), read_buffer_.get(), size, 0);
      if (n > 0) {
        socket.Received(std::span(read_buffer_.get(), static_cast<size_t>(n)));
      } else {
        socket.RecvEnded(n == 0 ? 0 : -errno);
      }
    } else if (hung_up) {
      // Reported whatever the interest, and level-triggered: a session that
      // stays to send after the peer's end of stream must not spin on it.
      if (!socket.HungUp(/*reported=*/true) && socket.recv_paused()) {
        // Paused with the end kept: the reset waits for the resume, which
        // delivers the kept packets and then the end (ResumeReading). Until
        // then the socket leaves the interest list, where no mask could
        // silence it; the resume's interest (SetInterest) puts it back. A
        // write to it meanwhile fails at once: the peer is gone.
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, socket.fd(), nullptr);
      }
    }
  }

  // Every read lands here, and the session takes what it wants from it
  // before the next read: one buffer per worker, however many sessions, so
  // a connection holds receive memory only for a message split across
  // reads (SocketState's tail). 64 KiB takes a socket's whole backlog in
  // one read in the common cases (16 packets of 4 KiB).
  static constexpr size_t kReadBuffer = 64 * 1024;

  IoWorker& worker_;
  const std::unique_ptr<std::byte[]> read_buffer_{new std::byte[kReadBuffer]};
  const int epoll_fd_;
  const int wake_fd_;
  int listen_fd_ = -1;
  // Distinct addresses that tag the non-session descriptors.
  char wake_tag_ = 0;
  char listen_tag_ = 0;
  std::array<epoll_event, 256> events_{};
};

std::unique_ptr<IoBackend> CreateEpollBackend(IoWorker& worker,
                                              std::error_code* error,
                                              std::string* why) {
  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) {
    *error = std::error_code(errno, std::system_category());
    *why = "epoll_create1 failed";
    return nullptr;
  }
  const int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    *error = std::error_code(errno, std::system_category());
    *why = "eventfd failed";
    ::close(epoll_fd);
    return nullptr;
  }
  auto backend = std::make_unique<EpollBackend>(worker, epoll_fd, wake_fd);
  if (!backend->WatchWakeFd()) {
    *error = std::error_code(errno, std::system_category());
    *why = "epoll_ctl on the eventfd failed";
    return nullptr;
  }
  return backend;
}

}  // namespace servercore::internal
