// RecvStoragePool: where RecvBuffer storage comes from. Blocks are carved,
// page-aligned, from large anonymous mappings (slabs), with the free list kept
// outside them, so nothing writes to a block until data arrives: the pages of
// an idle connection's receive buffer are never resident. Blocks are reused
// for the next buffer of the same size and never unmapped, so memory stays at
// the peak number of buffers (their pages stay resident once touched).
//
// Under AddressSanitizer blocks come from operator new instead, so overruns
// between neighbouring buffers are still caught.
//
// Thread safety: Take and Give may be called from any thread (one mutex; they
// run once per connection, never per packet).
#ifndef SERVERCORE_SRC_RECV_STORAGE_POOL_H_
#define SERVERCORE_SRC_RECV_STORAGE_POOL_H_

#include <cstddef>
#include <unordered_map>
#include <vector>

#include "servercore/mutex.h"
#include "servercore/thread_annotations.h"

namespace servercore::internal {

class RecvStoragePool {
 public:
  static RecvStoragePool& Instance();

  // A block of at least `capacity` bytes, page-aligned; null for 0.
  std::byte* Take(size_t capacity);
  // Returns a block taken with the same capacity.
  void Give(std::byte* block, size_t capacity) noexcept;

 private:
  RecvStoragePool() = default;
  ~RecvStoragePool() = delete;  // immortal: buffers may outlive main()

  Mutex mu_;
  // Free blocks by slot size (capacity rounded up to whole pages).
  std::unordered_map<size_t, std::vector<std::byte*>> free_
      SERVERCORE_GUARDED_BY(mu_);
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_RECV_STORAGE_POOL_H_
