#include "servercore/check.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace servercore::internal {

void CheckFailed(const char* file, int line, const char* condition,
                 const char* format, ...) noexcept {
  std::fputs("servercore: fatal: ", stderr);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fprintf(stderr, " (%s) at %s:%d\n", condition, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace servercore::internal
