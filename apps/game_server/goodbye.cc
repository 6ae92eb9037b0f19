#include "goodbye.h"

#include <optional>

#include "game.packets.h"

namespace game {
namespace {

using servercore::DisconnectReason;

std::optional<ByeReason> ByeReasonOf(DisconnectReason reason) {
  switch (reason) {
    case DisconnectReason::kProtocolError:
      return ByeReason::kProtocolError;
    case DisconnectReason::kIdleTimeout:
      return ByeReason::kIdleTimeout;
    case DisconnectReason::kPacketTimeout:
    // A message begun that the memory budget cannot hold: like a packet
    // timeout, a packet that will never be completed. The contract has no
    // reason of its own for it; the detail says "memory budget".
    case DisconnectReason::kMemoryBudget:
      return ByeReason::kPacketTimeout;
    case DisconnectReason::kServiceStopped:
      return ByeReason::kServerStopping;
    default:
      return std::nullopt;
  }
}

}  // namespace

servercore::SendBufferRef MakeGoodbye(DisconnectReason reason) {
  const std::optional<ByeReason> bye = ByeReasonOf(reason);
  if (!bye) return nullptr;
  pb::S_BYE message;
  message.set_reason(static_cast<uint32_t>(*bye));
  message.set_detail(std::string(servercore::ToString(reason)));
  return pb::MakeSendBuffer(message);  // a few bytes: never null
}

}  // namespace game
