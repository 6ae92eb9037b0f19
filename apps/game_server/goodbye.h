// S_BYE, GameServer's goodbye (docs/PROTOCOL.md "Goodbye"): the last packet a
// session that spoke typed packets receives when the server closes it for a
// reason of its own.
#ifndef SERVERCORE_APPS_GAME_SERVER_GOODBYE_H_
#define SERVERCORE_APPS_GAME_SERVER_GOODBYE_H_

#include "servercore/disconnect_reason.h"
#include "servercore/send_buffer.h"

namespace game {

// S_BYE.reason values (docs/PROTOCOL.md).
enum class ByeReason : uint32_t {
  kProtocolError = 1,
  kIdleTimeout = 2,
  kPacketTimeout = 3,
  kServerStopping = 4,
};

// The S_BYE packet for a session the server closes with `reason`; null for
// reasons that get none (the application's own kLocal, and those the library
// never offers a goodbye for).
servercore::SendBufferRef MakeGoodbye(servercore::DisconnectReason reason);

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_GOODBYE_H_
