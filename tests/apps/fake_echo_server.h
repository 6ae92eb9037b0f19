// FakeEchoServer: a tiny echo server on plain sockets and one thread, for
// checking that DummyClient notices a server that breaks docs/PROTOCOL.md. It
// answers C_ECHO with S_ECHO and can spoil the third answer to a load packet
// (any echo but DummyClient's 4-byte "ping"): drop it, corrupt one byte,
// swap it with the fourth, or send it under an id no server sends (999).
// Connections are served one after another. With `lag`, the newest reply
// waits for the next request, or for the connection to go quiet (20 ms):
// the last reply of a run comes after the client stopped sending, late
// (still in order, as the contract asks).
//
// Thread safety: Distinct objects: Safe. Shared objects: port() and
// faults() from any thread.
#ifndef SERVERCORE_TESTS_APPS_FAKE_ECHO_SERVER_H_
#define SERVERCORE_TESTS_APPS_FAKE_ECHO_SERVER_H_

#include <atomic>
#include <cstdint>
#include <thread>

namespace servercore::test {

enum class Fault { kNone, kDrop, kCorrupt, kReorder, kUnknownId, kDuplicate };

class FakeEchoServer {
 public:
  explicit FakeEchoServer(Fault fault, bool lag = false);
  ~FakeEchoServer();
  FakeEchoServer(const FakeEchoServer&) = delete;
  FakeEchoServer& operator=(const FakeEchoServer&) = delete;

  // 0 when the listening socket could not be set up.
  uint16_t port() const noexcept { return port_; }
  // How many times the fault was applied.
  int faults() const noexcept { return faults_.load(); }

 private:
  void Run();
  void Serve(int fd);

  const Fault fault_;
  const bool lag_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> faults_{0};
  std::thread thread_;
};

}  // namespace servercore::test

#endif  // SERVERCORE_TESTS_APPS_FAKE_ECHO_SERVER_H_
