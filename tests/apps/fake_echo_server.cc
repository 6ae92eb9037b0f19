#include "tests/apps/fake_echo_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>
#include <vector>

#include "tests/apps/app_test_util.h"

namespace servercore::test {
namespace {

constexpr int kPollMs = 20;

bool SendAll(int fd, const std::vector<std::byte>& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

FakeEchoServer::FakeEchoServer(Fault fault, bool lag)
    : fault_(fault), lag_(lag) {
  listen_fd_ = ListenOnLoopback(&port_);
  if (listen_fd_ >= 0) thread_ = std::thread([this] { Run(); });
}

FakeEchoServer::~FakeEchoServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void FakeEchoServer::Run() {
  while (!stop_) {
    pollfd p{.fd = listen_fd_, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, kPollMs) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    Serve(fd);
    ::close(fd);
  }
}

void FakeEchoServer::Serve(int fd) {
  std::vector<std::byte> in;
  std::optional<std::vector<std::byte>> held;     // kReorder: the swapped reply
  uint64_t loads = 0;                             // load echoes answered so far
  std::optional<std::vector<std::byte>> lagging;  // lag_: the newest reply
  std::byte buf[16384];
  while (!stop_) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    const int r = ::poll(&p, 1, kPollMs);
    if (r < 0 && errno != EINTR) return;
    if (r == 0 && lagging) {  // quiet: the last reply goes now
      if (!SendAll(fd, *lagging)) return;
      lagging.reset();
    }
    if (r <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    in.insert(in.end(), buf, buf + n);
    size_t at = 0;
    while (in.size() - at >= 4) {
      const size_t size = std::to_integer<size_t>(in[at]) |
                          (std::to_integer<size_t>(in[at + 1]) << 8);
      const unsigned id = std::to_integer<unsigned>(in[at + 2]) |
                          (std::to_integer<unsigned>(in[at + 3]) << 8);
      if (size < 4) return;
      if (in.size() - at < size) break;
      std::vector<std::byte> reply(in.begin() + static_cast<long>(at),
                                   in.begin() + static_cast<long>(at + size));
      at += size;
      if (id != 1) continue;  // only echo is served
      reply[2] = std::byte{2};
      const bool ping =
          size == 8 && std::memcmp(reply.data() + 4, "ping", 4) == 0;
      const uint64_t nth = ping ? UINT64_MAX : loads++;
      std::vector<std::vector<std::byte>> out;
      if (nth == 2 && fault_ == Fault::kDrop) {
        ++faults_;
      } else if (nth == 2 && fault_ == Fault::kCorrupt) {
        reply.back() ^= std::byte{0x01};
        ++faults_;
        out.push_back(std::move(reply));
      } else if (nth == 2 && fault_ == Fault::kReorder) {
        held = std::move(reply);
      } else if (nth == 2 && fault_ == Fault::kDuplicate) {
        out.push_back(reply);
        out.push_back(std::move(reply));
        ++faults_;
      } else if (nth == 2 && fault_ == Fault::kUnknownId) {
        reply[2] = std::byte{999 & 0xFF};
        reply[3] = std::byte{999 >> 8};
        ++faults_;
        out.push_back(std::move(reply));
      } else {
        out.push_back(std::move(reply));
        if (nth == 3 && held) {
          out.push_back(std::move(*held));
          held.reset();
          ++faults_;
        }
      }
      for (auto& o : out) {
        if (lagging && !SendAll(fd, *lagging)) return;
        lagging.reset();
        if (lag_) {
          lagging = std::move(o);
        } else if (!SendAll(fd, o)) {
          return;
        }
      }
    }
    in.erase(in.begin(), in.begin() + static_cast<long>(at));
  }
}

}  // namespace servercore::test
