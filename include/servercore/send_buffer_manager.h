// SendBufferManager: the process-wide pool of SendBufferChunks and the entry
// point for building a packet to send.
//
// Each thread holds one chunk in thread-local storage and carves buffers from
// it with no lock (Open / SendBuffer::Close). Only when that chunk is too full
// for the next Open does the thread touch the pool (one mutex) to swap in
// another. A chunk returns to the pool when its last buffer is released and
// its thread has moved on (or exited), and is reset before reuse. The pool
// keeps at most Options::max_pooled_chunks idle chunks and frees the rest, so
// a traffic peak does not hold memory forever; and TrimIdle (which the
// Service's workers call about once a second) frees the idle chunks that
// nobody took since the previous call, down to Options::reserve_chunks, so
// memory goes back once demand falls.
//
// Thread safety: every member may be called from any thread. Open and Close
// act on the calling thread's own chunk. Ownership: the manager owns every
// chunk; chunks in use are kept alive by their references, idle ones by the
// pool. The manager is created on first use and never destroyed, so buffers
// and threads may outlive main().
#ifndef SERVERCORE_SEND_BUFFER_MANAGER_H_
#define SERVERCORE_SEND_BUFFER_MANAGER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "servercore/mutex.h"
#include "servercore/send_buffer.h"
#include "servercore/thread_annotations.h"

namespace servercore {

class SendBufferChunk;

class SendBufferManager {
 public:
  // 32 KiB, chosen by measurement (BM_ChunkSize in bench/send_buffer_bench.cc,
  // recorded in docs/BENCHMARKS.md). Open/Close throughput climbs up to 16 KiB
  // and is flat from there on; at 16 KiB a thread still visits the pool every
  // three Open(4096) calls. 32 KiB sits on the plateau, loses at most an eighth
  // of a chunk to an Open(4096) that no longer fits, and keeps small what one
  // slow receiver's last buffer can pin. (The original's 6000 bytes held one
  // 4 KiB reservation per chunk.)
  static constexpr uint32_t kDefaultChunkSize = 32 * 1024;
  // 512 idle chunks (16 MiB at the default size) absorb a burst; the rest are
  // freed when they come back.
  static constexpr size_t kDefaultMaxPooledChunks = 512;
  // What TrimIdle keeps: 64 chunks (2 MiB at the default size).
  static constexpr size_t kDefaultReserveChunks = 64;

  struct Options {
    // Whole allocation of one chunk, header included. At least 4 KiB.
    uint32_t chunk_size = kDefaultChunkSize;
    // Idle chunks kept for reuse; chunks returned beyond this are freed.
    size_t max_pooled_chunks = kDefaultMaxPooledChunks;
    // Idle chunks TrimIdle never frees.
    size_t reserve_chunks = kDefaultReserveChunks;
  };

  // Counters, read without stopping anyone (each is exact, the set is not a
  // single snapshot).
  struct Stats {
    uint64_t chunks_created = 0;  // pooled chunks ever allocated
    uint64_t chunks_freed = 0;    // pooled chunks freed (pool full, resize)
    uint64_t chunks_pooled = 0;   // idle in the pool now
    uint64_t chunks_in_use = 0;   // held by a thread or by live buffers
    // Memory held by chunks in use plus live dedicated buffers: what live
    // SendBuffers (queued to sessions, in flight, or being built) pin.
    uint64_t bytes_pinned = 0;
    uint64_t dedicated_created = 0;  // Opens larger than a chunk, ever
    uint64_t dedicated_live = 0;     // those still referenced
  };

  static SendBufferManager& Instance();

  SendBufferManager(const SendBufferManager&) = delete;
  SendBufferManager& operator=(const SendBufferManager&) = delete;

  // Reserves `alloc_size` bytes in the calling thread's chunk (a dedicated
  // allocation when it cannot fit in any chunk). The caller writes at
  // Buffer() and must Close() it before the next Open on this thread.
  SendBufferRef Open(uint32_t alloc_size);

  // Gives the calling thread's chunk back (it returns to the pool once its
  // buffers are gone). Threads do this by themselves when they exit; call it
  // to leave a thread chunk-free earlier. Aborts if a buffer is still open.
  void ReleaseThreadChunk();

  // Frees the idle chunks that stayed in the pool, untaken, since the
  // previous call (the pool's low-water mark), keeping at least
  // Options::reserve_chunks; returns how many it freed. A steady load keeps
  // what it uses; a peak's leftovers go within two calls.
  size_t TrimIdle();

  // Changes the chunk size and pool bound. Idle chunks are freed; chunks of
  // another size still in use are freed (not pooled) when they come back.
  void Configure(const Options& options);
  Options options() const;
  Stats GetStats() const;
  // Stats::bytes_pinned alone: one relaxed load, for the memory budget.
  uint64_t PinnedBytes() const noexcept {
    return pinned_bytes_.load(std::memory_order_relaxed);
  }
  // The most bytes pinned at once since the previous call (or start), and
  // starts the next such period from what is pinned now: how far demand has
  // fallen, for MemoryReclaimer.
  uint64_t TakePinnedHighWater() noexcept;

 private:
  friend class SendBuffer;
  friend class SendBufferChunk;

  SendBufferManager();
  ~SendBufferManager() = delete;  // immortal: see the class comment

  // Called by SendBuffer::Close on the opening thread.
  void OnClose(const SendBuffer& buffer);
  // Called when a chunk's last reference goes.
  void Reclaim(SendBufferChunk* chunk) noexcept;

  SendBufferChunk* TakeChunk();
  SendBufferRef OpenDedicated(uint32_t alloc_size);
  void FreeChunk(SendBufferChunk* chunk) noexcept;
  // pinned_bytes_ grew by `size`: raises pinned_high_ to it.
  void NotePinned(uint64_t size) noexcept;

  std::atomic<uint32_t> chunk_size_{kDefaultChunkSize};
  mutable Mutex mu_;
  std::vector<SendBufferChunk*> pool_ SERVERCORE_GUARDED_BY(mu_);
  size_t max_pooled_chunks_ SERVERCORE_GUARDED_BY(mu_) =
      kDefaultMaxPooledChunks;
  size_t reserve_chunks_ SERVERCORE_GUARDED_BY(mu_) = kDefaultReserveChunks;
  // The fewest idle chunks in the pool since the last TrimIdle.
  size_t pool_low_water_ SERVERCORE_GUARDED_BY(mu_) = 0;

  std::atomic<uint64_t> chunks_created_{0};
  std::atomic<uint64_t> chunks_freed_{0};
  std::atomic<uint64_t> chunks_pooled_{0};
  std::atomic<uint64_t> pinned_bytes_{0};
  std::atomic<uint64_t> pinned_high_{0};  // since TakePinnedHighWater
  std::atomic<uint64_t> dedicated_created_{0};
  std::atomic<uint64_t> dedicated_live_{0};
};

}  // namespace servercore

#endif  // SERVERCORE_SEND_BUFFER_MANAGER_H_
