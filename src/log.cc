#include "servercore/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace servercore {

void Log(LogLevel level, const char* format, ...) {
  va_list args;
  va_start(args, format);
  VLog(level, format, args);
  va_end(args);
}

void VLog(LogLevel level, const char* format, va_list args) {
  char line[1024];
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  const char* tag = level == LogLevel::kInfo      ? "I"
                    : level == LogLevel::kWarning ? "W"
                                                  : "E";
  int n = std::snprintf(line, sizeof(line), "%s %02d:%02d:%02d.%03ld ", tag,
                        utc.tm_hour, utc.tm_min, utc.tm_sec,
                        now.tv_nsec / 1'000'000);
  n += std::vsnprintf(line + n, sizeof(line) - static_cast<size_t>(n) - 1,
                      format, args);
  if (n > static_cast<int>(sizeof(line)) - 2) n = sizeof(line) - 2;
  line[n++] = '\n';
  [[maybe_unused]] ssize_t r =
      ::write(STDERR_FILENO, line, static_cast<size_t>(n));
}

}  // namespace servercore
