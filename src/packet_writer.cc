#include "servercore/packet_writer.h"

#include <cstring>
#include <utility>

#include "servercore/check.h"
#include "servercore/send_buffer_manager.h"

namespace servercore {

PacketWriter::PacketWriter(uint16_t id, size_t max_payload)
    : capacity_(kPacketHeaderSize + max_payload), id_(id) {
  SERVERCORE_CHECK(max_payload <= kMaxPacketLimit - kPacketHeaderSize,
                   "PacketWriter: a payload of at most %zu bytes, not %zu",
                   kMaxPacketLimit - kPacketHeaderSize, max_payload);
  buffer_ =
      SendBufferManager::Instance().Open(static_cast<uint32_t>(capacity_));
}

PacketWriter::~PacketWriter() {
  if (buffer_) buffer_->Close(0);  // abandoned: give the room back
}

std::span<std::byte> PacketWriter::Reserve(size_t n) {
  SERVERCORE_CHECK(buffer_, "PacketWriter used after Finish");
  SERVERCORE_CHECK(n <= capacity_ - cursor_,
                   "PacketWriter: %zu more payload bytes do not fit in the "
                   "%zu reserved (%zu written)",
                   n, capacity_ - kPacketHeaderSize, payload_size());
  std::byte* at = buffer_->Buffer() + cursor_;
  cursor_ += n;
  return {at, n};
}

PacketWriter& PacketWriter::WriteBytes(std::span<const std::byte> bytes) {
  std::span<std::byte> room = Reserve(bytes.size());
  if (!bytes.empty()) std::memcpy(room.data(), bytes.data(), bytes.size());
  return *this;
}

SendBufferRef PacketWriter::Finish() {
  SERVERCORE_CHECK(buffer_, "PacketWriter::Finish called twice");
  WritePacketHeader(buffer_->Buffer(), static_cast<uint16_t>(cursor_), id_);
  buffer_->Close(static_cast<uint32_t>(cursor_));
  return std::exchange(buffer_, nullptr);
}

SendBufferRef MakePacket(uint16_t id, std::span<const std::byte> payload) {
  PacketWriter packet(id, payload.size());
  packet.WriteBytes(payload);
  return packet.Finish();
}

}  // namespace servercore
