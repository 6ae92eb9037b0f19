#include "servercore/send_buffer_manager.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "send_buffer_chunk.h"
#include "servercore/check.h"

namespace servercore {
namespace {

// The calling thread's chunk and the buffer it has open, if any. Only its own
// thread touches it, so nothing here needs a lock.
struct ThreadSlot {
  SendBufferChunk* chunk = nullptr;
  const SendBuffer* open_buffer = nullptr;

  ~ThreadSlot() {
    // Thread exit: give the chunk back. A buffer left open keeps its own
    // reference to the chunk, so this is safe either way.
    if (chunk != nullptr) std::exchange(chunk, nullptr)->ReleaseRef();
  }
};

thread_local ThreadSlot t_slot;

constexpr uint32_t kMinChunkSize = 4096;

}  // namespace

SendBufferManager& SendBufferManager::Instance() {
  // Immortal, so that thread-exit hooks and buffers released during static
  // destruction always find it.
  static SendBufferManager* const instance = new SendBufferManager();
  return *instance;
}

SendBufferManager::SendBufferManager() {
  MutexLock lock(mu_);
  pool_.reserve(max_pooled_chunks_);
}

SendBufferRef SendBufferManager::Open(uint32_t alloc_size) {
  ThreadSlot& slot = t_slot;
  SERVERCORE_CHECK(slot.open_buffer == nullptr,
                   "SendBufferManager::Open called again before Close of the "
                   "buffer this thread opened last");
  SendBufferChunk* chunk = slot.chunk;
  if (chunk == nullptr || chunk->FreeSize() < alloc_size) [[unlikely]] {
    const uint32_t chunk_size = chunk_size_.load(std::memory_order_relaxed);
    if (uint64_t{alloc_size} + SendBufferChunk::kBufferOverhead >
        chunk_size - sizeof(SendBufferChunk)) {
      return OpenDedicated(alloc_size);
    }
    if (chunk != nullptr) chunk->ReleaseRef();
    chunk = slot.chunk = TakeChunk();
  }
  SendBufferRef buffer = chunk->Open(alloc_size);
  slot.open_buffer = buffer.get();
  return buffer;
}

SendBufferRef SendBufferManager::OpenDedicated(uint32_t alloc_size) {
  const uint64_t size = SendBufferChunk::DedicatedAllocationSize(alloc_size);
  SERVERCORE_CHECK(size <= std::numeric_limits<uint32_t>::max(),
                   "SendBufferManager::Open: alloc_size too large");
  SendBufferChunk* chunk =
      SendBufferChunk::Create(static_cast<uint32_t>(size), /*dedicated=*/true);
  chunk->Reset();
  SendBufferRef buffer = chunk->Open(alloc_size);
  chunk->ReleaseRef();  // only the buffer holds a dedicated chunk
  dedicated_created_.fetch_add(1, std::memory_order_relaxed);
  dedicated_live_.fetch_add(1, std::memory_order_relaxed);
  NotePinned(size);
  t_slot.open_buffer = buffer.get();
  return buffer;
}

void SendBufferManager::OnClose(const SendBuffer& buffer) {
  ThreadSlot& slot = t_slot;
  SERVERCORE_CHECK(slot.open_buffer == &buffer,
                   "SendBuffer::Close must be called on the thread that "
                   "opened the buffer, before that thread opens another");
  slot.open_buffer = nullptr;
}

void SendBufferManager::ReleaseThreadChunk() {
  ThreadSlot& slot = t_slot;
  SERVERCORE_CHECK(slot.open_buffer == nullptr,
                   "SendBufferManager::ReleaseThreadChunk with a buffer open");
  if (slot.chunk != nullptr) std::exchange(slot.chunk, nullptr)->ReleaseRef();
}

SendBufferChunk* SendBufferManager::TakeChunk() {
  SendBufferChunk* chunk = nullptr;
  {
    MutexLock lock(mu_);
    if (!pool_.empty()) {
      chunk = pool_.back();
      pool_.pop_back();
      pool_low_water_ = std::min(pool_low_water_, pool_.size());
      chunks_pooled_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  if (chunk == nullptr) {
    chunk = SendBufferChunk::Create(chunk_size_.load(std::memory_order_relaxed),
                                    /*dedicated=*/false);
    chunks_created_.fetch_add(1, std::memory_order_relaxed);
  }
  NotePinned(chunk->AllocationSize());
  chunk->Reset();
  return chunk;
}

// Once per chunk taken or large buffer made, not per message.
void SendBufferManager::NotePinned(uint64_t size) noexcept {
  const uint64_t now =
      pinned_bytes_.fetch_add(size, std::memory_order_relaxed) + size;
  uint64_t high = pinned_high_.load(std::memory_order_relaxed);
  while (now > high && !pinned_high_.compare_exchange_weak(
                           high, now, std::memory_order_relaxed)) {
  }
}

uint64_t SendBufferManager::TakePinnedHighWater() noexcept {
  return pinned_high_.exchange(PinnedBytes(), std::memory_order_relaxed);
}

void SendBufferManager::Reclaim(SendBufferChunk* chunk) noexcept {
  pinned_bytes_.fetch_sub(chunk->AllocationSize(), std::memory_order_relaxed);
  if (chunk->dedicated()) {
    dedicated_live_.fetch_sub(1, std::memory_order_relaxed);
    SendBufferChunk::Destroy(chunk);
    return;
  }
  {
    MutexLock lock(mu_);
    if (chunk->AllocationSize() ==
            chunk_size_.load(std::memory_order_relaxed) &&
        pool_.size() < max_pooled_chunks_) {
      pool_.push_back(chunk);  // capacity reserved: never allocates
      chunks_pooled_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  FreeChunk(chunk);
}

void SendBufferManager::FreeChunk(SendBufferChunk* chunk) noexcept {
  SendBufferChunk::Destroy(chunk);
  chunks_freed_.fetch_add(1, std::memory_order_relaxed);
}

size_t SendBufferManager::TrimIdle() {
  std::vector<SendBufferChunk*> idle;
  {
    MutexLock lock(mu_);
    // Chunks below the low-water mark were never taken since the last call.
    const size_t keep =
        std::max(reserve_chunks_,
                 pool_.size() - std::min(pool_.size(), pool_low_water_));
    while (pool_.size() > keep) {
      idle.push_back(pool_.back());
      pool_.pop_back();
    }
    chunks_pooled_.store(pool_.size(), std::memory_order_relaxed);
    pool_low_water_ = pool_.size();
  }
  for (SendBufferChunk* chunk : idle) FreeChunk(chunk);
  return idle.size();
}

void SendBufferManager::Configure(const Options& options) {
  SERVERCORE_CHECK(options.chunk_size >= kMinChunkSize,
                   "SendBufferManager::Configure: chunk_size below 4 KiB");
  std::vector<SendBufferChunk*> idle;
  {
    MutexLock lock(mu_);
    chunk_size_.store(options.chunk_size, std::memory_order_relaxed);
    max_pooled_chunks_ = options.max_pooled_chunks;
    reserve_chunks_ = options.reserve_chunks;
    pool_.reserve(max_pooled_chunks_);
    idle.swap(pool_);
    pool_.reserve(max_pooled_chunks_);
    chunks_pooled_.store(0, std::memory_order_relaxed);
    pool_low_water_ = 0;
  }
  for (SendBufferChunk* chunk : idle) FreeChunk(chunk);
}

SendBufferManager::Options SendBufferManager::options() const {
  MutexLock lock(mu_);
  return Options{.chunk_size = chunk_size_.load(std::memory_order_relaxed),
                 .max_pooled_chunks = max_pooled_chunks_,
                 .reserve_chunks = reserve_chunks_};
}

SendBufferManager::Stats SendBufferManager::GetStats() const {
  Stats stats;
  stats.chunks_created = chunks_created_.load(std::memory_order_relaxed);
  stats.chunks_freed = chunks_freed_.load(std::memory_order_relaxed);
  stats.chunks_pooled = chunks_pooled_.load(std::memory_order_relaxed);
  const uint64_t gone = stats.chunks_freed + stats.chunks_pooled;
  stats.chunks_in_use =
      stats.chunks_created > gone ? stats.chunks_created - gone : 0;
  stats.bytes_pinned = pinned_bytes_.load(std::memory_order_relaxed);
  stats.dedicated_created = dedicated_created_.load(std::memory_order_relaxed);
  stats.dedicated_live = dedicated_live_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace servercore
