// GameSession: one client of GameServer, speaking docs/PROTOCOL.md: echo, join
// a room, chat to the room; typed packets (ids 1000 and up, game.proto) go to
// the generated Dispatch and the handlers in typed_handlers.cc. Every session
// starts in room 0.
//
// Thread safety: as PacketSession; room_ is set in OnCreated on the accepting
// thread before the session reaches its worker (the hand-over orders it), and
// touched only on the session's worker thread after that (its packets and its
// OnDisconnected run there).
#ifndef SERVERCORE_APPS_GAME_SERVER_GAME_SESSION_H_
#define SERVERCORE_APPS_GAME_SERVER_GAME_SESSION_H_

#include <cstdint>
#include <span>

#include "goodbye.h"
#include "room_manager.h"
#include "servercore/packet_session.h"

namespace game {

class GameSession final : public servercore::PacketSession {
 public:
  GameSession(RoomManager& rooms, size_t max_packet)
      : PacketSession(max_packet), rooms_(rooms) {}

  // For the typed-packet handlers (typed_handlers.cc), which are free
  // functions called on this session's worker by the generated Dispatch.
  using PacketSession::ProtocolError;

 protected:
  void OnCreated() override;
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override;
  void OnDisconnected(servercore::DisconnectReason reason) override;
  // S_BYE to a client that sent a packet of id 1000 or more (goodbye.h).
  servercore::SendBufferRef OnClosing(
      servercore::DisconnectReason reason) override {
    return sent_typed_ ? MakeGoodbye(reason) : nullptr;
  }

 private:
  void HandleEcho(std::span<const std::byte> payload);
  void HandleJoin(std::span<const std::byte> payload);
  void HandleChat(std::span<const std::byte> payload);
  void HandleTyped(uint16_t id, std::span<const std::byte> payload);
  void RejectId(uint16_t id);

  RoomManager& rooms_;
  uint32_t room_ = 0;
  bool in_room_ = false;
  bool sent_typed_ = false;  // a packet with id >= 1000 arrived (worker)
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_GAME_SESSION_H_
