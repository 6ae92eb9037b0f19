// PacketWriter: builds one packet ([size][id][payload], see packet_framer.h)
// straight into a pooled SendBuffer, so a sender never repeats the header
// layout or the Open/Close bookkeeping.
//
//   PacketWriter packet(kSChat, 8 + message.size());  // id, payload capacity
//   packet.WriteU64(sender_id).WriteBytes(message);
//   SendBufferRef buffer = packet.Finish();            // size written, closed
//   for (SessionRef& member : room) member->Send(buffer);
//
// or, for a payload already in one piece:
//
//   session->Send(MakePacket(kSEcho, payload));
//
// The constructor opens a SendBuffer of kPacketHeaderSize + max_payload bytes
// in the calling thread's chunk; the Write* calls append little-endian fields
// after the header; Finish() stores the size and id and closes the buffer,
// committing only what was written. Writing past max_payload, a packet larger
// than kMaxPacketLimit, or using the writer after Finish are programming
// errors and abort with a message. A writer destroyed without Finish closes
// its buffer empty, so the thread can open the next one.
//
// Thread safety: a writer belongs to the thread that made it (it holds that
// thread's open SendBuffer) until Finish; the SendBufferRef it returns may go
// anywhere. Distinct objects: Safe. Shared objects: Unsafe.
#ifndef SERVERCORE_PACKET_WRITER_H_
#define SERVERCORE_PACKET_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "servercore/packet_framer.h"
#include "servercore/send_buffer.h"

namespace servercore {

class PacketWriter {
 public:
  // Opens a SendBuffer for a packet of id `id` whose payload is at most
  // `max_payload` bytes.
  PacketWriter(uint16_t id, size_t max_payload);
  ~PacketWriter();
  PacketWriter(const PacketWriter&) = delete;
  PacketWriter& operator=(const PacketWriter&) = delete;

  PacketWriter& WriteU8(uint8_t value) { return Store(value); }
  PacketWriter& WriteU16(uint16_t value) { return Store(value); }
  PacketWriter& WriteU32(uint32_t value) { return Store(value); }
  PacketWriter& WriteU64(uint64_t value) { return Store(value); }
  PacketWriter& WriteBytes(std::span<const std::byte> bytes);
  PacketWriter& WriteBytes(std::string_view text) {
    return WriteBytes(std::as_bytes(std::span(text.data(), text.size())));
  }
  // The next `n` payload bytes, to be filled by the caller (say, a
  // serializer writing in place); the cursor moves past them.
  std::span<std::byte> Reserve(size_t n) {
    if (n > capacity_ - cursor_ || !buffer_) [[unlikely]]
      Overflow(n);
    std::byte* at = buffer_->Buffer() + cursor_;
    cursor_ += n;
    return {at, n};
  }

  // Payload bytes written so far, and how many more fit.
  size_t payload_size() const noexcept { return cursor_ - kPacketHeaderSize; }
  size_t payload_room() const noexcept { return capacity_ - cursor_; }

  // Writes the header (size, id), closes the buffer and hands it over.
  [[nodiscard]] SendBufferRef Finish();

 private:
  // Aborts with the reason Reserve(n) cannot be met.
  [[noreturn]] void Overflow(size_t n) const;

  template <typename T>
  PacketWriter& Store(T value) {
    std::byte* at = Reserve(sizeof(T)).data();
    internal::StoreLittleEndian(at, value);
    return *this;
  }

  SendBufferRef buffer_;
  size_t capacity_;  // header included
  size_t cursor_ = kPacketHeaderSize;
  uint16_t id_;
};

// One packet whose payload is `payload`, copied once into a SendBuffer.
[[nodiscard]] SendBufferRef MakePacket(uint16_t id,
                                       std::span<const std::byte> payload);

}  // namespace servercore

#endif  // SERVERCORE_PACKET_WRITER_H_
