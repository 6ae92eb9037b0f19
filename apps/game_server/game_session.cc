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
  room_ = rooms_.Acquire(0);
  room_id_ = 0;
  ToRoom(&Room::Join, Self(), join_serial_, position_, JoinKind::kInitial);
}

void GameSession::OnDisconnected(servercore::DisconnectReason) {
  if (room_ == nullptr) return;
  ToRoom(&Room::Leave, id(), join_serial_, std::shared_ptr<Room>(),
         uint32_t{0});
  rooms_.Release(room_id_);
  room_.reset();
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
  Reply(MakePacket(kSEcho, payload));
}

void GameSession::HandleJoin(std::span<const std::byte> payload) {
  if (payload.size() != kJoinPayloadSize) {
    ProtocolError("C_JOIN payload is not 4 bytes");
    return;
  }
  const uint32_t room = LoadU32(payload.data());
  // The hand-over of room.h: Leave to the old room, which confirms to the
  // new one once this session is out; the new one sends S_JOIN then.
  std::shared_ptr<Room> next = rooms_.Acquire(room);
  const uint32_t serial = join_serial_ + 1;
  ToRoom(&Room::Leave, id(), join_serial_, next, serial);
  rooms_.Release(room_id_);
  room_ = std::move(next);
  ToRoom(&Room::Join, Self(), serial, position_, JoinKind::kAnnounced);
  room_id_ = room;
  join_serial_ = serial;
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
  ToRoom(&Room::Chat, id(), chat.Finish());
}

void GameSession::Move(float x, float y, uint32_t seq) {
  position_ = WorldPosition{.in_world = true, .x = x, .y = y, .seq = seq};
  ToRoom(&Room::Move, id(), position_);
}

bool GameSession::Settled() const noexcept {
  return announced_.load(std::memory_order_acquire) == join_serial_ &&
         jobs_done_.load(std::memory_order_acquire) == jobs_pushed_;
}

void GameSession::Reply(SendBufferRef packet) {
  if (Settled()) {
    Send(std::move(packet));
  } else {
    ToRoom(&Room::Relay, id(), std::move(packet), RelayAfter::kNothing);
  }
}

void GameSession::OnBadHeader(uint16_t, uint16_t id) {
  if (id >= kFirstTypedId) sent_typed_ = true;
}

void GameSession::OnProtocolError(std::string_view) {
  if (Settled() || room_ == nullptr) {
    Disconnect(servercore::DisconnectReason::kProtocolError);
  } else {
    ToRoom(&Room::Relay, id(), SendBufferRef(), RelayAfter::kProtocolError);
  }
}

std::shared_ptr<GameSession> GameSession::Self() {
  return std::static_pointer_cast<GameSession>(shared_from_this());
}

}  // namespace game
