// GameServer's handlers of the client's typed packets (game.proto), called
// by the generated pb::Dispatch on the session's worker thread. One function
// per C_* message; the generated game.packets.h declares them, so a message
// without a handler here fails to link.
#include <chrono>
#include <cstdint>

#include "../common/protocol.h"
#include "game.packets.h"
#include "game_session.h"

namespace game::pb {

namespace {

uint64_t UnixTimeMicros() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(now).count());
}

}  // namespace

// S_PONG to the sender only: its client time unchanged, the server's clock.
void Handle_C_PING(GameSession& session, const C_PING& message) {
  S_PONG pong;
  pong.set_client_time_us(message.client_time_us());
  pong.set_server_time_us(UnixTimeMicros());
  // Two varints: never near the 65535-byte limit, so never null.
  session.Reply(MakeSendBuffer(pong));
}

// A position must be finite and within ±10000, or it is a protocol error;
// a valid one moves the session (and the first brings it into the world).
void Handle_C_MOVE(GameSession& session, const C_MOVE& message) {
  if (!ValidCoordinate(message.x()) || !ValidCoordinate(message.y())) {
    session.ProtocolError("C_MOVE position not finite or outside +-10000");
    return;
  }
  session.Move(message.x(), message.y(), message.seq());
}

}  // namespace game::pb
