// Clang thread-safety annotations (-Wthread-safety), empty on other compilers.
// After abseil's thread_annotations.h: let the compiler check who holds which
// lock, instead of a comment that drifts.
#ifndef SERVERCORE_THREAD_ANNOTATIONS_H_
#define SERVERCORE_THREAD_ANNOTATIONS_H_

#if defined(__clang__)
#define SERVERCORE_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define SERVERCORE_THREAD_ANNOTATION(x)
#endif

#define SERVERCORE_CAPABILITY(x) SERVERCORE_THREAD_ANNOTATION(capability(x))
#define SERVERCORE_SCOPED_CAPABILITY \
  SERVERCORE_THREAD_ANNOTATION(scoped_lockable)
#define SERVERCORE_GUARDED_BY(x) SERVERCORE_THREAD_ANNOTATION(guarded_by(x))
#define SERVERCORE_PT_GUARDED_BY(x) \
  SERVERCORE_THREAD_ANNOTATION(pt_guarded_by(x))
#define SERVERCORE_REQUIRES(...) \
  SERVERCORE_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define SERVERCORE_ACQUIRE(...) \
  SERVERCORE_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define SERVERCORE_RELEASE(...) \
  SERVERCORE_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define SERVERCORE_TRY_ACQUIRE(...) \
  SERVERCORE_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define SERVERCORE_ASSERT_CAPABILITY(x) \
  SERVERCORE_THREAD_ANNOTATION(assert_capability(x))
#define SERVERCORE_EXCLUDES(...) \
  SERVERCORE_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define SERVERCORE_NO_THREAD_SAFETY_ANALYSIS \
  SERVERCORE_THREAD_ANNOTATION(no_thread_safety_analysis)

#endif  // SERVERCORE_THREAD_ANNOTATIONS_H_
