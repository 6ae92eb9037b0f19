// SendBufferChunk: one big block that a thread carves SendBuffers from, so a
// packet costs a cursor bump instead of an allocation.
//
//   one allocation, 64-byte aligned, Options::chunk_size bytes (32 KiB)
//  +-----------+-----+-----------+-----+-----------------+----------------+
//  | chunk hdr | buf | payload   | buf | room reserved   |   free room    |
//  |  (64 B)   | hdr | (closed)  | hdr | by Open (open)  |                |
//  +-----------+-----+-----------+-----+-----------------+----------------+
//              ^ data()          ^ used_size_          ^ +alloc_size  end ^
//  (end = data() + capacity_)
//
// Open(alloc_size) places a SendBuffer header at the cursor (rounded up to 8)
// with alloc_size bytes of room after it; Close commits only what was written
// and moves the cursor past it, so the next Open starts right there. The chunk
// counts one reference per live SendBuffer plus one for the thread using it;
// when the count reaches zero (on whatever thread drops the last buffer) the
// chunk goes back to SendBufferManager, which resets it for reuse or frees it.
//
// A "dedicated" chunk holds exactly one buffer too large for a pooled chunk; it
// is freed, never pooled, when that buffer goes.
//
// Thread safety: Open/Close/Reset only on the thread that owns the chunk (the
// manager hands each chunk to one thread at a time). AddRef/ReleaseRef on any
// thread. Ownership: allocated and destroyed only by SendBufferManager.
#ifndef SERVERCORE_SRC_SEND_BUFFER_CHUNK_H_
#define SERVERCORE_SRC_SEND_BUFFER_CHUNK_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "servercore/send_buffer.h"

namespace servercore {

class alignas(64) SendBufferChunk final {
 public:
  // Bytes a buffer costs in a chunk beyond its payload (its header).
  static constexpr uint32_t kBufferOverhead = sizeof(SendBuffer);
  static constexpr uint32_t kBufferAlign = alignof(SendBuffer);

  // Allocates a chunk whose whole allocation is `allocation_size` bytes
  // (header included). Returns it with no references and an empty cursor.
  static SendBufferChunk* Create(uint32_t allocation_size, bool dedicated);
  static void Destroy(SendBufferChunk* chunk) noexcept;
  // The allocation size of a dedicated chunk for one buffer of `alloc_size`.
  static uint64_t DedicatedAllocationSize(uint32_t alloc_size) noexcept;

  SendBufferChunk(const SendBufferChunk&) = delete;
  SendBufferChunk& operator=(const SendBufferChunk&) = delete;

  uint32_t AllocationSize() const noexcept {
    return capacity_ + static_cast<uint32_t>(sizeof(SendBufferChunk));
  }
  uint32_t Capacity() const noexcept { return capacity_; }
  // The largest alloc_size that Open() accepts now.
  uint32_t FreeSize() const noexcept;
  bool dedicated() const noexcept { return dedicated_; }

  // Owner thread. Carves a buffer of `alloc_size` bytes at the cursor; the
  // caller guarantees alloc_size <= FreeSize(). The buffer holds a reference
  // to this chunk until it is released.
  SendBufferRef Open(uint32_t alloc_size);
  // Owner thread. Commits `buffer` (the last one opened here): the cursor moves
  // to the end of its written bytes.
  void Close(const SendBuffer& buffer) noexcept;
  // Owner thread. Empties the cursor and sets the count to one reference: the
  // taking thread's.
  void Reset() noexcept;

  void AddRef() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Drops one reference; the last one hands the chunk back to the manager.
  void ReleaseRef() noexcept;

 private:
  SendBufferChunk(uint32_t capacity, bool dedicated) noexcept
      : capacity_(capacity), dedicated_(dedicated) {}
  ~SendBufferChunk() = default;

  std::byte* data() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
  const std::byte* data() const noexcept {
    return reinterpret_cast<const std::byte*>(this + 1);
  }
  static uint32_t AlignUp(uint32_t n) noexcept {
    return (n + kBufferAlign - 1) & ~(kBufferAlign - 1);
  }

  std::atomic<uint32_t> refs_{0};
  const uint32_t capacity_;  // bytes of data after the header
  uint32_t used_size_ = 0;   // cursor: bytes committed by Close
  const bool dedicated_;
};

static_assert(sizeof(SendBufferChunk) == 64);
static_assert(sizeof(SendBuffer) % alignof(SendBuffer) == 0);

}  // namespace servercore

#endif  // SERVERCORE_SRC_SEND_BUFFER_CHUNK_H_
