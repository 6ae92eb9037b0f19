// docs/PROTOCOL.md "Cluster", chat and membership: a C_CHAT reaches every
// member of the room on every node exactly once and in sender order; S_JOIN
// counts the whole cluster within a second; a node subscribes to a room only
// while it has members there; broker loss drops (and counts) cross-node
// traffic without duplicating or reordering it, and play resumes; a node
// starts before NATS does, or while it does not answer.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/apps/app_fixture.h"
#include "tests/cluster/cluster_fixture.h"

namespace servercore::test {
namespace {

using std::chrono::milliseconds;

// "K:J" from client K, its J-th chat.
std::vector<std::byte> ChatText(int sender, int seq) {
  return Bytes(std::to_string(sender) + ":" + std::to_string(seq));
}

struct Chat {
  uint64_t sender_id = 0;
  int sender = -1;
  int seq = -1;
};

std::optional<Chat> ReadChat(TestClient& client, milliseconds timeout) {
  auto packet = ReadUntil(client, kSChat, timeout);
  if (!packet || packet->payload.size() < 9) return std::nullopt;
  const std::string text = Text(std::span(packet->payload).subspan(8));
  const size_t colon = text.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return Chat{.sender_id = ReadU64(packet->payload, 0),
              .sender = std::stoi(text.substr(0, colon)),
              .seq = std::stoi(text.substr(colon + 1))};
}

TEST_F(ClusterTest, ChatReachesEveryNodeOnceInSenderOrder) {
  constexpr uint32_t kRoom = 7;
  constexpr int kPerNode = 2;
  constexpr int kClients = kNodes * kPerNode;
  constexpr int kChats = 100;
  std::vector<TestClient> clients;
  for (int k = 0; k < kClients; ++k) clients.push_back(Connect(k / kPerNode));
  for (TestClient& c : clients) ASSERT_TRUE(Join(c, kRoom).has_value());
  // Every node knows every other's members: their subscriptions went first.
  for (TestClient& c : clients) {
    ASSERT_TRUE(JoinUntilCount(c, kRoom, kClients, Seconds(10)).has_value());
  }
  for (int j = 0; j < kChats; ++j) {
    for (int k = 0; k < kClients; ++k) {
      ASSERT_TRUE(
          clients[static_cast<size_t>(k)].SendPacket(kCChat, ChatText(k, j)));
    }
  }
  for (int r = 0; r < kClients; ++r) {
    std::map<int, int> next;
    std::map<int, uint64_t> ids;
    for (int n = 0; n < kClients * kChats; ++n) {
      auto chat = ReadChat(clients[static_cast<size_t>(r)], Seconds(10));
      ASSERT_TRUE(chat.has_value()) << "receiver " << r << " after " << n;
      ASSERT_GE(chat->sender, 0);
      ASSERT_LT(chat->sender, kClients);
      // Exactly once, in the order sent.
      ASSERT_EQ(chat->seq, next[chat->sender])
          << "receiver " << r << " from sender " << chat->sender;
      ++next[chat->sender];
      // The id names the sender's node: (node_id << 48) | n.
      EXPECT_EQ(chat->sender_id >> 48,
                static_cast<uint64_t>(chat->sender / kPerNode + 1));
      auto [it, fresh] = ids.emplace(chat->sender, chat->sender_id);
      EXPECT_EQ(it->second, chat->sender_id);
    }
    ExpectNothingPending(clients[static_cast<size_t>(r)], "after every chat");
  }
}

TEST_F(ClusterTest, JoinCountsConvergeWithinOneSecond) {
  constexpr uint32_t kRoom = 11;
  const milliseconds kOneSecond(1000 * kSlowdown);
  std::vector<TestClient> first, second;
  for (int k = 0; k < 3; ++k) first.push_back(Connect(0));
  for (int k = 0; k < 2; ++k) second.push_back(Connect(1));
  TestClient watcher = Connect(2);
  ASSERT_TRUE(Join(watcher, kRoom).has_value());
  for (TestClient& c : first) ASSERT_TRUE(Join(c, kRoom).has_value());
  for (TestClient& c : second) ASSERT_TRUE(Join(c, kRoom).has_value());
  auto took = JoinUntilCount(watcher, kRoom, 6, kOneSecond);
  ASSERT_TRUE(took.has_value()) << "5 joins elsewhere not counted in 1 s";
  // A leave on node 2, then a disconnect on node 1.
  ASSERT_TRUE(Join(second[0], kRoom + 1).has_value());
  took = JoinUntilCount(watcher, kRoom, 5, kOneSecond);
  ASSERT_TRUE(took.has_value()) << "a leave not counted in 1 s";
  first[0].Close();
  took = JoinUntilCount(watcher, kRoom, 4, kOneSecond);
  ASSERT_TRUE(took.has_value()) << "a disconnect not counted in 1 s";
  // And node 1 sees node 3's watcher and node 2's remaining member.
  took = JoinUntilCount(first[1], kRoom, 4, kOneSecond);
  ASSERT_TRUE(took.has_value());
}

TEST_F(ClusterTest, SubscribesOnlyWhileItHasMembers) {
  constexpr uint32_t kRoom = 30;
  const milliseconds kWait = Seconds(5);
  auto subscribers = [&](uint32_t room, int n) {
    return WaitFor([&] { return RoomSubscribers(room) == n; }, kWait);
  };
  ASSERT_TRUE(subscribers(kRoom, 0)) << nats_.Monitor("/connz?subs=1");
  TestClient a = Connect(0);
  TestClient b = Connect(1);
  ASSERT_TRUE(Join(a, kRoom).has_value());
  EXPECT_TRUE(subscribers(kRoom, 1)) << nats_.Monitor("/connz?subs=1");
  ASSERT_TRUE(Join(b, kRoom).has_value());
  EXPECT_TRUE(subscribers(kRoom, 2)) << nats_.Monitor("/connz?subs=1");
  ASSERT_TRUE(Join(a, kRoom + 1).has_value());  // node 1 has nobody left
  EXPECT_TRUE(subscribers(kRoom, 1)) << nats_.Monitor("/connz?subs=1");
  EXPECT_TRUE(subscribers(kRoom + 1, 1));
  b.Close();
  EXPECT_TRUE(subscribers(kRoom, 0)) << nats_.Monitor("/connz?subs=1");
  // Node 3 never had anybody in either room.
  EXPECT_EQ(RoomSubscribers(kRoom + 1), 1);
}

// Node ids must be unique (docs/PROTOCOL.md "Cluster"). Two nodes that share
// one cannot hear each other (each takes the other's messages for its own),
// so each says so in its output, once.
TEST_F(ClusterTest, NodesSharingAnIdSaySo) {
  GameServer twin;
  ASSERT_TRUE(twin.Start(
      {"--cluster", nats_.url(), "--node-id", "1", "--stats-interval", "1"}))
      << twin.Output();
  const std::string said = "another node runs with node id 1";
  EXPECT_TRUE(WaitFor(
      [&] {
        return node(0).Output().find(said) != std::string::npos &&
               twin.Output().find(said) != std::string::npos;
      },
      Seconds(5)))
      << node(0).Output() << twin.Output();
  // Heartbeats go on, the line does not (once per 10 s: not scaled for the
  // sanitizers, as the line's own period is not).
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const std::string out = node(0).Output();
  EXPECT_EQ(out.find(said), out.rfind(said)) << out;
  ExpectCleanStop(twin);
}

// The broker dies for longer than the node expiry and comes back on its
// port. Local chat never stops; cross-node chat sent meanwhile is dropped
// and counted, never delivered late, twice or out of order; then it flows
// again.
TEST_F(ClusterTest, BrokerLossDropsCountsAndResumes) {
  constexpr uint32_t kRoom = 40;
  TestClient sender = Connect(0);
  TestClient local = Connect(0);
  TestClient remote = Connect(2);
  for (TestClient* c : {&sender, &local, &remote}) {
    ASSERT_TRUE(Join(*c, kRoom).has_value());
  }
  ASSERT_TRUE(JoinUntilCount(remote, kRoom, 3, Seconds(10)).has_value());
  ASSERT_TRUE(JoinUntilCount(sender, kRoom, 3, Seconds(10)).has_value());
  int seq = 0;
  auto send_until = [&](int end) {
    for (; seq < end; ++seq) {
      ASSERT_TRUE(sender.SendPacket(kCChat, ChatText(0, seq)));
      std::this_thread::sleep_for(milliseconds(2));
    }
  };
  send_until(100);
  // Read now: the remote client's joins below expect nothing but S_JOIN.
  for (int j = 0; j < 100; ++j) {
    auto chat = ReadChat(remote, Seconds(10));
    ASSERT_TRUE(chat.has_value()) << j;
    ASSERT_EQ(chat->seq, j);
  }
  // Both nodes notice (their stats lines say so) and keep serving.
  ASSERT_NO_FATAL_FAILURE(KillBroker(0, 2));
  send_until(200);
  TestClient fresh;
  ASSERT_TRUE(ConnectReady(fresh, port(0))) << "node 1 serves without NATS";
  // Past the expiry, the remote node sees only its own member. (Had any
  // chat of the outage reached it, this join would fail on it.)
  ASSERT_TRUE(JoinUntilCount(remote, kRoom, 1, Seconds(10)).has_value());
  ASSERT_NO_FATAL_FAILURE(RestartBroker(0, 2));
  ASSERT_TRUE(JoinUntilCount(remote, kRoom, 3, Seconds(10)).has_value());
  send_until(300);
  // The local member got everything, in order.
  for (int j = 0; j < 300; ++j) {
    auto chat = ReadChat(local, Seconds(10));
    ASSERT_TRUE(chat.has_value()) << j;
    ASSERT_EQ(chat->seq, j);
  }
  // The remote one: all after the return, none of what was said
  // meanwhile, each once and in order.
  for (int j = 200; j < 300; ++j) {
    auto chat = ReadChat(remote, Seconds(10));
    ASSERT_TRUE(chat.has_value()) << j;
    ASSERT_EQ(chat->seq, j) << "late, lost after the return, or twice";
  }
  ExpectNothingPending(remote, "after the outage");
  // Node 1 counted what it could not send.
  ASSERT_TRUE(WaitFor([&] { return LastStat(0, "dropped").value_or(0) >= 100; },
                      Seconds(5)))
      << node(0).Output();
}

class ClusterBeforeNatsTest : public ClusterTest {
 protected:
  void SetUp() override {
    port_ = UnusedLoopbackPort();
    ASSERT_NE(port_, 0);
    for (int i = 0; i < kNodes; ++i) {
      StartNode(i, "nats://127.0.0.1:" + std::to_string(port_));
      if (HasFatalFailure()) return;
    }
  }
  // Starts nats-server on port_; then a (node 1) and b (node 2), both in
  // `room`, count each other, and b gets a's chat: one cluster.
  void StartNatsAndExpectOneCluster(TestClient& a, TestClient& b,
                                    uint32_t room) {
    ASSERT_TRUE(nats_.Start(port_)) << nats_.Output();
    ASSERT_TRUE(JoinUntilCount(a, room, 2, Seconds(10)).has_value())
        << node(0).Output();
    ASSERT_TRUE(JoinUntilCount(b, room, 2, Seconds(10)).has_value())
        << node(1).Output();
    ASSERT_TRUE(a.SendPacket(kCChat, ChatText(0, 0)));
    auto chat = ReadChat(b, Seconds(10));
    ASSERT_TRUE(chat.has_value());
    EXPECT_EQ(chat->seq, 0);
    EXPECT_EQ(chat->sender_id >> 48, 1u);
  }
  uint16_t port_ = 0;
};

TEST_F(ClusterBeforeNatsTest, NodesStartFirstAndJoinWhenNatsComes) {
  constexpr uint32_t kRoom = 60;
  TestClient a = Connect(0);
  TestClient b = Connect(1);
  ASSERT_TRUE(Join(a, kRoom).has_value());
  ASSERT_TRUE(Join(b, kRoom).has_value());
  // Standalone meanwhile: each counts its own.
  EXPECT_EQ(Join(a, kRoom), 1u);
  std::this_thread::sleep_for(milliseconds(500));
  StartNatsAndExpectOneCluster(a, b, kRoom);
}

// --cluster takes a list of brokers, as NATS clusters have several: a node
// given a dead one first and the live one second joins the others (cnats
// 3.4 reads a list given as its URL as one bad URL, and never joined).
TEST_F(ClusterTest, AListOfBrokersReachesTheLiveOne) {
  constexpr uint32_t kRoom = 62;
  ExpectCleanStop(node(2));
  const std::string dead =
      "nats://127.0.0.1:" + std::to_string(UnusedLoopbackPort());
  ASSERT_NO_FATAL_FAILURE(RestartNode(2, dead + ", " + nats_.url()));
  TestClient a = Connect(0);
  TestClient c = Connect(2);
  ASSERT_TRUE(Join(a, kRoom).has_value());
  ASSERT_TRUE(Join(c, kRoom).has_value());
  ASSERT_TRUE(JoinUntilCount(c, kRoom, 2, Seconds(10)).has_value())
      << node(2).Output();
  ASSERT_TRUE(JoinUntilCount(a, kRoom, 2, Seconds(10)).has_value());
}

// A broker that accepts connections and never answers when the nodes start
// (a nats-server stopped with SIGSTOP, another service on its port): their
// first connect times out. cnats closed such a connection for good, and
// the nodes never joined; now they do once a real broker answers there.
class ClusterSilentBrokerTest : public ClusterBeforeNatsTest {
 protected:
  static constexpr int kStarted = 2;  // each start waits out a timeout

  void SetUp() override {
    silent_ = ListenOnLoopback(&port_);  // the kernel accepts; we never do
    ASSERT_GE(silent_, 0);
    for (int i = 0; i < kStarted; ++i) {
      StartNode(i, "nats://127.0.0.1:" + std::to_string(port_));
      if (HasFatalFailure()) return;
    }
  }
  void TearDown() override {
    if (silent_ >= 0) ::close(silent_);
    ClusterBeforeNatsTest::TearDown();
  }
  int silent_ = -1;
};

TEST_F(ClusterSilentBrokerTest, NodesJoinOnceTheBrokerAnswers) {
  constexpr uint32_t kRoom = 61;
  TestClient a = Connect(0);
  TestClient b = Connect(1);
  ASSERT_TRUE(Join(a, kRoom).has_value());
  ASSERT_TRUE(Join(b, kRoom).has_value());
  EXPECT_EQ(Join(a, kRoom), 1u) << "standalone meanwhile";
  // Past the first connects' timeouts (2 s), and a retry or two.
  std::this_thread::sleep_for(milliseconds(2500));
  ::close(std::exchange(silent_, -1));  // what it held is reset
  StartNatsAndExpectOneCluster(a, b, kRoom);
}

}  // namespace
}  // namespace servercore::test
