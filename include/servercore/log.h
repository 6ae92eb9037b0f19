// Minimal logging: one line per call to stderr with a UTC timestamp and a
// level, written with a single write(2) so lines from threads never mix.
#ifndef SERVERCORE_LOG_H_
#define SERVERCORE_LOG_H_

#include <cstdarg>

namespace servercore {

enum class LogLevel { kInfo, kWarning, kError };

void Log(LogLevel level, const char* format, ...)
    __attribute__((format(printf, 2, 3)));
// The same, with the arguments as a va_list.
void VLog(LogLevel level, const char* format, va_list args)
    __attribute__((format(printf, 2, 0)));

#define SERVERCORE_LOG_INFO(...) \
  ::servercore::Log(::servercore::LogLevel::kInfo, __VA_ARGS__)
#define SERVERCORE_LOG_WARNING(...) \
  ::servercore::Log(::servercore::LogLevel::kWarning, __VA_ARGS__)
#define SERVERCORE_LOG_ERROR(...) \
  ::servercore::Log(::servercore::LogLevel::kError, __VA_ARGS__)

}  // namespace servercore

#endif  // SERVERCORE_LOG_H_
