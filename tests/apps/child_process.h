// ChildProcess: runs a program (GameServer, DummyClient) for a test, with its
// stdout and stderr captured through one pipe by a reader thread, so the child
// never blocks on a full pipe and the test can wait for a line with a
// deadline. The destructor kills (SIGKILL) and reaps a child still running
// and joins the reader, so no test leaves a process behind, failed or not.
//
// Thread safety: Distinct objects: Safe. Shared objects: Output() and
// WaitForOutput() may be called from any thread; the rest from one thread.
#ifndef SERVERCORE_TESTS_APPS_CHILD_PROCESS_H_
#define SERVERCORE_TESTS_APPS_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace servercore::test {

// Sanitizers slow the programs down several times: deadlines scale with this.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr int kSlowdown = 3;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr int kSlowdown = 3;
#else
inline constexpr int kSlowdown = 1;
#endif
#else
inline constexpr int kSlowdown = 1;
#endif

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts `path` with `args` (argv[1..]); false (with why in Output()) on
  // failure.
  [[nodiscard]] bool Start(const std::string& path,
                           const std::vector<std::string>& args);

  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0 && !status_.has_value(); }

  // Everything the child wrote so far (stdout and stderr interleaved).
  std::string Output() const;
  // Waits until Output() contains `text`; false on timeout or child exit
  // without it.
  bool WaitForOutput(const std::string& text,
                     std::chrono::milliseconds timeout);
  // Waits until the output is complete (the child and anything it started
  // closed stdout and stderr, as on exit); false on timeout. After Wait(),
  // the last lines may still be in the pipe until this returns.
  bool WaitForOutputEnd(std::chrono::milliseconds timeout);

  void Signal(int sig);
  // Waits for the child to exit; its raw waitpid status, or nullopt on
  // timeout (the child keeps running).
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // Describes a waitpid status: "exit 0", "signal 9".
  static std::string DescribeStatus(int status);

  // CPU time (user and system, all threads) the running child has used so
  // far, from /proc/PID/stat; nullopt if it cannot be read. Unlike a wall
  // clock, it barely grows when other tests crowd the machine.
  std::optional<std::chrono::milliseconds> CpuTime() const;

 private:
  void ReadLoop(int fd);

  pid_t pid_ = -1;
  std::optional<int> status_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string output_;  // guarded by mu_
  bool eof_ = false;    // guarded by mu_
};

}  // namespace servercore::test

#endif  // SERVERCORE_TESTS_APPS_CHILD_PROCESS_H_
