// The cluster suite's fixture (docs/PROTOCOL.md "Cluster", docs/CLUSTER.md):
// every test starts its own nats-server on a free loopback port and three
// GameServer nodes against it (--cluster, --node-id 1..3), and stops them at
// the end, expecting each node that is still running to exit 0 on SIGTERM.
//
// Thread safety: one test thread.
#ifndef SERVERCORE_TESTS_CLUSTER_CLUSTER_FIXTURE_H_
#define SERVERCORE_TESTS_CLUSTER_CLUSTER_FIXTURE_H_

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/apps/app_test_util.h"
#include "tests/apps/child_process.h"
#include "tests/support/test_client.h"

namespace servercore::test {

// nats-server on 127.0.0.1: a free port (or the given one, to restart it
// where it was), its monitoring port too.
class NatsServer {
 public:
  [[nodiscard]] bool Start(uint16_t port = 0);
  void Kill();  // SIGKILL, reaped
  uint16_t port() const noexcept { return port_; }
  std::string url() const {
    return "nats://127.0.0.1:" + std::to_string(port_);
  }
  // GET `path` from the monitoring port; the body, or "" on failure.
  std::string Monitor(const std::string& path) const;
  std::string Output() const { return process_->Output(); }

 private:
  std::unique_ptr<ChildProcess> process_ = std::make_unique<ChildProcess>();
  uint16_t port_ = 0;
  uint16_t http_port_ = 0;
};

class ClusterTest : public ::testing::Test {
 protected:
  static constexpr int kNodes = 3;

  void SetUp() override;
  void TearDown() override;

  // Starts node `i` (0-based, node id i + 1) against `url`, with
  // NodeFlags().
  void StartNode(int i, const std::string& url);
  // More GameServer flags for every node (later flags win). By default the
  // expiry of a silent node, 3 s, times the sanitizers' slowdown: a
  // sanitized node stalled on a loaded machine must not be taken for dead.
  virtual std::vector<std::string> NodeFlags() const {
    return {"--node-expiry", std::to_string(3 * kSlowdown)};
  }
  uint16_t port(int i) const { return node(i).port(); }
  GameServer& node(int i) { return *nodes_[static_cast<size_t>(i)]; }
  const GameServer& node(int i) const {
    return *nodes_[static_cast<size_t>(i)];
  }
  // Starts node `i` again, as a new process (the old one must have exited).
  void RestartNode(int i, const std::string& url);
  // A client connected (echo round trip) to node i.
  TestClient Connect(int i);

  // Joins `room` again and again (JoinSkippingSnapshots) until
  // its count is `count`; the time it took, or nullopt after `timeout`.
  std::optional<std::chrono::milliseconds> JoinUntilCount(
      TestClient& client, uint32_t room, uint32_t count,
      std::chrono::milliseconds timeout);
  // `a` and `b` (on different nodes) join `room`, then join again until
  // both count the two of them there.
  void JoinTogether(TestClient& a, TestClient& b, uint32_t room);
  // Connects a to node 1 and b to node 2, joins them together in `room`,
  // and both enter the world until a sees b there; *b_id is b's session
  // id. (With the world tests, in cluster_world_test.cc.)
  void MeetInRoom(uint32_t room, TestClient& a, TestClient& b, uint64_t* b_id);
  // How many of the broker's connections subscribe to room R's subject.
  int RoomSubscribers(uint32_t room) const;
  // The last value of "NAME N" in node i's output (its stats lines).
  std::optional<uint64_t> LastStat(int i, const std::string& name) const;
  // Kills nats-server, then waits (up to 5 s) until nodes `a` and `b` say
  // they lost it (DISCONNECTED in their stats lines).
  void KillBroker(int a, int b);
  // Starts nats-server again where it was, then waits (up to 10 s) until
  // nodes `a` and `b` count a reconnect.
  void RestartBroker(int a, int b);

  NatsServer nats_;
  uint16_t killed_broker_port_ = 0;  // KillBroker's, for RestartBroker
  std::array<std::unique_ptr<GameServer>, kNodes> nodes_{
      std::make_unique<GameServer>(), std::make_unique<GameServer>(),
      std::make_unique<GameServer>()};
};

// C_JOIN `room`, then reads its S_JOIN, skipping snapshots (a world
// member's), and chats when `skip_chats`, but nothing else; the member
// count it reports.
std::optional<uint32_t> JoinSkippingSnapshots(TestClient& client, uint32_t room,
                                              bool skip_chats = false);

// Publishes each (subject, bytes), in order, on a connection of its own to
// the broker on 127.0.0.1:`port`, as a broken or hostile peer could: raw
// NATS protocol, no client library. True once the broker has them all (its
// PONG to a PING after them); delivery to the nodes follows.
bool PublishRaw(
    uint16_t port,
    const std::vector<std::pair<std::string, std::string>>& messages);

// Polls `done` every 50 ms until it holds (true) or `timeout` passes.
bool WaitFor(const std::function<bool()>& done,
             std::chrono::milliseconds timeout);

// Reads packets until one with `id` arrives (others are skipped) and
// `accept` takes it; nullopt at the deadline.
std::optional<Packet> ReadUntil(
    TestClient& client, uint16_t id, std::chrono::milliseconds timeout,
    const std::function<bool(const Packet&)>& accept = nullptr);

}  // namespace servercore::test

#endif  // SERVERCORE_TESTS_CLUSTER_CLUSTER_FIXTURE_H_
