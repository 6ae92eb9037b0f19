// PagePool: where RecvBuffer storage, send-buffer chunks and receive tails
// of 16 KiB and more (SocketState::kPagedTailBytes) come from. Blocks are
// carved, page-aligned, from large anonymous mappings (slabs,
// named "servercore-pages" in /proc/PID/smaps where the kernel supports it),
// with the free list kept outside them, so nothing writes to a block until
// data arrives: the pages of an idle connection's receive buffer are never
// resident.
//
// Why not malloc: glibc keeps what is freed in the arena of the thread that
// allocated it, resident until a trim. Under a flood of non-readers the
// memory budget cuts the sessions of one worker, their chunks go back to
// that worker's arena, and the other worker's arena grows meanwhile: the
// process's resident memory reached twice the budget
// (tests/integration/memory_budget_test.cc, the echo flood). A block given
// back here is either kept for reuse by any thread or given back to the
// kernel at once.
//
// Memory goes back. A block given back is kept as it is (its pages resident,
// ready for the next connection) only while at most kDirtyReserveBytes of
// such blocks of its size wait in the free list; past that its pages are
// returned to the kernel (madvise MADV_DONTNEED) before it is listed, so the
// next user starts from zero pages again. After a crowd has gone, the pool
// therefore holds at most that reserve resident per block size, whatever the
// peak was. The address space of the slabs is kept (it costs no memory).
//
// Under AddressSanitizer blocks come from operator new instead, so overruns
// between neighbouring buffers are still caught.
//
// Thread safety: Take, Give and GetStats may be called from any thread (one
// mutex; they run once per connection or per chunk of output, never per
// packet: SendBufferManager keeps chunks of its own for reuse; the madvise
// runs outside it). Ownership: owns the slabs, for the process's lifetime.
#ifndef SERVERCORE_SRC_PAGE_POOL_H_
#define SERVERCORE_SRC_PAGE_POOL_H_

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "servercore/mutex.h"
#include "servercore/thread_annotations.h"

namespace servercore::internal {

class PagePool {
 public:
  // Resident bytes of free blocks kept per block size (at least 4 blocks).
  static constexpr size_t kDirtyReserveBytes = size_t{1} << 20;

  struct Stats {
    uint64_t mapped_bytes = 0;      // slabs mapped, ever (never unmapped)
    uint64_t taken_bytes = 0;       // blocks held by buffers now
    uint64_t released_bytes = 0;    // blocks whose pages went back, ever
    uint64_t free_dirty_bytes = 0;  // free blocks that may still be resident
  };

  static PagePool& Instance();

  // A block of at least `capacity` bytes, page-aligned; null for 0.
  std::byte* Take(size_t capacity);
  // Returns a block taken with the same capacity.
  void Give(std::byte* block, size_t capacity) noexcept;
  Stats GetStats() const;

 private:
  struct FreeList {
    std::vector<std::byte*> blocks;
    // Blocks at positions below this were listed without their pages being
    // released (the list is a stack, so positions are stable).
    size_t dirty_below = 0;
  };

  PagePool() = default;
  ~PagePool() = delete;  // immortal: buffers may outlive main()

  mutable Mutex mu_;
  // Free blocks by slot size (capacity rounded up to whole pages).
  std::unordered_map<size_t, FreeList> free_ SERVERCORE_GUARDED_BY(mu_);
  Stats stats_ SERVERCORE_GUARDED_BY(mu_);
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_PAGE_POOL_H_
