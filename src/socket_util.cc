#include "socket_util.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace servercore::internal {
namespace {

std::error_code Errno() { return {errno, std::system_category()}; }

}  // namespace

std::error_code Resolve(std::string_view host, uint16_t port,
                        SocketAddress* address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (host.empty() ? AI_PASSIVE : 0);
  const std::string host_string(host);
  const std::string port_string = std::to_string(port);
  addrinfo* result = nullptr;
  const int r = ::getaddrinfo(host.empty() ? nullptr : host_string.c_str(),
                              port_string.c_str(), &hints, &result);
  if (r != 0) return std::make_error_code(std::errc::address_not_available);
  std::memcpy(&address->storage, result->ai_addr, result->ai_addrlen);
  address->length = result->ai_addrlen;
  ::freeaddrinfo(result);
  return {};
}

std::error_code Listen(const SocketAddress& address, int* fd) {
  const int s = ::socket(address.storage.ss_family,
                         SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return Errno();
  const int one = 1;
  if (::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::bind(s, address.get(), address.length) != 0 ||
      ::listen(s, SOMAXCONN) != 0) {
    const std::error_code error = Errno();
    ::close(s);
    return error;
  }
  *fd = s;
  return {};
}

std::error_code LocalPort(int fd, uint16_t* port) {
  SocketAddress local;
  local.length = sizeof(local.storage);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local.storage),
                    &local.length) != 0) {
    return Errno();
  }
  *port =
      local.storage.ss_family == AF_INET6
          ? ntohs(reinterpret_cast<sockaddr_in6*>(&local.storage)->sin6_port)
          : ntohs(reinterpret_cast<sockaddr_in*>(&local.storage)->sin_port);
  return {};
}

std::error_code Connect(const SocketAddress& address,
                        std::chrono::milliseconds timeout, int* fd) {
  const int s = ::socket(address.storage.ss_family,
                         SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return Errno();
  std::error_code error;
  if (::connect(s, address.get(), address.length) != 0) {
    if (errno != EINPROGRESS) {
      error = Errno();
    } else {
      pollfd p{.fd = s, .events = POLLOUT, .revents = 0};
      const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      if (r == 0) {
        error = std::make_error_code(std::errc::timed_out);
      } else if (r < 0) {
        error = Errno();
      } else if (::getsockopt(s, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
        error = Errno();
      } else if (so_error != 0) {
        error = std::error_code(so_error, std::system_category());
      }
    }
  }
  if (error) {
    ::close(s);
    return error;
  }
  *fd = s;
  return {};
}

void SetNoDelay(int fd) noexcept {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace servercore::internal
