#include "packets.h"

#include <bit>
#include <cstring>

namespace chaos {

void PutU16(Bytes& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value & 0xFF));
  out.push_back(static_cast<uint8_t>(value >> 8));
}

void PutU32(Bytes& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<uint8_t>(value >> (8 * i)));
  }
}

void PutU64(Bytes& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<uint8_t>(value >> (8 * i)));
  }
}

uint16_t GetU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

uint32_t GetU32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
         (uint32_t{p[3]} << 24);
}

uint64_t GetU64(const uint8_t* p) {
  return uint64_t{GetU32(p)} | (uint64_t{GetU32(p + 4)} << 32);
}

Bytes Packet(uint16_t id, std::span<const uint8_t> payload) {
  Bytes out;
  out.reserve(kHeaderSize + payload.size());
  PutU16(out, static_cast<uint16_t>(kHeaderSize + payload.size()));
  PutU16(out, id);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Bytes JoinPacket(uint32_t room) {
  Bytes payload;
  PutU32(payload, room);
  return Packet(kCJoin, payload);
}

namespace {

void Varint(Bytes& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
}

}  // namespace

void ProtoVarint(Bytes& out, uint32_t field, uint64_t value) {
  Varint(out, uint64_t{field} << 3);
  Varint(out, value);
}

void ProtoFloat(Bytes& out, uint32_t field, float value) {
  Varint(out, (uint64_t{field} << 3) | 5);
  PutU32(out, std::bit_cast<uint32_t>(value));
}

Bytes PingPayload(uint64_t client_time_us) {
  Bytes out;
  ProtoVarint(out, 1, client_time_us);
  return out;
}

Bytes MovePayload(float x, float y, uint32_t seq) {
  Bytes out;
  ProtoFloat(out, 1, x);
  ProtoFloat(out, 2, y);
  ProtoVarint(out, 3, seq);
  return out;
}

namespace {

// Reads a varint at `*at`; false if cut short or longer than 10 bytes.
bool ReadVarint(std::span<const uint8_t> in, size_t* at, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (*at >= in.size()) return false;
    const uint8_t byte = in[(*at)++];
    *value |= uint64_t{byte & 0x7Fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

std::optional<uint64_t> ProtoField(std::span<const uint8_t> message,
                                   uint32_t field) {
  std::optional<uint64_t> found;
  size_t at = 0;
  while (at < message.size()) {
    uint64_t tag = 0;
    uint64_t value = 0;
    if (!ReadVarint(message, &at, &tag)) return std::nullopt;
    switch (tag & 7) {
      case 0:
        if (!ReadVarint(message, &at, &value)) return std::nullopt;
        if ((tag >> 3) == field) found = value;
        break;
      case 2:
        if (!ReadVarint(message, &at, &value) || value > message.size() - at) {
          return std::nullopt;
        }
        at += static_cast<size_t>(value);
        break;
      default:
        return std::nullopt;
    }
  }
  return found.has_value() ? found : std::optional<uint64_t>(0);
}

void KeepJoinsOut(Bytes& stream, RoomRange keep_out, size_t max_packet) {
  size_t at = 0;
  while (stream.size() - at >= kHeaderSize) {
    const size_t size = GetU16(stream.data() + at);
    if (size < kHeaderSize || size > max_packet) return;  // server closes
    if (size > stream.size() - at) return;                // never completes
    if (GetU16(stream.data() + at + 2) == kCJoin && size == 8 &&
        keep_out.Contains(GetU32(stream.data() + at + 4))) {
      std::memset(stream.data() + at + 4, 0, 4);
    }
    at += size;
  }
}

void ServerReader::Feed(std::span<const uint8_t> bytes) {
  if (read_ == buffer_.size()) {
    buffer_.clear();
    read_ = 0;
  } else if (read_ > (1u << 16)) {
    buffer_.erase(buffer_.begin(),
                  buffer_.begin() + static_cast<std::ptrdiff_t>(read_));
    read_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::optional<ServerPacket> ServerReader::Next() {
  if (!error_.empty() || buffer_.size() - read_ < kHeaderSize) {
    return std::nullopt;
  }
  const uint8_t* head = buffer_.data() + read_;
  const size_t size = GetU16(head);
  const uint16_t id = GetU16(head + 2);
  if (size < kHeaderSize) {
    error_ = "server packet of size " + std::to_string(size);
    return std::nullopt;
  }
  if (id != kSEcho && id != kSJoin && id != kSChat && id != kSPong &&
      id != kSSnapshot && id != kSBye) {
    error_ = "server packet of id " + std::to_string(id);
    return std::nullopt;
  }
  if (buffer_.size() - read_ < size) return std::nullopt;
  ServerPacket packet{.id = id,
                      .payload = Bytes(head + kHeaderSize, head + size)};
  read_ += size;
  ++packets_;
  return packet;
}

}  // namespace chaos
