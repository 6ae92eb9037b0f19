// SERVERCORE_CHECK: the programming-error tier of our error handling. A broken
// precondition (a misuse of the API, not a runtime condition such as a peer
// hanging up) prints where and why, then aborts. Always on, release included:
// the checks guard memory safety and cost a predictable branch.
//
// The message is a printf format, so a check can say which values broke it:
//
//   SERVERCORE_CHECK(n <= room, "%zu bytes do not fit in %zu", n, room);
//
// The arguments are evaluated only when the check fails.
#ifndef SERVERCORE_CHECK_H_
#define SERVERCORE_CHECK_H_

namespace servercore::internal {

[[noreturn]] void CheckFailed(const char* file, int line, const char* condition,
                              const char* format, ...) noexcept
    __attribute__((format(printf, 4, 5)));

}  // namespace servercore::internal

#define SERVERCORE_CHECK(condition, format, ...)                              \
  do {                                                                        \
    if (__builtin_expect(!(condition), 0)) {                                  \
      ::servercore::internal::CheckFailed(__FILE__, __LINE__, #condition,     \
                                          format __VA_OPT__(, ) __VA_ARGS__); \
    }                                                                         \
  } while (false)

#endif  // SERVERCORE_CHECK_H_
