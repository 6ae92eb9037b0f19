// PacketFramer: the packet reassembly of PacketSession as pure code, with no
// socket and no session, so it can be unit-tested and fuzzed on its own.
//
// The wire format (PROTOCOL.md, "Framing"):
//
//   offset 0         2         4                                  size
//  +---------+---------+----------------------------------------+
//  | size    | id      | payload: size - 4 bytes                |
//  | u16 LE  | u16 LE  |                                        |
//  +---------+---------+----------------------------------------+
//  |<------------------------ size bytes ------------------------>|
//
// Frame() hands out every whole packet at the front of a byte range and says
// how many bytes that was; whatever partial packet follows stays for the next
// call. Packets may be split at any byte and several may sit in one read.
//
// Invalid sizes are reported as soon as the 2-byte size field is present: a
// size below 4 or above max_packet is an error even if the id bytes have not
// arrived yet, so a bad peer is dropped on its first bad bytes and never makes
// the receiver wait for more. Every size that passes is >= 4, so each packet
// advances the cursor and no input (size == 0 included) can loop.
//
// Use from a session's receive path (RecvBuffer: servercore/recv_buffer.h):
//
//   FrameResult r = framer.Frame(recv_buffer.Data(), [&](const PacketView& p) {
//     return OnRecvPacket(p);  // false once the session has closed
//   });
//   recv_buffer.OnRead(r.consumed);
//   if (r.error != FrameError::kNone) return Disconnect(ToString(r.error));
//   recv_buffer.Clean();
//
// The RecvBuffer's Capacity() must be at least max_packet(), or a valid
// packet of max_packet() bytes could never fit and the session would stall.
//
// The little-endian helpers below work on any host byte order and any
// alignment: they assemble bytes with shifts (compilers turn that into one
// load or store on little-endian hosts).
//
// Thread safety: Distinct objects: Safe. Shared objects: Safe (a PacketFramer
// is immutable after construction; Frame() is const and keeps no state).
// Ownership: Frame() borrows `data` for the call only; a PacketView's payload
// points into `data` and is valid only inside the on_packet call, or as long
// as the caller keeps those bytes unchanged.
#ifndef SERVERCORE_PACKET_FRAMER_H_
#define SERVERCORE_PACKET_FRAMER_H_

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include "servercore/check.h"

