#include "send_buffer_chunk.h"

#include <new>

#include "page_pool.h"
#include "servercore/check.h"
#include "servercore/send_buffer_manager.h"

namespace servercore {

SendBufferChunk* SendBufferChunk::Create(uint32_t allocation_size,
                                         bool dedicated) {
  SERVERCORE_CHECK(allocation_size > sizeof(SendBufferChunk) + kBufferOverhead,
                   "SendBufferChunk::Create: allocation too small");
  // Page-aligned, from the pool (not malloc: see page_pool.h).
  void* memory = internal::PagePool::Instance().Take(allocation_size);
  return new (memory) SendBufferChunk(
      allocation_size - static_cast<uint32_t>(sizeof(SendBufferChunk)),
      dedicated);
}

void SendBufferChunk::Destroy(SendBufferChunk* chunk) noexcept {
  const uint32_t allocation_size = chunk->AllocationSize();
  chunk->~SendBufferChunk();
  internal::PagePool::Instance().Give(reinterpret_cast<std::byte*>(chunk),
                                      allocation_size);
}

uint64_t SendBufferChunk::DedicatedAllocationSize(
    uint32_t alloc_size) noexcept {
  return uint64_t{sizeof(SendBufferChunk)} + kBufferOverhead + alloc_size;
}

uint32_t SendBufferChunk::FreeSize() const noexcept {
  const uint32_t start = AlignUp(used_size_) + kBufferOverhead;
  return start < capacity_ ? capacity_ - start : 0;
}

SendBufferRef SendBufferChunk::Open(uint32_t alloc_size) {
  SERVERCORE_CHECK(alloc_size <= FreeSize(),
                   "SendBufferChunk::Open: no room for alloc_size");
  void* at = data() + AlignUp(used_size_);
  AddRef();  // the buffer's reference to its chunk
  return SendBufferRef(new (at) SendBuffer(this, alloc_size));
}

void SendBufferChunk::Close(const SendBuffer& buffer) noexcept {
  used_size_ =
      static_cast<uint32_t>(buffer.Buffer() + buffer.WriteSize() - data());
}

void SendBufferChunk::Reset() noexcept {
  used_size_ = 0;
  refs_.store(1, std::memory_order_relaxed);
}

void SendBufferChunk::ReleaseRef() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    SendBufferManager::Instance().Reclaim(this);
  }
}

}  // namespace servercore
