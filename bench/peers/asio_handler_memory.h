// Memory for the Asio peer's asynchronous operations, recycled per worker.
//
// Every async_wait and async_write allocates an operation object sized for
// its handler. Asio's default recycles one block per thread, which does not
// cover a session that has a wait and a write outstanding at once, so one
// of them went to the heap each round (1 allocation per write in the
// runner's table). As in Asio's own custom-allocation example, the handler
// carries an allocator (associated_allocator); here it takes blocks from
// its worker's free lists, one list per 64-byte size class, so steady state
// allocates nothing and an idle session holds only its one wait operation.
//
// Thread safety: a pool belongs to one worker and is used by the thread
// running that worker's io_context only (operations complete and are freed
// where they started). Ownership: blocks are returned to the pool, which
// frees them when it is destroyed (after the io_context it serves).
#ifndef SERVERCORE_BENCH_PEERS_ASIO_HANDLER_MEMORY_H_
#define SERVERCORE_BENCH_PEERS_ASIO_HANDLER_MEMORY_H_

#include <array>
#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace asio_peer {

class OpPool {
 public:
  OpPool() = default;
  OpPool(const OpPool&) = delete;
  OpPool& operator=(const OpPool&) = delete;
  ~OpPool() {
    for (std::vector<void*>& list : free_) {
      for (void* block : list) ::operator delete(block);
    }
  }

  void* Allocate(size_t size) {
    const size_t index = Class(size);
    if (index >= kClasses) return ::operator new(size);
    std::vector<void*>& list = free_[index];
    if (list.empty()) return ::operator new((index + 1) * kGranule);
    void* block = list.back();
    list.pop_back();
    return block;
  }
  void Deallocate(void* block, size_t size) {
    const size_t index = Class(size);
    if (index >= kClasses) {
      ::operator delete(block);
      return;
    }
    free_[index].push_back(block);
  }

 private:
  static constexpr size_t kGranule = 64;
  static constexpr size_t kClasses = 16;  // up to 1 KiB
  static size_t Class(size_t size) {
    return (size + kGranule - 1) / kGranule - 1;
  }

  std::array<std::vector<void*>, kClasses> free_;
};

// The allocator Asio finds on a handler wrapped by WithPool.
template <typename T>
class OpAllocator {
 public:
  using value_type = T;
  explicit OpAllocator(OpPool& pool) noexcept : pool_(&pool) {}
  template <typename U>
  OpAllocator(const OpAllocator<U>& other) noexcept : pool_(other.pool()) {}

  T* allocate(size_t n) {
    return static_cast<T*>(pool_->Allocate(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) { pool_->Deallocate(p, n * sizeof(T)); }
  OpPool* pool() const noexcept { return pool_; }

  template <typename U>
  bool operator==(const OpAllocator<U>& other) const noexcept {
    return pool_ == other.pool();
  }
  template <typename U>
  bool operator!=(const OpAllocator<U>& other) const noexcept {
    return pool_ != other.pool();
  }

 private:
  OpPool* pool_;
};

// A completion handler whose operation memory comes from `pool`.
template <typename Handler>
class WithPool {
 public:
  using allocator_type = OpAllocator<Handler>;

  WithPool(OpPool& pool, Handler handler)
      : pool_(&pool), handler_(std::move(handler)) {}
  allocator_type get_allocator() const noexcept {
    return allocator_type(*pool_);
  }
  template <typename... Args>
  void operator()(Args&&... args) {
    handler_(std::forward<Args>(args)...);
  }

 private:
  OpPool* pool_;
  Handler handler_;
};

}  // namespace asio_peer

#endif  // SERVERCORE_BENCH_PEERS_ASIO_HANDLER_MEMORY_H_
