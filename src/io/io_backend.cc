#include "io/io_backend.h"

#include <cerrno>
#include <cstdlib>
#include <optional>

#include "io/socket_state.h"
#include "servercore/log.h"

namespace servercore::internal {

int64_t IoBackend::WriteNow(SocketState& socket, const msghdr& message) {
  const ssize_t n =
      ::sendmsg(socket.fd(), &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  return n >= 0 ? n : -errno;
}

Backend ChooseBackend(Backend requested) {
  if (requested != Backend::kAuto) return requested;
  if (const char* env = std::getenv("SERVERCORE_BACKEND"); env != nullptr) {
    const std::optional<Backend> parsed = ParseBackend(env);
    if (parsed && *parsed != Backend::kAuto) return *parsed;
    if (!parsed) {
      SERVERCORE_LOG_WARNING("SERVERCORE_BACKEND=%s is not auto|uring|epoll",
                             env);
    }
  }
  std::string why;
  if (UringAvailable(&why)) return Backend::kUring;
  SERVERCORE_LOG_INFO("io_uring unavailable (%s); using epoll", why.c_str());
  return Backend::kEpoll;
}

std::unique_ptr<IoBackend> CreateBackend(Backend kind, IoWorker& worker,
                                         std::error_code* error,
                                         std::string* why) {
  return kind == Backend::kUring ? CreateUringBackend(worker, error, why)
                                 : CreateEpollBackend(worker, error, why);
}

}  // namespace servercore::internal
