#include "servercore/packet_writer.h"

#include <cstdlib>
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

void PacketWriter::Overflow(size_t n) const {
  SERVERCORE_CHECK(buffer_, "PacketWriter used after Finish");
  SERVERCORE_CHECK(false,
                   "PacketWriter: %zu more payload bytes do not fit in the "
                   "%zu reserved (%zu written)",
                   n, capacity_ - kPacketHeaderSize, payload_size());
  std::abort();  // not reached
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
  // The writer's work without its bookkeeping: every echo takes this path.
  SERVERCORE_CHECK(payload.size() <= kMaxPacketLimit - kPacketHeaderSize,
                   "MakePacket: a payload of at most %zu bytes, not %zu",
                   kMaxPacketLimit - kPacketHeaderSize, payload.size());
  const auto size = static_cast<uint32_t>(kPacketHeaderSize + payload.size());
  SendBufferRef buffer = SendBufferManager::Instance().Open(size);
  WritePacketHeader(buffer->Buffer(), static_cast<uint16_t>(size), id);
  if (!payload.empty()) {
    std::memcpy(buffer->Buffer() + kPacketHeaderSize, payload.data(),
                payload.size());
  }
  buffer->Close(size);
  return buffer;
}

}  // namespace servercore
