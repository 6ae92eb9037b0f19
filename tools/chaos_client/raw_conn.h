// RawConn: one attacker's TCP connection to 127.0.0.1, a plain non-blocking
// socket so that the attacker decides every byte boundary, when to stop
// reading and how to close (FIN, or RST with SO_LINGER 0). Never raises
// SIGPIPE (MSG_NOSIGNAL).
//
// Thread safety: Distinct objects: Safe. Shared objects: Unsafe. Owns its
// descriptor; the destructor closes it (FIN).
#ifndef SERVERCORE_TOOLS_CHAOS_CLIENT_RAW_CONN_H_
#define SERVERCORE_TOOLS_CHAOS_CLIENT_RAW_CONN_H_

#include <chrono>
#include <cstdint>
#include <span>

#include "packets.h"

namespace chaos {

class RawConn {
 public:
  enum class State { kOpen, kClosed };  // kClosed: EOF, reset or error

  RawConn() = default;
  ~RawConn() { Close(); }
  RawConn(RawConn&& other) noexcept;
  RawConn& operator=(RawConn&& other) noexcept;
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  // Connects to 127.0.0.1:port within `timeout`; `rcvbuf` > 0 sets
  // SO_RCVBUF first. !ok() on failure.
  static RawConn Connect(uint16_t port, std::chrono::milliseconds timeout,
                         int rcvbuf = 0);
  // Starts a connect and returns at once (the handshake may still run).
  static RawConn StartConnect(uint16_t port);

  bool ok() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }
  void NoDelay();

  // Sends all of `bytes`, waiting for room up to `timeout`; false if the
  // connection failed or the time ran out.
  bool Send(std::span<const uint8_t> bytes,
            std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Reads whatever is there into `reader` without waiting.
  State Drain(ServerReader& reader);
  // Waits up to `timeout` for bytes or a close, then drains.
  State Wait(ServerReader& reader, std::chrono::milliseconds timeout);
  // Waits up to `timeout` for a started connect; false if it failed.
  bool WaitConnected(std::chrono::milliseconds timeout);

  void Close();  // FIN (and RST by the kernel if unread bytes remain)
  void Reset();  // RST: SO_LINGER 0, then close

 private:
  explicit RawConn(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace chaos

#endif  // SERVERCORE_TOOLS_CHAOS_CLIENT_RAW_CONN_H_
