// Output of one Asio peer session: what it has to send, kept so that steady
// state allocates nothing and a write is as few buffers as possible.
//
//   filling_  (replies and broadcasts append here while a write is under way)
//   +--------------------------------------+
//   | S_ECHO | S_CHAT | S_CHAT | ...       |   bytes: one contiguous buffer
//   +--------------------------------------+
//   writing_  (handed to async_write; swapped with filling_ when it is done)
//
// Both sides keep their capacity, so after the first few writes nothing is
// allocated; a side that grew past kKeepCapacity (a slow receiver's backlog)
// is given back once written.
//
// With Broadcast::kShared a broadcast is not copied in: the side records a
// reference to the one SharedPacket every receiver shares, and the write
// gathers [own bytes][shared packet][own bytes]... Pieces are only kept once
// a shared packet has been appended; until then the bytes are the only piece.
//
// Thread safety: confined to the session's worker thread (Distinct objects:
// Safe. Shared objects: Unsafe). SharedPacket and PacketPool are worker-local
// too: their reference counts are plain integers.
#ifndef SERVERCORE_BENCH_PEERS_ASIO_OUTPUT_H_
#define SERVERCORE_BENCH_PEERS_ASIO_OUTPUT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "asio_peer.h"

namespace asio_peer {

// One broadcast packet shared by every receiver on one worker. Owned by its
// PacketPool; alive while any Output refers to it.
struct SharedPacket {
  uint32_t refs = 0;
  std::vector<uint8_t> bytes;
};

// Recycles SharedPackets: Make takes a free one (allocating only while the
// pool grows), Unref returns it when the last reference goes.
class PacketPool {
 public:
  SharedPacket* Make(const uint8_t* data, size_t size);
  void Ref(SharedPacket* packet) noexcept { ++packet->refs; }
  void Unref(SharedPacket* packet);

 private:
  std::vector<std::unique_ptr<SharedPacket>> all_;
  std::vector<SharedPacket*> free_;
};

class Output {
 public:
  explicit Output(PacketPool& pool) : pool_(pool) {}
  ~Output();
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  // Bytes appended and not yet written (both sides).
  size_t pending() const noexcept { return filling_.size + writing_.size; }
  bool filling_empty() const noexcept { return filling_.size == 0; }

  // Appends `size` bytes to the filling side and returns where to write them.
  uint8_t* Extend(size_t size);
  void Append(const uint8_t* data, size_t size);
  void AppendShared(SharedPacket* packet);

  // Swaps the filling side under write (none may be in flight); returns how
  // many buffers it is.
  size_t StartWrite();
  // What of the write under way is not written yet, valid until Consume or
  // WriteDone (a write_some takes the first 64 buffers of it at most).
  const asio::const_buffer* unwritten_begin() const noexcept {
    return iov_.data() + first_;
  }
  const asio::const_buffer* unwritten_end() const noexcept {
    return iov_.data() + iov_.size();
  }
  // Records `bytes` written; true once the whole write is.
  bool Consume(size_t bytes);
  size_t writing_packets() const noexcept { return writing_.packets; }
  // The write completed (or failed): releases its shared packets.
  void WriteDone();

 private:
  // A range of `bytes`, or a whole shared packet.
  struct Piece {
    SharedPacket* shared;  // null: bytes [offset, offset + size)
    size_t offset;
    size_t size;
  };
  struct Side {
    std::vector<uint8_t> bytes;
    std::vector<Piece> pieces;  // empty: `bytes` is the only piece
    size_t size = 0;            // bytes plus shared packets
    size_t packets = 0;         // packets appended
  };
  static constexpr size_t kKeepCapacity = 64 * 1024;

  void Release(Side& side);

  PacketPool& pool_;
  Side filling_;
  Side writing_;
  std::vector<asio::const_buffer> iov_;  // of writing_
  size_t first_ = 0;                     // the first not wholly written
};

}  // namespace asio_peer

#endif  // SERVERCORE_BENCH_PEERS_ASIO_OUTPUT_H_
