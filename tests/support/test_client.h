// A blocking loopback client for integration tests: plain sockets, no
// ServerCore code, so it checks the server from the outside, as
// docs/PROTOCOL.md's outside clients do. Every call has a deadline; nothing
// waits forever.
#ifndef SERVERCORE_TESTS_SUPPORT_TEST_CLIENT_H_
#define SERVERCORE_TESTS_SUPPORT_TEST_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace servercore::test {

struct Packet {
  uint16_t id = 0;
  std::vector<std::byte> payload;
  bool operator==(const Packet&) const = default;
};

// [size][id][payload], little-endian.
std::vector<std::byte> EncodePacket(uint16_t id,
                                    std::span<const std::byte> payload);

// A loopback port nothing listens on (just bound and released), for a
// server a test starts itself or a connect meant to be refused; 0 when none
// could be had. Taken below the kernel's ephemeral range when it can be:
// there no port-0 listener and no outgoing connection of a test running
// beside it can take the port before the test binds it (one started
// nats-server half a second later and found its port taken).
uint16_t UnusedLoopbackPort();

class TestClient {
 public:
  TestClient() = default;
  ~TestClient();
  TestClient(TestClient&& other) noexcept;
  TestClient& operator=(TestClient&& other) noexcept;

  // Connects to 127.0.0.1:port; false on failure.
  [[nodiscard]] bool Connect(uint16_t port);
  // Connect in two steps, for tests that must not create descriptors later
  // (e.g. under a lowered RLIMIT_NOFILE): OpenSocket makes the socket now,
  // ConnectOpened connects it without opening anything new.
  [[nodiscard]] bool OpenSocket();
  [[nodiscard]] bool ConnectOpened(uint16_t port);
  int fd() const noexcept { return fd_; }

  // Sends every byte (blocking, with the deadline below).
  [[nodiscard]] bool SendAll(std::span<const std::byte> bytes);
  [[nodiscard]] bool SendPacket(uint16_t id,
                                std::span<const std::byte> payload);
  // Reads exactly `n` bytes; nullopt on EOF, error or timeout.
  std::optional<std::vector<std::byte>> ReadExactly(
      size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  std::optional<Packet> ReadPacket(
      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Reads exactly `n` bytes at most `piece` per recv, sleeping `pause` after
  // each: a slow reader that keeps the server's socket full.
  std::optional<std::vector<std::byte>> ReadSlowly(
      size_t n, size_t piece, std::chrono::microseconds pause,
      std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // True when no byte (and no EOF) arrives within `wait`.
  bool IsQuiet(std::chrono::milliseconds wait);
  // True when the server closed the connection (EOF or reset) within the
  // timeout, discarding any data before it.
  bool WaitForClose(
      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Sets SO_RCVBUF (before Connect to take effect fully).
  void SetReceiveBuffer(int bytes);
  // Closes with RST instead of FIN (SO_LINGER 0).
  void Reset();
  void Close();

 private:
  int fd_ = -1;
  int rcvbuf_ = 0;
};

// Reads packets from a TestClient's socket many at a time: each recv takes
// whatever has arrived (up to 64 KiB) and packets are cut from that, where
// TestClient::ReadPacket makes two polls and two recvs for every packet.
// For tests that read long streams (a hundred thousand replies). It may
// hold bytes it has taken from the socket, so once a test reads through a
// PacketReader it reads that client through it only.
class PacketReader {
 public:
  explicit PacketReader(TestClient& client) : client_(client) {}

  // The next packet; nullopt on EOF, error, timeout or a size below 4.
  std::optional<Packet> Next(
      std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  TestClient& client_;
  std::vector<std::byte> buffer_;
  size_t start_ = 0;  // buffer_[start_, end) is read and not yet handed out
};

}  // namespace servercore::test

#endif  // SERVERCORE_TESTS_SUPPORT_TEST_CLIENT_H_