namespace servercore {

inline constexpr size_t kPacketHeaderSize = 4;  // u16 size + u16 id
inline constexpr size_t kPacketSizeFieldSize = 2;
inline constexpr size_t kMaxPacketLimit = 65535;  // the largest u16 size

// ---- Little-endian loads and stores ---------------------------------------

namespace internal {

// Written as folds over the byte indices rather than loops: GCC at -O2 turns
// the unrolled form, but not a loop, into one load or store.
template <typename T, size_t... I>
constexpr T LoadLittleEndian(const std::byte* p,
                             std::index_sequence<I...>) noexcept {
  // Shift in 64 bits: no promotion of narrow types to signed int.
  return static_cast<T>(((std::to_integer<uint64_t>(p[I]) << (8 * I)) | ...));
}

template <typename T, size_t... I>
constexpr void StoreLittleEndian(std::byte* p, T value,
                                 std::index_sequence<I...>) noexcept {
  ((p[I] = static_cast<std::byte>((uint64_t{value} >> (8 * I)) & 0xFF)), ...);
}

template <typename T>
constexpr T LoadLittleEndian(const std::byte* p) noexcept {
  return LoadLittleEndian<T>(p, std::make_index_sequence<sizeof(T)>());
}

template <typename T>
constexpr void StoreLittleEndian(std::byte* p, T value) noexcept {
  StoreLittleEndian(p, value, std::make_index_sequence<sizeof(T)>());
}

}  // namespace internal

constexpr uint16_t LoadU16(const std::byte* p) noexcept {
  return internal::LoadLittleEndian<uint16_t>(p);
}
constexpr uint32_t LoadU32(const std::byte* p) noexcept {
  return internal::LoadLittleEndian<uint32_t>(p);
}
constexpr uint64_t LoadU64(const std::byte* p) noexcept {
  return internal::LoadLittleEndian<uint64_t>(p);
}
constexpr void StoreU16(std::byte* p, uint16_t value) noexcept {
  internal::StoreLittleEndian(p, value);
}
constexpr void StoreU32(std::byte* p, uint32_t value) noexcept {
  internal::StoreLittleEndian(p, value);
}
constexpr void StoreU64(std::byte* p, uint64_t value) noexcept {
  internal::StoreLittleEndian(p, value);
}

// Writes the 4-byte header at `dst`; `size` counts the header too.
constexpr void WritePacketHeader(std::byte* dst, uint16_t size,
                                 uint16_t id) noexcept {
  StoreU16(dst, size);
  StoreU16(dst + kPacketSizeFieldSize, id);
}

// ---- Framing --------------------------------------------------------------

// One whole packet. `payload` points into the bytes given to Frame().
struct PacketView {
  uint16_t id;
  std::span<const std::byte> payload;
};

enum class FrameError : uint8_t {
  kNone,
  kSizeTooSmall,  // size field < kPacketHeaderSize
  kSizeTooLarge,  // size field > max_packet
};

constexpr std::string_view ToString(FrameError error) noexcept {
  switch (error) {
    case FrameError::kNone:
      return "ok";
    case FrameError::kSizeTooSmall:
      return "size < 4";
    case FrameError::kSizeTooLarge:
      return "size > max-packet";
  }
  return "unknown FrameError";
}

struct FrameResult {
  // Bytes of whole packets delivered: pass to RecvBuffer::OnRead(). On error
  // this is the offset of the bad header, so the bad size can be read there
  // (LoadU16(data.data() + consumed)) for the log line.
  size_t consumed = 0;
  size_t packets = 0;  // on_packet calls made
  FrameError error = FrameError::kNone;
};

// What Frame() accepts as on_packet: callable with a PacketView, returning
// void (take every packet) or bool (false stops after this packet).
template <typename F>
concept PacketHandler = std::invocable<F&, const PacketView&> &&
    (std::is_void_v<std::invoke_result_t<F&, const PacketView&>> ||
     std::same_as<std::invoke_result_t<F&, const PacketView&>, bool>);

class PacketFramer {
 public:
  // Aborts unless kPacketHeaderSize <= max_packet <= kMaxPacketLimit.
  explicit PacketFramer(size_t max_packet) : max_packet_(max_packet) {
    SERVERCORE_CHECK(
        max_packet >= kPacketHeaderSize && max_packet <= kMaxPacketLimit,
        "PacketFramer: max_packet=%zu outside [%zu, %zu]", max_packet,
        kPacketHeaderSize, kMaxPacketLimit);
  }

  size_t max_packet() const noexcept { return max_packet_; }

  // Calls on_packet(PacketView) for every whole packet at the front of
  // `data`, in order, and returns:
  //  - consumed: bytes of the packets delivered (a partial tail is left);
  //  - packets: how many were delivered;
  //  - error: set if the next packet's size field (checked as soon as its 2
  //    bytes are in `data`) is < 4 or > max_packet(). Every packet before the
  //    bad one has been delivered and `consumed` stops at the bad header.
  // If on_packet returns false, framing stops right after that packet; it is
  // counted in consumed and packets, and error is kNone.
  template <PacketHandler F>
  [[nodiscard]] FrameResult Frame(std::span<const std::byte> data,
                                  F&& on_packet) const;

 private:
  size_t max_packet_;
};

template <PacketHandler F>
FrameResult PacketFramer::Frame(std::span<const std::byte> data,
                                F&& on_packet) const {
  FrameResult result;
  while (data.size() - result.consumed >= kPacketSizeFieldSize) {
    const std::byte* header = data.data() + result.consumed;
    const size_t size = LoadU16(header);
    if (size < kPacketHeaderSize) {
      result.error = FrameError::kSizeTooSmall;
      break;
    }
    if (size > max_packet_) {
      result.error = FrameError::kSizeTooLarge;
      break;
    }
    if (data.size() - result.consumed < size) break;  // partial packet

    const PacketView packet{
        LoadU16(header + kPacketSizeFieldSize),
        {header + kPacketHeaderSize, size - kPacketHeaderSize}};
    result.consumed += size;
    ++result.packets;
    if constexpr (std::is_void_v<std::invoke_result_t<F&, const PacketView&>>) {
      std::invoke(on_packet, packet);
    } else if (!std::invoke(on_packet, packet)) {
      break;
    }
  }
  return result;
}

}  // namespace servercore

#endif  // SERVERCORE_PACKET_FRAMER_H_
