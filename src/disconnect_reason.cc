#include "servercore/disconnect_reason.h"

namespace servercore {

std::string_view ToString(DisconnectReason reason) noexcept {
  switch (reason) {
    case DisconnectReason::kPeerClosed:
      return "peer closed";
    case DisconnectReason::kReset:
      return "connection reset";
    case DisconnectReason::kIoError:
      return "I/O error";
    case DisconnectReason::kLocal:
      return "closed locally";
    case DisconnectReason::kSlowReceiver:
      return "slow receiver";
    case DisconnectReason::kProtocolError:
      return "protocol error";
    case DisconnectReason::kServiceStopped:
      return "service stopped";
    case DisconnectReason::kIdleTimeout:
      return "idle timeout";
    case DisconnectReason::kPacketTimeout:
      return "packet timeout";
    case DisconnectReason::kMemoryBudget:
      return "memory budget";
    case DisconnectReason::kCount:
      break;
  }
  return "?";
}

}  // namespace servercore
