// The messages GameServer nodes exchange over NATS (docs/CLUSTER.md). Every
// message starts with a 3-byte header, [kind u8][sender's node id u16]; the
// rest is per kind, little-endian:
//
//   kChat      the S_CHAT payload (sender session id u64, then the bytes)
//   kDelta     entities: the sender's world members of the room that moved,
//              entered (gone 0) or left (gone 1) in its last tick
//   kState     [reply u8] then entities: all the sender's world members of
//              the room, replacing what the receiver knew of them; reply 1
//              asks every receiver to answer with its own kState
//   kPresence  [incarnation u64], then pairs [room u32][sessions u32]: the
//              sender's whole table; the incarnation is drawn at each start,
//              so a node restarted with the same id is told from its past
//
// An entity is 21 bytes: [session id u64][x f32][y f32][seq u32][gone u8].
// Readers ignore a message too short for its kind, any trailing partial
// entity and an entity at a position no C_MOVE could set, and add up a room
// listed twice in a presence: a node never trusts another's bytes to be
// well formed.
//
// Thread safety: functions only, no state.
#ifndef SERVERCORE_APPS_GAME_SERVER_CLUSTER_WIRE_H_
#define SERVERCORE_APPS_GAME_SERVER_CLUSTER_WIRE_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace game::cluster {

static_assert(std::endian::native == std::endian::little,
              "the cluster's messages are written as the host stores them");

enum class Kind : uint8_t {
  kChat = 1,
  kDelta = 2,
  kState = 3,
  kPresence = 4,
};

inline constexpr size_t kHeaderSize = 3;
inline constexpr size_t kEntitySize = 21;
inline constexpr size_t kPresenceEntrySize = 8;
inline constexpr size_t kIncarnationSize = 8;

struct Entity {
  uint64_t id = 0;
  float x = 0;
  float y = 0;
  uint32_t seq = 0;
  bool gone = false;
};

// The node a session id was made on (Session::SetIdBase).
constexpr uint16_t NodeOf(uint64_t session_id) noexcept {
  return static_cast<uint16_t>(session_id >> 48);
}

template <typename T>
void Append(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

template <typename T>
T Read(const char* p) noexcept {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

inline std::string Begin(Kind kind, uint16_t node, size_t reserve = 0) {
  std::string out;
  out.reserve(kHeaderSize + reserve);
  Append(out, static_cast<uint8_t>(kind));
  Append(out, node);
  return out;
}

inline void AppendEntity(std::string& out, const Entity& e) {
  Append(out, e.id);
  Append(out, e.x);
  Append(out, e.y);
  Append(out, e.seq);
  Append(out, static_cast<uint8_t>(e.gone ? 1 : 0));
}

inline Entity ReadEntity(const char* p) noexcept {
  return Entity{.id = Read<uint64_t>(p),
                .x = Read<float>(p + 8),
                .y = Read<float>(p + 12),
                .seq = Read<uint32_t>(p + 16),
                .gone = p[20] != 0};
}

// False when `message` is too short for a header.
inline bool ReadHeader(std::string_view message, Kind* kind,
                       uint16_t* node) noexcept {
  if (message.size() < kHeaderSize) return false;
  *kind = static_cast<Kind>(static_cast<uint8_t>(message[0]));
  *node = Read<uint16_t>(message.data() + 1);
  return true;
}

}  // namespace game::cluster

#endif  // SERVERCORE_APPS_GAME_SERVER_CLUSTER_WIRE_H_
