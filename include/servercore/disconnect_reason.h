// Why a session ended: passed to Session::OnDisconnected and counted per
// reason in the service's stats.
#ifndef SERVERCORE_DISCONNECT_REASON_H_
#define SERVERCORE_DISCONNECT_REASON_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace servercore {

enum class DisconnectReason : uint8_t {
  kPeerClosed,      // orderly close by the peer (read returned 0)
  kReset,           // connection reset or broken pipe
  kIoError,         // any other socket error
  kLocal,           // Disconnect() called by the application
  kSlowReceiver,    // unsent output passed ServiceOptions::max_pending_bytes
  kProtocolError,   // the peer broke the wire protocol
  kServiceStopped,  // Service::Stop()
  kIdleTimeout,     // nothing consumed for ServiceOptions::idle_timeout
  kPacketTimeout,   // a message begun and not finished in packet_timeout
  kMemoryBudget,    // a message begun that the memory budget cannot hold
  kCount,
};

inline constexpr size_t kDisconnectReasonCount =
    static_cast<size_t>(DisconnectReason::kCount);

std::string_view ToString(DisconnectReason reason) noexcept;

}  // namespace servercore

#endif  // SERVERCORE_DISCONNECT_REASON_H_
