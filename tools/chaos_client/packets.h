// Bytes on the wire for ChaosClient's attackers (docs/PROTOCOL.md): packet
// builders, the hand-made protobuf of the typed packets, the server-side
// framing of a byte stream (to keep random streams out of the verifiers'
// rooms) and ServerReader, which frames and checks what the server sends.
//
// Thread safety: free functions are safe; a ServerReader is not (one per
// connection).
#ifndef SERVERCORE_TOOLS_CHAOS_CLIENT_PACKETS_H_
#define SERVERCORE_TOOLS_CHAOS_CLIENT_PACKETS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace chaos {

using Bytes = std::vector<uint8_t>;

inline constexpr uint16_t kCEcho = 1;
inline constexpr uint16_t kSEcho = 2;
inline constexpr uint16_t kCJoin = 3;
inline constexpr uint16_t kSJoin = 4;
inline constexpr uint16_t kCChat = 5;
inline constexpr uint16_t kSChat = 6;
inline constexpr uint16_t kCPing = 1000;
inline constexpr uint16_t kSPong = 1001;
inline constexpr uint16_t kCMove = 1002;
inline constexpr uint16_t kSSnapshot = 1003;
inline constexpr uint16_t kSBye = 1005;
inline constexpr size_t kHeaderSize = 4;

// Rooms first..last (inclusive); first > last is empty.
struct RoomRange {
  uint32_t first = 1;
  uint32_t last = 0;
  bool Contains(uint32_t room) const noexcept {
    return first <= room && room <= last;
  }
  bool empty() const noexcept { return first > last; }
};

void PutU16(Bytes& out, uint16_t value);
void PutU32(Bytes& out, uint32_t value);
void PutU64(Bytes& out, uint64_t value);
uint16_t GetU16(const uint8_t* p);
uint32_t GetU32(const uint8_t* p);
uint64_t GetU64(const uint8_t* p);

// [size][id][payload]; the size field is the real size (mutations change it).
Bytes Packet(uint16_t id, std::span<const uint8_t> payload);
Bytes JoinPacket(uint32_t room);

// Protobuf fields by hand: a varint field, a float (fixed32) field.
void ProtoVarint(Bytes& out, uint32_t field, uint64_t value);
void ProtoFloat(Bytes& out, uint32_t field, float value);
Bytes PingPayload(uint64_t client_time_us);
Bytes MovePayload(float x, float y, uint32_t seq);

// The varint fields of a message (field -> value, the last one wins);
// nullopt if it holds anything else or is cut short. Enough for S_PONG and
// S_BYE's reason (S_BYE's detail, a string, is skipped).
std::optional<uint64_t> ProtoField(std::span<const uint8_t> message,
                                   uint32_t field);

// Walks `stream` packet by packet as the server frames it (stopping where
// the server would close: a size below 4 or above `max_packet`) and moves
// every complete C_JOIN whose room lies in `keep_out` to room 0: random
// streams must never put an attacker in a verifier's room.
void KeepJoinsOut(Bytes& stream, RoomRange keep_out, size_t max_packet);

// A packet from the server.
struct ServerPacket {
  uint16_t id = 0;
  Bytes payload;
};

// Frames the server's bytes and checks the framing: every packet's size at
// least 4 and its id one the server sends (2, 4, 6, 1001, 1003, 1005).
class ServerReader {
 public:
  void Feed(std::span<const uint8_t> bytes);
  // The next complete packet; nullopt when none is complete or after a
  // framing error (error() says which).
  std::optional<ServerPacket> Next();
  const std::string& error() const noexcept { return error_; }
  uint64_t packets() const noexcept { return packets_; }

 private:
  Bytes buffer_;
  size_t read_ = 0;
  uint64_t packets_ = 0;
  std::string error_;
};

}  // namespace chaos

#endif  // SERVERCORE_TOOLS_CHAOS_CLIENT_PACKETS_H_
