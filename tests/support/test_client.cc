#include "test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <utility>

namespace servercore::test {
namespace {

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

}  // namespace

std::vector<std::byte> EncodePacket(uint16_t id,
                                    std::span<const std::byte> payload) {
  const size_t size = payload.size() + 4;
  std::vector<std::byte> out(size);
  out[0] = std::byte(size & 0xFF);
  out[1] = std::byte((size >> 8) & 0xFF);
  out[2] = std::byte(id & 0xFF);
  out[3] = std::byte((id >> 8) & 0xFF);
  if (!payload.empty())
    std::memcpy(out.data() + 4, payload.data(), payload.size());
  return out;
}

namespace {

// Binds a TCP socket to 127.0.0.1:`port` (0: any) and releases it; the
// port bound, or 0.
uint16_t BindAndRelease(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  socklen_t len = sizeof(addr);
  uint16_t bound = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    bound = ntohs(addr.sin_port);
  }
  ::close(fd);
  return bound;
}

// The first port of the kernel's ephemeral range (32768 if unknown).
unsigned EphemeralLow() {
  unsigned low = 32768;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%u", &low) != 1) low = 32768;
    std::fclose(f);
  }
  return low;
}

}  // namespace

uint16_t UnusedLoopbackPort() {
  const unsigned low = EphemeralLow();
  if (low > 12000) {
    // 10000 up to the range, by a per-process random walk: tests running
    // side by side start from different ports.
    std::random_device random;
    const unsigned span = low - 10000;
    unsigned port = 10000 + random() % span;
    for (int attempt = 0; attempt < 64; ++attempt) {
      if (BindAndRelease(static_cast<uint16_t>(port)) != 0) {
        return static_cast<uint16_t>(port);
      }
      port = 10000 + (port - 10000 + 1 + random() % 97) % span;
    }
  }
  return BindAndRelease(0);
}

TestClient::~TestClient() { Close(); }

TestClient::TestClient(TestClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), rcvbuf_(other.rcvbuf_) {}

TestClient& TestClient::operator=(TestClient&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
    rcvbuf_ = other.rcvbuf_;
  }
  return *this;
}

bool TestClient::Connect(uint16_t port) {
  return OpenSocket() && ConnectOpened(port);
}

bool TestClient::OpenSocket() {
  Close();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  if (rcvbuf_ > 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf_, sizeof(rcvbuf_));
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return true;
}

bool TestClient::ConnectOpened(uint16_t port) {
  if (fd_ < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Close();
    return false;
  }
  return true;
}

bool TestClient::SendAll(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return true;
}

bool TestClient::SendPacket(uint16_t id, std::span<const std::byte> payload) {
  return SendAll(EncodePacket(id, payload));
}

std::optional<std::vector<std::byte>> TestClient::ReadExactly(
    size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::vector<std::byte> out(n);
  size_t got = 0;
  while (got < n) {
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    const int r = ::poll(&p, 1, RemainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    const ssize_t k = ::recv(fd_, out.data() + got, n - got, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return std::nullopt;
    got += static_cast<size_t>(k);
  }
  return out;
}

std::optional<Packet> TestClient::ReadPacket(
    std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto header = ReadExactly(4, timeout);
  if (!header) return std::nullopt;
  const size_t size = static_cast<size_t>((*header)[0]) |
                      (static_cast<size_t>((*header)[1]) << 8);
  if (size < 4) return std::nullopt;
  Packet packet;
  packet.id = static_cast<uint16_t>(static_cast<unsigned>((*header)[2]) |
                                    (static_cast<unsigned>((*header)[3]) << 8));
  if (size > 4) {
    auto payload = ReadExactly(size - 4, std::chrono::milliseconds(std::max(
                                             1, RemainingMs(deadline))));
    if (!payload) return std::nullopt;
    packet.payload = std::move(*payload);
  }
  return packet;
}

std::optional<std::vector<std::byte>> TestClient::ReadSlowly(
    size_t n, size_t piece, std::chrono::microseconds pause,
    std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::vector<std::byte> out(n);
  size_t got = 0;
  while (got < n) {
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    const int r = ::poll(&p, 1, RemainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    const ssize_t k =
        ::recv(fd_, out.data() + got, std::min(piece, n - got), 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return std::nullopt;
    got += static_cast<size_t>(k);
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
  }
  return out;
}

bool TestClient::IsQuiet(std::chrono::milliseconds wait) {
  pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(wait.count()));
  } while (r < 0 && errno == EINTR);
  return r == 0;
}

bool TestClient::WaitForClose(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::byte sink[4096];
  for (;;) {
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    const int r = ::poll(&p, 1, RemainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    const ssize_t k = ::recv(fd_, sink, sizeof(sink), 0);
    if (k == 0) return true;
    if (k < 0) return errno != EINTR && errno != EAGAIN;
  }
}

std::optional<Packet> PacketReader::Next(std::chrono::milliseconds timeout) {
  constexpr size_t kReadSize = 64 * 1024;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const size_t have = buffer_.size() - start_;
    if (have >= 4) {
      const std::byte* h = buffer_.data() + start_;
      const size_t size =
          static_cast<size_t>(h[0]) | (static_cast<size_t>(h[1]) << 8);
      if (size < 4) return std::nullopt;
      if (have >= size) {
        Packet packet;
        packet.id = static_cast<uint16_t>(static_cast<unsigned>(h[2]) |
                                          (static_cast<unsigned>(h[3]) << 8));
        packet.payload.assign(h + 4, h + size);
        start_ += size;
        return packet;
      }
    }
    // Keep the unread part at the front, then read after it.
    buffer_.erase(buffer_.begin(),
                  buffer_.begin() + static_cast<ptrdiff_t>(start_));
    start_ = 0;
    pollfd p{.fd = client_.fd(), .events = POLLIN, .revents = 0};
    const int r = ::poll(&p, 1, RemainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    const size_t old_size = buffer_.size();
    buffer_.resize(old_size + kReadSize);
    const ssize_t k =
        ::recv(client_.fd(), buffer_.data() + old_size, kReadSize, 0);
    buffer_.resize(old_size + static_cast<size_t>(std::max<ssize_t>(k, 0)));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return std::nullopt;
  }
}

void TestClient::SetReceiveBuffer(int bytes) {
  rcvbuf_ = bytes;
  if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

void TestClient::Reset() {
  if (fd_ < 0) return;
  linger l{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  Close();
}

void TestClient::Close() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

}  // namespace servercore::test
