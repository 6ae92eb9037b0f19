// docs/PROTOCOL.md's packet ids 1-6 and payload layouts, shared by GameServer
// and DummyClient. The framing (header size, largest packet) is servercore's:
// kPacketHeaderSize and kMaxPacketLimit in servercore/packet_framer.h.
#ifndef SERVERCORE_APPS_COMMON_PROTOCOL_H_
#define SERVERCORE_APPS_COMMON_PROTOCOL_H_

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace game {

enum PacketId : uint16_t {
  kCEcho = 1,
  kSEcho = 2,
  kCJoin = 3,
  kSJoin = 4,
  kCChat = 5,
  kSChat = 6,
};

// Ids from here up carry one protobuf message (game.proto, whose enum
// PacketId holds them).
inline constexpr uint16_t kFirstTypedId = 1000;

inline constexpr size_t kJoinPayloadSize = 4;       // uint32 room id
inline constexpr size_t kJoinReplyPayloadSize = 8;  // room id, members
inline constexpr size_t kChatSenderSize = 8;        // uint64 session id

// A world coordinate (C_MOVE's x and y, and so every position a snapshot
// carries) is finite and within +-kMaxCoordinate.
inline constexpr float kMaxCoordinate = 10000.0F;
inline bool ValidCoordinate(float v) {
  return std::isfinite(v) && std::fabs(v) <= kMaxCoordinate;
}

}  // namespace game

#endif  // SERVERCORE_APPS_COMMON_PROTOCOL_H_
