#include "game_session.h"

#include <cstdio>

#include "../common/protocol.h"
#include "game.packets.h"
#include "servercore/packet_framer.h"
#include "servercore/packet_writer.h"

namespace game {

using servercore::kMaxPacketLimit;
using servercore::kPacketHeaderSize;
using servercore::LoadU32;
using servercore::MakePacket;
using servercore::PacketWriter;
using servercore::SendBufferRef;

void GameSession::OnCreated() {
  // At accept, in accept order: a client whose connect returned is in room 0
  // before any connection made after it can chat.
  rooms_.Join(std::static_pointer_cast<GameSession>(shared_from_this()), 0);
  room_ = 0;
  in_room_ = true;
}

void GameSession::OnDisconnected(servercore::DisconnectReason) {
  if (in_room_) rooms_.Leave(*this, room_);
  in_room_ = false;
}

void GameSession::OnRecvPacket(uint16_t id,
                               std::span<const std::byte> payload) {
  if (id >= kFirstTypedId) sent_typed_ = true;  // valid or not: S_BYE later
  switch (id) {
    case kCEcho:
      HandleEcho(payload);
      break;
    case kCJoin:
      HandleJoin(payload);
      break;
    case kCChat:
      HandleChat(payload);
      break;
    default:
      if (id >= kFirstTypedId) {
        HandleTyped(id, payload);
      } else {
        RejectId(id);
      }
  }
}

void GameSession::HandleTyped(uint16_t id, std::span<const std::byte> payload) {
  switch (pb::Dispatch(*this, id, payload)) {
    case servercore::DispatchResult::kHandled:
      break;
    case servercore::DispatchResult::kUnknownId:  // S_* ids among them
      RejectId(id);
      break;
    case servercore::DispatchResult::kParseError: {
      char why[64];
      std::snprintf(why, sizeof(why), "packet id %u: payload does not parse",
                    unsigned{id});
      ProtocolError(why);
      break;
    }
  }
}

void GameSession::RejectId(uint16_t id) {
  char why[48];
  std::snprintf(why, sizeof(why), "packet id %u not accepted", unsigned{id});
  ProtocolError(why);
}

void GameSession::HandleEcho(std::span<const std::byte> payload) {
  Send(MakePacket(kSEcho, payload));
}

void GameSession::HandleJoin(std::span<const std::byte> payload) {
  if (payload.size() != kJoinPayloadSize) {
    ProtocolError("C_JOIN payload is not 4 bytes");
    return;
  }
  const uint32_t room = LoadU32(payload.data());
  if (in_room_) rooms_.Leave(*this, room_);
  // S_JOIN goes out under the room's lock: no chat from the new room can be
  // queued to this session ahead of it.
  rooms_.Join(std::static_pointer_cast<GameSession>(shared_from_this()), room,
              [&](uint32_t members) {
                PacketWriter reply(kSJoin, kJoinReplyPayloadSize);
                reply.WriteU32(room).WriteU32(members);
                Send(reply.Finish());
              });
  room_ = room;
  in_room_ = true;
}

void GameSession::HandleChat(std::span<const std::byte> payload) {
  const size_t chat_payload = kChatSenderSize + payload.size();
  if (kPacketHeaderSize + chat_payload > kMaxPacketLimit) {
    ProtocolError("C_CHAT too long: S_CHAT would exceed 65535 bytes");
    return;
  }
  // Built once; the same buffer is queued to every member of the room.
  PacketWriter chat(kSChat, chat_payload);
  chat.WriteU64(id()).WriteBytes(payload);
  const SendBufferRef buffer = chat.Finish();
  rooms_.Broadcast(room_, buffer);
}

}  // namespace game
