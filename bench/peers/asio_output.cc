#include "asio_output.h"

#include <cassert>
#include <cstring>
#include <utility>

namespace asio_peer {

// --- PacketPool -----------------------------------------------------------

SharedPacket* PacketPool::Make(const uint8_t* data, size_t size) {
  SharedPacket* packet;
  if (free_.empty()) {
    all_.push_back(std::make_unique<SharedPacket>());
    packet = all_.back().get();
  } else {
    packet = free_.back();
    free_.pop_back();
  }
  packet->bytes.assign(data, data + size);  // keeps its capacity
  packet->refs = 0;
  return packet;
}

void PacketPool::Unref(SharedPacket* packet) {
  assert(packet->refs > 0);
  if (--packet->refs == 0) free_.push_back(packet);
}

// --- Output ---------------------------------------------------------------

Output::~Output() {
  Release(filling_);
  Release(writing_);
}

uint8_t* Output::Extend(size_t size) {
  Side& side = filling_;
  const size_t offset = side.bytes.size();
  side.bytes.resize(offset + size);
  if (!side.pieces.empty()) {
    Piece& last = side.pieces.back();
    if (last.shared == nullptr && last.offset + last.size == offset) {
      last.size += size;
    } else {
      side.pieces.push_back({nullptr, offset, size});
    }
  }
  side.size += size;
  ++side.packets;
  return side.bytes.data() + offset;
}

void Output::Append(const uint8_t* data, size_t size) {
  std::memcpy(Extend(size), data, size);
}

void Output::AppendShared(SharedPacket* packet) {
  Side& side = filling_;
  if (side.pieces.empty() && !side.bytes.empty()) {
    side.pieces.push_back({nullptr, 0, side.bytes.size()});
  }
  pool_.Ref(packet);
  side.pieces.push_back({packet, 0, packet->bytes.size()});
  side.size += packet->bytes.size();
  ++side.packets;
}

size_t Output::StartWrite() {
  assert(writing_.size == 0 && filling_.size > 0);
  std::swap(filling_, writing_);
  iov_.clear();
  first_ = 0;
  if (writing_.pieces.empty()) {
    iov_.push_back(asio::buffer(writing_.bytes));
    return 1;
  }
  for (const Piece& piece : writing_.pieces) {
    const uint8_t* base = piece.shared != nullptr ? piece.shared->bytes.data()
                                                  : writing_.bytes.data();
    iov_.push_back(asio::buffer(base + piece.offset, piece.size));
  }
  return iov_.size();
}

bool Output::Consume(size_t bytes) {
  while (bytes > 0 && first_ < iov_.size()) {
    asio::const_buffer& buffer = iov_[first_];
    if (bytes < buffer.size()) {
      buffer += bytes;
      return false;
    }
    bytes -= buffer.size();
    ++first_;
  }
  return first_ == iov_.size();
}

void Output::WriteDone() {
  iov_.clear();
  first_ = 0;
  Release(writing_);
}

void Output::Release(Side& side) {
  for (const Piece& piece : side.pieces) {
    if (piece.shared != nullptr) pool_.Unref(piece.shared);
  }
  side.pieces.clear();
  side.size = 0;
  side.packets = 0;
  if (side.bytes.capacity() > kKeepCapacity) {
    std::vector<uint8_t>().swap(side.bytes);  // a backlog's memory goes back
  } else {
    side.bytes.clear();
  }
}

}  // namespace asio_peer
