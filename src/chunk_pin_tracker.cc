#include "chunk_pin_tracker.h"

#include "send_buffer_chunk.h"

namespace servercore::internal {

size_t ChunkPinTracker::Charge(const SendBuffer& buffer) noexcept {
  const SendBufferChunk* chunk = buffer.chunk();
  for (const SendBufferChunk* seen : recent_) {
    if (seen == chunk) return 0;
  }
  recent_[next_] = chunk;
  next_ = (next_ + 1) % kRecent;
  return chunk->AllocationSize();
}

}  // namespace servercore::internal
