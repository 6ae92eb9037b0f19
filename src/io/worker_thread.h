// The worker-thread role, for the compiler and at run time.
//
// State that only a session's worker may touch (the write in progress, the
// worker's session lists, a backend's operations) is marked
// SERVERCORE_GUARDED_BY(kWorkerThread), and the functions that touch it
// SERVERCORE_ON_WORKER, so clang's -Wthread-safety rejects a call from code
// that has not established it runs on a worker. Code establishes it with
// IoWorker::AssertInWorkerThread(), which in debug and sanitizer builds also
// checks, at run time, that the calling thread is that very worker (muduo's
// assertInLoopThread). The capability is one role for all workers: the
// compiler checks "on a worker thread", the run-time check "on this one".
#ifndef SERVERCORE_SRC_IO_WORKER_THREAD_H_
#define SERVERCORE_SRC_IO_WORKER_THREAD_H_

#include "servercore/check.h"
#include "servercore/thread_annotations.h"

namespace servercore::internal {

class SERVERCORE_CAPABILITY("worker thread") WorkerThreadRole {};

// The role itself: never read or written, only named in annotations.
inline WorkerThreadRole kWorkerThread;

// For unit tests that drive worker-only code (say, a Listener against a fake
// backend) from the test's own thread, which plays the worker while this
// lives.
class SERVERCORE_SCOPED_CAPABILITY ActAsWorker {
 public:
  ActAsWorker() SERVERCORE_ACQUIRE(kWorkerThread) {}
  ~ActAsWorker() SERVERCORE_RELEASE() {}
  ActAsWorker(const ActAsWorker&) = delete;
  ActAsWorker& operator=(const ActAsWorker&) = delete;
};

}  // namespace servercore::internal

#define SERVERCORE_ON_WORKER \
  SERVERCORE_REQUIRES(::servercore::internal::kWorkerThread)

// Checks that run in debug and sanitizer builds only (SERVERCORE_DEBUG_CHECKS
// is set by the build for those), for conditions verified on hot paths.
#if defined(SERVERCORE_DEBUG_CHECKS)
#define SERVERCORE_DCHECK(condition, ...) \
  SERVERCORE_CHECK(condition, __VA_ARGS__)
#else
#define SERVERCORE_DCHECK(condition, ...) \
  do {                                    \
  } while (false && (condition))
#endif

#endif  // SERVERCORE_SRC_IO_WORKER_THREAD_H_
