// The payload of DummyClient's echo and chat load packets (--payload bytes):
//   [u32 client index][u32 magic][u64 sequence][u64 send time ns][filler]
// where filler byte j is (sequence + j) & 0xFF, so any corruption shows, and
// the magic is drawn at each start (two DummyClients in one room tell their
// chats apart by it). A payload under kHeaderSize bytes carries the header
// cut short: LoadHeader builds it whole, SeqInPayload reads the sequence of
// one cut anywhere. LoadSession does the rest.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_LOAD_PAYLOAD_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_LOAD_PAYLOAD_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "servercore/packet_framer.h"

namespace game {

inline constexpr size_t kHeaderSize = 24;
// Chat needs the sender's index and the magic that tell this run's chats.
inline constexpr size_t kMinChatPayload = 8;

inline std::array<std::byte, kHeaderSize> LoadHeader(uint32_t index,
                                                     uint32_t magic,
                                                     uint64_t seq,
                                                     uint64_t sent_ns) {
  std::array<std::byte, kHeaderSize> header{};
  servercore::StoreU32(header.data(), index);
  servercore::StoreU32(header.data() + 4, magic);
  servercore::StoreU64(header.data() + 8, seq);
  servercore::StoreU64(header.data() + 16, sent_ns);
  return header;
}

// The sequence of a load payload. One cut short keeps only the low bytes of
// it (none under 9 bytes): the sequence is then the one nearest to `due`,
// the next one due, with those low bytes (as TCP reads its sequence numbers:
// a difference taken modulo their range as signed, never below 0), so that a
// packet lost or overtaken shows as one.
inline uint64_t SeqInPayload(std::span<const std::byte> body, uint64_t due) {
  if (body.size() >= 16) return servercore::LoadU64(body.data() + 8);
  if (body.size() <= 8) return due;
  const size_t bits = (body.size() - 8) * 8;
  uint64_t low = 0;
  for (size_t i = 0; i < body.size() - 8; ++i) {
    low |= uint64_t{std::to_integer<uint8_t>(body[8 + i])} << (8 * i);
  }
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  const uint64_t ahead = (low - due) & mask;  // due + ahead has those bytes
  const uint64_t back = mask + 1 - ahead;     // and so has due - back
  return ahead <= (mask >> 1) || back > due ? due + ahead : due - back;
}

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_LOAD_PAYLOAD_H_
