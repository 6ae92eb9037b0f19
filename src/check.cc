#include "servercore/check.h"

#include <cstdio>
#include <cstdlib>

namespace servercore::internal {

void CheckFailed(const char* file, int line, const char* condition,
                 const char* message) noexcept {
  std::fprintf(stderr, "servercore: fatal: %s (%s) at %s:%d\n", message,
               condition, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace servercore::internal
