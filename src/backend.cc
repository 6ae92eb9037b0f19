#include "servercore/backend.h"

namespace servercore {

std::string_view ToString(Backend backend) noexcept {
  switch (backend) {
    case Backend::kAuto:
      return "auto";
    case Backend::kUring:
      return "uring";
    case Backend::kEpoll:
      return "epoll";
  }
  return "?";
}

std::optional<Backend> ParseBackend(std::string_view name) noexcept {
  if (name == "auto") return Backend::kAuto;
  if (name == "uring" || name == "io_uring") return Backend::kUring;
  if (name == "epoll") return Backend::kEpoll;
  return std::nullopt;
}

}  // namespace servercore
