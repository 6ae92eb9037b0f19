// SERVERCORE_CHECK: the programming-error tier of our error handling. A broken
// precondition (a misuse of the API, not a runtime condition such as a peer
// hanging up) prints where and why, then aborts. Always on, release included:
// the checks guard memory safety and cost a predictable branch.
#ifndef SERVERCORE_CHECK_H_
#define SERVERCORE_CHECK_H_

namespace servercore::internal {

[[noreturn]] void CheckFailed(const char* file, int line, const char* condition,
                              const char* message) noexcept;

}  // namespace servercore::internal

#define SERVERCORE_CHECK(condition, message)                              \
  do {                                                                    \
    if (__builtin_expect(!(condition), 0)) {                              \
      ::servercore::internal::CheckFailed(__FILE__, __LINE__, #condition, \
                                          message);                       \
    }                                                                     \
  } while (false)

#endif  // SERVERCORE_CHECK_H_
