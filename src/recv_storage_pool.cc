#include "recv_storage_pool.h"

#include <sys/mman.h>

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

size_t SlotSize(size_t capacity) {
  return (capacity + kPage - 1) / kPage * kPage;
}

}  // namespace

RecvStoragePool& RecvStoragePool::Instance() {
  static RecvStoragePool* const pool = new RecvStoragePool();
  return *pool;
}

std::byte* RecvStoragePool::Take(size_t capacity) {
  if (capacity == 0) return nullptr;
  const size_t slot = SlotSize(capacity);
  if (!kUseSlabs) {
    return static_cast<std::byte*>(
        ::operator new[](slot, std::align_val_t{kPage}));
  }
  MutexLock lock(mu_);
  std::vector<std::byte*>& free = free_[slot];
  if (free.empty()) {
    const size_t blocks = std::max(kMinSlabBlocks, kMinSlabBytes / slot);
    void* slab = ::mmap(nullptr, blocks * slot, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slab == MAP_FAILED) throw std::bad_alloc();
    free.reserve(free.size() + blocks);
    for (size_t i = blocks; i-- > 0;) {
      free.push_back(static_cast<std::byte*>(slab) + i * slot);
    }
  }
  std::byte* block = free.back();
  free.pop_back();
  return block;
}

void RecvStoragePool::Give(std::byte* block, size_t capacity) noexcept {
  if (block == nullptr) return;
  const size_t slot = SlotSize(capacity);
  if (!kUseSlabs) {
    ::operator delete[](block, std::align_val_t{kPage});
    return;
  }
  MutexLock lock(mu_);
  free_[slot].push_back(block);  // capacity reserved when the slab was made
}

}  // namespace servercore::internal
