#include "game_session.h"

#include <cstdio>
#include <cstring>

#include "../common/protocol.h"
#include "servercore/packet_framer.h"
#include "servercore/send_buffer_manager.h"

namespace game {

using servercore::LoadU32;
using servercore::SendBufferManager;
using servercore::SendBufferRef;
using servercore::StoreU32;
using servercore::StoreU64;
using servercore::WritePacketHeader;

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
    default: {
      char why[48];
      std::snprintf(why, sizeof(why), "packet id %u not accepted",
                    unsigned{id});
      ProtocolError(why);
    }
  }
}

void GameSession::HandleEcho(std::span<const std::byte> payload) {
  const auto size = static_cast<uint32_t>(kHeaderSize + payload.size());
  SendBufferRef buffer = SendBufferManager::Instance().Open(size);
  WritePacketHeader(buffer->Buffer(), static_cast<uint16_t>(size), kSEcho);
  if (!payload.empty()) {
    std::memcpy(buffer->Buffer() + kHeaderSize, payload.data(), payload.size());
  }
  buffer->Close(size);
  Send(std::move(buffer));
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
                constexpr uint32_t kSize = kHeaderSize + kJoinReplyPayloadSize;
                SendBufferRef buffer =
                    SendBufferManager::Instance().Open(kSize);
                WritePacketHeader(buffer->Buffer(), kSize, kSJoin);
                StoreU32(buffer->Buffer() + kHeaderSize, room);
                StoreU32(buffer->Buffer() + kHeaderSize + 4, members);
                buffer->Close(kSize);
                Send(std::move(buffer));
              });
  room_ = room;
  in_room_ = true;
}

void GameSession::HandleChat(std::span<const std::byte> payload) {
  const size_t size = kHeaderSize + kChatSenderSize + payload.size();
  if (size > kMaxWirePacket) {
    ProtocolError("C_CHAT too long: S_CHAT would exceed 65535 bytes");
    return;
  }
  // Built once; the same buffer is queued to every member of the room.
  SendBufferRef buffer =
      SendBufferManager::Instance().Open(static_cast<uint32_t>(size));
  WritePacketHeader(buffer->Buffer(), static_cast<uint16_t>(size), kSChat);
  StoreU64(buffer->Buffer() + kHeaderSize, id());
  if (!payload.empty()) {
    std::memcpy(buffer->Buffer() + kHeaderSize + kChatSenderSize,
                payload.data(), payload.size());
  }
  buffer->Close(static_cast<uint32_t>(size));
  rooms_.Broadcast(room_, buffer);
}

}  // namespace game
