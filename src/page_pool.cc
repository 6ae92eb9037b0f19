#include "page_pool.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#include <algorithm>
#include <new>

namespace servercore::internal {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUseSlabs = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kUseSlabs = false;
#else
constexpr bool kUseSlabs = true;
#endif
#else
constexpr bool kUseSlabs = true;
#endif

constexpr size_t kPage = 4096;
// A slab holds at least 16 blocks and at least 1 MiB.
constexpr size_t kMinSlabBlocks = 16;
constexpr size_t kMinSlabBytes = size_t{1} << 20;
constexpr size_t kMinDirtyBlocks = 4;

size_t SlotSize(size_t capacity) {
  return (capacity + kPage - 1) / kPage * kPage;
}

// Free blocks of size `slot` that may stay resident.
size_t DirtyReserve(size_t slot) {
  return std::max(kMinDirtyBlocks, PagePool::kDirtyReserveBytes / slot);
}

}  // namespace

PagePool& PagePool::Instance() {
  static PagePool* const pool = new PagePool();
  return *pool;
}

std::byte* PagePool::Take(size_t capacity) {
  if (capacity == 0) return nullptr;
  const size_t slot = SlotSize(capacity);
  if (!kUseSlabs) {
    return static_cast<std::byte*>(
        ::operator new[](slot, std::align_val_t{kPage}));
  }
  MutexLock lock(mu_);
  FreeList& free = free_[slot];
  if (free.blocks.empty()) {
    const size_t blocks = std::max(kMinSlabBlocks, kMinSlabBytes / slot);
    void* slab = ::mmap(nullptr, blocks * slot, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slab == MAP_FAILED) throw std::bad_alloc();
    // Best effort (Linux 5.17+ with CONFIG_ANON_VMA_NAME): names the slab in
    // /proc/PID/smaps, so a reader can tell it from malloc's arenas.
    ::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, slab, blocks * slot,
            "servercore-pages");
    stats_.mapped_bytes += blocks * slot;
    free.blocks.reserve(free.blocks.size() + blocks);
    for (size_t i = blocks; i-- > 0;) {
      free.blocks.push_back(static_cast<std::byte*>(slab) + i * slot);
    }
  }
  std::byte* block = free.blocks.back();
  free.blocks.pop_back();
  free.dirty_below = std::min(free.dirty_below, free.blocks.size());
  stats_.taken_bytes += slot;
  return block;
}

void PagePool::Give(std::byte* block, size_t capacity) noexcept {
  if (block == nullptr) return;
  const size_t slot = SlotSize(capacity);
  if (!kUseSlabs) {
    ::operator delete[](block, std::align_val_t{kPage});
    return;
  }
  {
    MutexLock lock(mu_);
    FreeList& free = free_[slot];
    stats_.taken_bytes -= slot;
    if (free.blocks.size() < DirtyReserve(slot)) {
      // Kept resident, for the next connection. Capacity was reserved when
      // the slab was made: never allocates.
      free.blocks.push_back(block);
      free.dirty_below = free.blocks.size();
      return;
    }
  }
  // Past the reserve: the pages go back first (outside the lock; nobody can
  // take the block before it is listed), then the block is listed clean.
  ::madvise(block, slot, MADV_DONTNEED);
  MutexLock lock(mu_);
  free_[slot].blocks.push_back(block);
  stats_.released_bytes += slot;
}

PagePool::Stats PagePool::GetStats() const {
  MutexLock lock(mu_);
  Stats stats = stats_;
  for (const auto& [slot, free] : free_) {
    stats.free_dirty_bytes += free.dirty_below * slot;
  }
  return stats;
}

}  // namespace servercore::internal
