#include "raw_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace chaos {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

int PollFor(int fd, short events, milliseconds timeout) {
  pollfd p{.fd = fd, .events = events, .revents = 0};
  const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  return n > 0 ? p.revents : 0;
}

int OpenSocket(uint16_t port, int rcvbuf) {
  const int fd =
      ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // loopback only, always
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) <
          0 &&
      errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

RawConn::RawConn(RawConn&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

RawConn& RawConn::operator=(RawConn&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

RawConn RawConn::StartConnect(uint16_t port) {
  return RawConn(OpenSocket(port, 0));
}

RawConn RawConn::Connect(uint16_t port, milliseconds timeout, int rcvbuf) {
  RawConn conn(OpenSocket(port, rcvbuf));
  if (conn.ok() && !conn.WaitConnected(timeout)) conn.Reset();
  return conn;
}

bool RawConn::WaitConnected(milliseconds timeout) {
  if (!ok() || (PollFor(fd_, POLLOUT, timeout) & POLLOUT) == 0) return false;
  int error = 0;
  socklen_t len = sizeof(error);
  return ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) == 0 &&
         error == 0;
}

void RawConn::NoDelay() {
  const int one = 1;
  if (ok()) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool RawConn::Send(std::span<const uint8_t> bytes, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (ok() && !bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes = bytes.subspan(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return false;
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    PollFor(fd_, POLLOUT, std::min(left, milliseconds(100)));
  }
  return ok();
}

RawConn::State RawConn::Drain(ServerReader& reader) {
  uint8_t buffer[65536];
  while (ok()) {
    const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
    if (n > 0) {
      reader.Feed(std::span(buffer, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return State::kOpen;
    return State::kClosed;  // 0: EOF; else reset or error
  }
  return State::kClosed;
}

RawConn::State RawConn::Wait(ServerReader& reader, milliseconds timeout) {
  if (!ok()) return State::kClosed;
  PollFor(fd_, POLLIN | POLLRDHUP, timeout);
  return Drain(reader);
}

void RawConn::Close() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

void RawConn::Reset() {
  if (fd_ < 0) return;
  const linger rst{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
  Close();
}

}  // namespace chaos
