// Which I/O backend a Service runs on.
#ifndef SERVERCORE_BACKEND_H_
#define SERVERCORE_BACKEND_H_

#include <optional>
#include <string_view>

namespace servercore {

enum class Backend {
  // io_uring when the kernel allows it and has every operation we use,
  // otherwise epoll (with one log line saying why). The environment variable
  // SERVERCORE_BACKEND=uring|epoll overrides kAuto.
  kAuto,
  kUring,  // io_uring, one ring per worker thread; fails to start if refused
  kEpoll,  // epoll, one instance per worker thread
};

std::string_view ToString(Backend backend) noexcept;
// "auto", "uring" (or "io_uring"), "epoll".
std::optional<Backend> ParseBackend(std::string_view name) noexcept;

}  // namespace servercore

#endif  // SERVERCORE_BACKEND_H_
