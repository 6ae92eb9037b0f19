// SpinLock and SpinLockGuard: a test-and-test-and-set lock for critical
// sections of a few dozen instructions that are almost never contended, with
// the same clang thread-safety annotations as Mutex.
//
// A session's send queue is locked once per Send; with std::mutex that was a
// library call and two atomic read-modify-writes each time, a visible share of
// a broadcast's cost (one push per member). Here the uncontended case is one
// exchange to lock and one plain release store to unlock. A waiter spins on
// a relaxed load (no cache-line ping-pong) with the CPU's pause hint, and
// after a while yields its time slice, so a holder that was preempted gets
// to run rather than being spun against.
//
// Use only where the holder never blocks or waits while holding it.
//
// Thread safety: a synchronisation primitive (safe to share).
#ifndef SERVERCORE_SRC_SPIN_LOCK_H_
#define SERVERCORE_SRC_SPIN_LOCK_H_

#include <atomic>
#include <thread>

#include "servercore/thread_annotations.h"

namespace servercore::internal {

class SERVERCORE_CAPABILITY("mutex") SpinLock {
 public:
  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void Lock() SERVERCORE_ACQUIRE() {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < kSpinsBeforeYield) {
          Pause();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  void Unlock() SERVERCORE_RELEASE() {
    locked_.store(false, std::memory_order_release);
  }

 private:
  static constexpr int kSpinsBeforeYield = 64;

  static void Pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  std::atomic<bool> locked_{false};
};

// Holds `lock` for the lifetime of the scope.
class SERVERCORE_SCOPED_CAPABILITY SpinLockGuard {
 public:
  explicit SpinLockGuard(SpinLock& lock) SERVERCORE_ACQUIRE(lock)
      : lock_(lock) {
    lock_.Lock();
  }
  ~SpinLockGuard() SERVERCORE_RELEASE() { lock_.Unlock(); }
  SpinLockGuard(const SpinLockGuard&) = delete;
  SpinLockGuard& operator=(const SpinLockGuard&) = delete;

 private:
  SpinLock& lock_;
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_SPIN_LOCK_H_
