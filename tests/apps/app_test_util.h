// Helpers for the tests that run the real GameServer and DummyClient: start a
// GameServer on a free loopback port and stop it with a signal, byte and
// packet builders, and a small JSON syntax check.
#ifndef SERVERCORE_TESTS_APPS_APP_TEST_UTIL_H_
#define SERVERCORE_TESTS_APPS_APP_TEST_UTIL_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tests/apps/child_process.h"
#include "tests/support/test_client.h"

namespace servercore::test {

inline constexpr uint16_t kCEcho = 1;
inline constexpr uint16_t kSEcho = 2;
inline constexpr uint16_t kCJoin = 3;
inline constexpr uint16_t kSJoin = 4;
inline constexpr uint16_t kCChat = 5;
inline constexpr uint16_t kSChat = 6;
// Typed packets (docs/PROTOCOL.md "Typed packets"): the payload is one
// protobuf message, encoded and decoded by hand here (ProtoVarint and
// friends below) to keep the outside view.
inline constexpr uint16_t kCPing = 1000;
inline constexpr uint16_t kSPong = 1001;
inline constexpr uint16_t kCMove = 1002;
inline constexpr uint16_t kSSnapshot = 1003;
inline constexpr uint16_t kSBye = 1005;

// Deadlines, scaled for sanitizer builds.
inline std::chrono::milliseconds Seconds(int s) {
  return std::chrono::milliseconds(1000 * s * kSlowdown);
}

// DummyClient's --late-grace-ms for move runs that must pass: its default
// (500 ms) is not scaled, and a sanitized GameServer on a loaded machine may
// show a move back later than that without breaking any rule.
inline std::string LateGraceMs() { return std::to_string(1000 * kSlowdown); }

// DummyClient's --drain-ms for runs that must fail because packets never
// come: its default 5 s wait for them would only make the test slower.
inline std::string ShortDrainMs() { return std::to_string(1000 * kSlowdown); }

// A GameServer on 127.0.0.1, port 0, started by Start() and stopped (SIGKILL
// and reaped) by the destructor if the test did not Stop() it.
class GameServer {
 public:
  // Starts GameServer with --host 127.0.0.1 --port 0 --stats-interval 0
  // plus `extra` (later flags win), and waits for its "listening on" line.
  [[nodiscard]] bool Start(const std::vector<std::string>& extra = {});
  uint16_t port() const noexcept { return port_; }
  ChildProcess& process() noexcept { return process_; }
  std::string Output() const { return process_.Output(); }

  // Sends `sig` and waits for the exit; the waitpid status or nullopt.
  std::optional<int> Stop(int sig, std::chrono::milliseconds timeout);

 private:
  ChildProcess process_;
  uint16_t port_ = 0;
};

// A file name for the running test, under gtest's temporary directory,
// ending in `name`; and a whole file's contents ("" if it cannot be read).
std::string TempPath(const std::string& name);
std::string ReadFile(const std::string& path);

// The numbers a program's output gives after `label`, in order: wherever
// `label` starts a word (at the start of `text`, or after anything but a
// letter, digit, '_' or '-') and is followed by spaces and digits.
//   NumbersAfter("lost 0  out-of-order 2  lost 5", "lost") == {0, 5}
//   NumbersAfter(json, "\"packets_sent\":")   // "packets_sent": 17
// Plain string search instead of <regex>, which took 5 to 9 s to compile
// in each test file that used it.
std::vector<uint64_t> NumbersAfter(std::string_view text,
                                   std::string_view label);
// Whether any of `numbers` is above `bound`.
bool AnyAbove(const std::vector<uint64_t>& numbers, uint64_t bound);
// The line of `text` that starts with `prefix` (without its newline); ""
// if none does.
std::string_view LineStartingWith(std::string_view text,
                                  std::string_view prefix);

std::vector<std::byte> Bytes(std::string_view text);
std::string Text(std::span<const std::byte> bytes);
std::vector<std::byte> U32(uint32_t value);
// A header with any size and id (no payload): for bad input.
std::vector<std::byte> RawHeader(uint16_t size, uint16_t id);
void Append(std::vector<std::byte>& out, std::span<const std::byte> more);
uint32_t ReadU32(std::span<const std::byte> p, size_t offset);
uint64_t ReadU64(std::span<const std::byte> p, size_t offset);

// Protobuf wire format, by hand: one field each, appended to a message.
// Varint field: tag (field << 3 | 0), then the value in base-128 groups.
std::vector<std::byte> ProtoVarint(uint32_t field, uint64_t value);
// float field: tag (field << 3 | 5), then 4 bytes little-endian.
std::vector<std::byte> ProtoFloat(uint32_t field, float value);
// A message of varint fields only: field number -> value (the last wins, as
// in protobuf); nullopt if it holds anything else or is cut short.
std::optional<std::map<uint32_t, uint64_t>> ParseVarintFields(
    std::span<const std::byte> message);

// S_SNAPSHOT, decoded by hand (docs/PROTOCOL.md "Typed packets"): fields the
// contract does not name are skipped, as protobuf does.
struct SnapshotEntity {
  uint64_t session_id = 0;
  float x = 0;
  float y = 0;
  uint32_t last_seq = 0;
  bool gone = false;
};
struct Snapshot {
  uint32_t room = 0;
  uint64_t tick = 0;
  bool full = false;
  std::vector<SnapshotEntity> entities;
  // The entity of `session_id`, or null.
  const SnapshotEntity* Find(uint64_t session_id) const;
};
std::optional<Snapshot> ParseSnapshot(std::span<const std::byte> payload);
// A C_MOVE payload.
std::vector<std::byte> MovePayload(float x, float y, uint32_t seq);

// A listening TCP socket on 127.0.0.1, port 0: its fd (-1 on failure), and
// the port the kernel picked in *port. For the fake servers.
int ListenOnLoopback(uint16_t* port);

// Connects and makes one echo round trip, so the server has the session (in
// room 0) when this returns.
[[nodiscard]] bool ConnectReady(TestClient& client, uint16_t port);
// C_JOIN `room`, then reads the S_JOIN; the member count it reports.
std::optional<uint32_t> Join(TestClient& client, uint32_t room);
// C_CHAT of `message`, then reads the sender's own S_CHAT; the session id it
// carries (the client must be the only sender in its room meanwhile).
std::optional<uint64_t> ChatForId(TestClient& client,
                                  std::span<const std::byte> message);

// True when `text` is one syntactically valid JSON value.
bool IsValidJson(std::string_view text);

}  // namespace servercore::test

#endif  // SERVERCORE_TESTS_APPS_APP_TEST_UTIL_H_
