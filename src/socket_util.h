// Socket set-up helpers: the fallible-setup tier, so each returns an error
// code the caller must look at.
#ifndef SERVERCORE_SRC_SOCKET_UTIL_H_
#define SERVERCORE_SRC_SOCKET_UTIL_H_

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <system_error>

namespace servercore::internal {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage);
  }
};

// Numeric or named host ("0.0.0.0", "::1", "localhost"); numeric port.
[[nodiscard]] std::error_code Resolve(std::string_view host, uint16_t port,
                                      SocketAddress* address);
// A non-blocking listening socket with SO_REUSEADDR (a restart need not wait
// out TIME_WAIT). No SO_REUSEPORT: a second server on the same port fails
// with EADDRINUSE instead of silently sharing the connections.
[[nodiscard]] std::error_code Listen(const SocketAddress& address, int* fd);
[[nodiscard]] std::error_code LocalPort(int fd, uint16_t* port);
// A connected non-blocking socket, or an error after `timeout`.
[[nodiscard]] std::error_code Connect(const SocketAddress& address,
                                      std::chrono::milliseconds timeout,
                                      int* fd);
// TCP_NODELAY: game packets are small and latency-bound; our gather writes
// already batch.
void SetNoDelay(int fd) noexcept;

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_SOCKET_UTIL_H_
