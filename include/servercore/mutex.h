// Mutex and MutexLock: std::mutex with clang thread-safety annotations, so
// members marked SERVERCORE_GUARDED_BY(mu_) are checked at compile time.
//
// Thread safety: Mutex is a synchronisation primitive (safe to share).
// MutexLock: Distinct objects: Safe. Shared objects: Unsafe.
#ifndef SERVERCORE_MUTEX_H_
#define SERVERCORE_MUTEX_H_

#include <mutex>

#include "servercore/thread_annotations.h"

namespace servercore {

class SERVERCORE_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() SERVERCORE_ACQUIRE() { mu_.lock(); }
  void Unlock() SERVERCORE_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds `mu` for the lifetime of the scope.
class SERVERCORE_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) SERVERCORE_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() SERVERCORE_RELEASE() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace servercore

#endif  // SERVERCORE_MUTEX_H_
