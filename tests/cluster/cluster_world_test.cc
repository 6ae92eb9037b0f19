// docs/PROTOCOL.md "Cluster", the world: S_SNAPSHOT lists the room's world
// members on every node (deltas and full snapshots), a remote member that
// leaves is `gone`, and so are the members of a node that was killed,
// within a few seconds.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/apps/app_fixture.h"
#include "tests/cluster/cluster_fixture.h"

namespace servercore::test {
namespace {

using std::chrono::milliseconds;

// The client's session id: its own S_CHAT says it. The text is new each
// call, so a chat of another member (who may have asked just before, on
// another node, and whose S_CHAT comes through the broker late) is skipped.
uint64_t IdOf(TestClient& client) {
  static int asked = 0;
  const std::string text = "whoami " + std::to_string(++asked);
  EXPECT_TRUE(client.SendPacket(kCChat, Bytes(text)));
  auto chat = ReadUntil(client, kSChat, Seconds(10), [&](const Packet& p) {
    return p.payload.size() == 8 + text.size() &&
           std::memcmp(p.payload.data() + 8, text.data(), text.size()) == 0;
  });
  EXPECT_TRUE(chat.has_value());
  return chat ? ReadU64(chat->payload, 0) : 0;
}

bool Move(TestClient& client, float x, float y, uint32_t seq) {
  return client.SendPacket(kCMove, MovePayload(x, y, seq));
}

// Reads snapshots until one satisfies `accept`; it, or nullopt.
std::optional<Snapshot> ReadSnapshotUntil(
    TestClient& client, milliseconds timeout,
    const std::function<bool(const Snapshot&)>& accept) {
  std::optional<Snapshot> found;
  auto packet = ReadUntil(client, kSSnapshot, timeout, [&](const Packet& p) {
    auto snapshot = ParseSnapshot(p.payload);
    if (!snapshot || !accept(*snapshot)) return false;
    found = std::move(snapshot);
    return true;
  });
  return packet ? found : std::nullopt;
}

bool Lists(const Snapshot& s, uint64_t id, uint32_t min_seq = 0) {
  const SnapshotEntity* e = s.Find(id);
  return e != nullptr && !e->gone && e->last_seq >= min_seq;
}

bool ListsGone(const Snapshot& s, uint64_t id) {
  const SnapshotEntity* e = s.Find(id);
  return e != nullptr && e->gone;
}

// a and b, members of one room on two nodes, enter the world (at seq 1) and
// a sees b there; *b_id is b's session id.
void EnterAndMeet(TestClient& a, TestClient& b, uint64_t* b_id) {
  *b_id = IdOf(b);
  ASSERT_TRUE(Move(a, 1, 1, 1));
  ASSERT_TRUE(Move(b, 2, 2, 1));
  ASSERT_TRUE(ReadSnapshotUntil(
      a, Seconds(5), [&](const Snapshot& s) { return Lists(s, *b_id, 1); }));
}

}  // namespace

void ClusterTest::MeetInRoom(uint32_t room, TestClient& a, TestClient& b,
                             uint64_t* b_id) {
  a = Connect(0);
  b = Connect(1);
  ASSERT_NO_FATAL_FAILURE(JoinTogether(a, b, room));
  ASSERT_NO_FATAL_FAILURE(EnterAndMeet(a, b, b_id));
}

namespace {

TEST_F(ClusterTest, SnapshotsListRemoteMembers) {
  constexpr uint32_t kRoom = 20;
  TestClient a = Connect(0);
  TestClient b = Connect(1);
  ASSERT_NO_FATAL_FAILURE(JoinTogether(a, b, kRoom));
  const uint64_t a_id = IdOf(a);
  const uint64_t b_id = IdOf(b);
  // (node_id << 48) | n, n counting from 1 on each node: a and b are their
  // nodes' first sessions.
  ASSERT_EQ(a_id, (uint64_t{1} << 48) | 1);
  ASSERT_EQ(b_id, (uint64_t{2} << 48) | 1);
  ASSERT_TRUE(Move(a, 1, 2, 1));
  ASSERT_TRUE(Move(b, 3, 4, 1));
  // Deltas: each sees the other's move.
  ASSERT_TRUE(ReadSnapshotUntil(
      b, Seconds(5), [&](const Snapshot& s) { return Lists(s, a_id, 1); }));
  ASSERT_TRUE(ReadSnapshotUntil(
      a, Seconds(5), [&](const Snapshot& s) { return Lists(s, b_id, 1); }));
  // A later move shows with its seq and position.
  ASSERT_TRUE(Move(a, 5, 6, 7));
  auto seen = ReadSnapshotUntil(
      b, Seconds(5), [&](const Snapshot& s) { return Lists(s, a_id, 7); });
  ASSERT_TRUE(seen.has_value());
  EXPECT_FALSE(seen->full);
  EXPECT_EQ(seen->Find(a_id)->x, 5);
  EXPECT_EQ(seen->Find(a_id)->y, 6);
  // A newcomer on a third node, where the room is new: its S_JOIN waits
  // for the others' state, so its first full snapshot lists them.
  TestClient c = Connect(2);
  ASSERT_TRUE(Join(c, kRoom).has_value());
  ASSERT_TRUE(JoinUntilCount(c, kRoom, 3, Seconds(10)).has_value());
  const uint64_t c_id = IdOf(c);
  ASSERT_TRUE(Move(c, 7, 8, 1));
  auto entered = ReadUntil(c, kSSnapshot, Seconds(5));
  ASSERT_TRUE(entered.has_value());
  auto first = ParseSnapshot(entered->payload);
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->full);
  EXPECT_TRUE(Lists(*first, c_id, 1));
  EXPECT_TRUE(Lists(*first, a_id, 7));
  EXPECT_TRUE(Lists(*first, b_id, 1));
  // And the full snapshot after its next S_JOIN.
  ASSERT_TRUE(JoinSkippingSnapshots(c, kRoom));
  auto full = ReadUntil(c, kSSnapshot, Seconds(5));
  ASSERT_TRUE(full.has_value());
  auto rejoined = ParseSnapshot(full->payload);
  ASSERT_TRUE(rejoined.has_value());
  EXPECT_TRUE(rejoined->full);
  EXPECT_TRUE(Lists(*rejoined, a_id, 7));
  EXPECT_TRUE(Lists(*rejoined, b_id, 1));
  EXPECT_TRUE(Lists(*rejoined, c_id, 1));
  // A remote member that leaves the room is gone on both other nodes.
  ASSERT_TRUE(JoinSkippingSnapshots(b, kRoom + 1, /*skip_chats=*/true));
  EXPECT_TRUE(ReadSnapshotUntil(
      a, Seconds(5), [&](const Snapshot& s) { return ListsGone(s, b_id); }));
  EXPECT_TRUE(ReadSnapshotUntil(
      c, Seconds(5), [&](const Snapshot& s) { return ListsGone(s, b_id); }));
  // One that disconnects too.
  a.Close();
  EXPECT_TRUE(ReadSnapshotUntil(
      c, Seconds(5), [&](const Snapshot& s) { return ListsGone(s, a_id); }));
}

// Every node ticks on the wall clock's grid, its tick numbers the grid's,
// publishes its moves on the grid point and snapshots a little after it
// (docs/CLUSTER.md, "World"): a move made mid-tick on one node reaches the
// members on another node in the same tick as the mover itself, not one
// later. (A node ticking at its own phase gave them up to a tick more.)
TEST_F(ClusterTest, RemoteMembersSeeAMoveInTheTickItsMoverDoes) {
  constexpr uint32_t kRoom = 23;
  constexpr int kMoves = 10;
  constexpr auto kTick = milliseconds(50);  // GameServer's default
  TestClient a, b;
  uint64_t b_id = 0;
  ASSERT_NO_FATAL_FAILURE(MeetInRoom(kRoom, a, b, &b_id));
  const uint64_t a_id = IdOf(a);
  int same = 0;
  for (uint32_t seq = 2; seq < 2 + kMoves; ++seq) {
    // Mid-tick on the wall clock: the node has half a tick to take the move
    // before the grid point that publishes it.
    const auto wall = std::chrono::system_clock::now().time_since_epoch();
    const auto into = std::chrono::duration_cast<milliseconds>(wall) % kTick;
    std::this_thread::sleep_for((kTick + kTick / 2 - into) % kTick);
    ASSERT_TRUE(Move(a, 5, static_cast<float>(seq), seq));
    auto own = ReadSnapshotUntil(
        a, Seconds(5), [&](const Snapshot& s) { return Lists(s, a_id, seq); });
    auto remote = ReadSnapshotUntil(
        b, Seconds(5), [&](const Snapshot& s) { return Lists(s, a_id, seq); });
    ASSERT_TRUE(own.has_value() && remote.has_value()) << "move " << seq;
    // Never earlier; a tick later only when the delta came late.
    ASSERT_GE(remote->tick, own->tick) << "move " << seq;
    EXPECT_LE(remote->tick, own->tick + 1) << "move " << seq;
    if (remote->tick == own->tick) ++same;
  }
  // The broker hop (three wake-ups) can outlast the snapshot's delay
  // (10 ms) now and then on a loaded machine, often under a sanitizer.
  EXPECT_GE(same, kSlowdown > 1 ? 1 : kMoves - 3);
}

TEST_F(ClusterTest, KilledNodesMembersGoWithinSeconds) {
  constexpr uint32_t kRoom = 50;
  TestClient a = Connect(0);
  TestClient b = Connect(1);
  ASSERT_NO_FATAL_FAILURE(JoinTogether(a, b, kRoom));
  const uint64_t a_id = IdOf(a);
  uint64_t b_id = 0;
  ASSERT_NO_FATAL_FAILURE(EnterAndMeet(a, b, &b_id));
  ASSERT_TRUE(ReadSnapshotUntil(
      b, Seconds(5), [&](const Snapshot& s) { return Lists(s, a_id, 1); }));
  node(1).process().Signal(SIGKILL);
  ASSERT_TRUE(node(1).process().Wait(Seconds(5)).has_value());
  const auto killed = std::chrono::steady_clock::now();
  // Expiry is 3 s of silence (times kSlowdown, NodeFlags); "a few seconds"
  // allows for a loaded machine.
  ASSERT_TRUE(ReadSnapshotUntil(a, Seconds(6), [&](const Snapshot& s) {
    return ListsGone(s, b_id);
  })) << node(0).Output();
  // Not before the expiry: 3 s (or more) after the last presence heard,
  // which a heartbeat sends every second (later on a loaded machine, hence
  // the margin: the point is that nothing but the expiry counted it out).
  const auto took = std::chrono::steady_clock::now() - killed;
  EXPECT_GE(took, milliseconds(1000)) << "gone before the expiry?";
  // Its sessions leave the counts too.
  ASSERT_TRUE(JoinUntilCount(a, kRoom, 1, Seconds(5)).has_value());
  // The line was printed before the drop, but the pipe's reader may lag a
  // loaded machine's round trips.
  EXPECT_TRUE(node(0).process().WaitForOutput("node 2 not heard", Seconds(5)))
      << node(0).Output();
}

// A node stopped with SIGTERM says so: its members leave at once, well
// before the 3 s expiry of a node that went silent.
TEST_F(ClusterTest, StoppedNodesMembersGoAtOnce) {
  constexpr uint32_t kRoom = 70;
  TestClient a;
  TestClient b;
  uint64_t b_id = 0;
  ASSERT_NO_FATAL_FAILURE(MeetInRoom(kRoom, a, b, &b_id));
  const auto stopping = std::chrono::steady_clock::now();
  ExpectCleanStop(node(1));
  ASSERT_TRUE(ReadSnapshotUntil(
      a, Seconds(5), [&](const Snapshot& s) { return ListsGone(s, b_id); }));
  // The cause, not the time: had node 2's members left by expiry, node 0
  // would have said so (and flushed it) before dropping them. Read now: node
  // 0 says it anyway 3 s after node 2's last presence, members or not.
  const std::string when_gone = node(0).Output();
  EXPECT_EQ(when_gone.find("node 2 not heard"), std::string::npos)
      << "counted out by expiry, not by the stop:\n"
      << when_gone;
  ASSERT_TRUE(JoinUntilCount(a, kRoom, 1, Seconds(5)).has_value());
  // And not lost or way off, however loaded the machine.
  EXPECT_LT(std::chrono::steady_clock::now() - stopping,
            milliseconds(5000 * kSlowdown));
}

// Room 0's sessions arrive at accept, without an S_JOIN to hold back while
// a room new on the node learns the other nodes' members: the full snapshot
// of one entering the world then waits for them instead.
TEST_F(ClusterTest, RoomZerosFirstFullSnapshotListsRemoteMembers) {
  TestClient a = Connect(0);  // room 0 on node 1
  ASSERT_TRUE(Move(a, 5, 6, 3));
  auto own = ReadUntil(a, kSSnapshot, Seconds(5));
  ASSERT_TRUE(own.has_value());
  // Node 2, with no session yet, has heard of a (its stats say so).
  ASSERT_TRUE(
      WaitFor([&] { return LastStat(1, "remote members").value_or(0) >= 1; },
              Seconds(10)))
      << node(1).Output();
  const uint64_t a_id = ParseSnapshot(own->payload)->entities.at(0).session_id;
  TestClient b = Connect(1);  // node 2's first session: room 0 is new there
  ASSERT_TRUE(Move(b, 1, 2, 1));
  auto first = ReadUntil(b, kSSnapshot, Seconds(5));
  ASSERT_TRUE(first.has_value());
  auto snapshot = ParseSnapshot(first->payload);
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_TRUE(snapshot->full);
  EXPECT_TRUE(Lists(*snapshot, a_id, 3)) << "the remote member, at once";
  EXPECT_EQ(snapshot->entities.size(), 2u);
}

// Nodes that wait a minute before counting a silent node out: in these
// tests only what the test is about may take a remote member away, however
// slowly a loaded machine runs them.
class ClusterLongExpiryTest : public ClusterTest {
 protected:
  std::vector<std::string> NodeFlags() const override {
    return {"--node-expiry", "60"};
  }
};

// A node killed and started again with the same id before the others'
// expiry: its sessions' ids count from 1 again, so the earlier run's members
// must leave at once (the new run's presence says it is a new run), not
// linger as ghosts that share ids with new players.
using ClusterRestartTest = ClusterLongExpiryTest;

TEST_F(ClusterRestartTest, RestartedNodesEarlierMembersGoAtOnce) {
  constexpr uint32_t kRoom = 80;
  TestClient a;
  TestClient b;
  uint64_t b_id = 0;
  ASSERT_NO_FATAL_FAILURE(MeetInRoom(kRoom, a, b, &b_id));
  node(1).process().Signal(SIGKILL);
  ASSERT_TRUE(node(1).process().Wait(Seconds(5)).has_value());
  RestartNode(1, nats_.url());
  if (HasFatalFailure()) return;
  // Gone, and counted out, though node 2 is heard all along.
  ASSERT_TRUE(ReadSnapshotUntil(a, Seconds(6), [&](const Snapshot& s) {
    return ListsGone(s, b_id);
  })) << node(0).Output();
  ASSERT_TRUE(JoinUntilCount(a, kRoom, 1, Seconds(5)).has_value());
  // Printed before the drop; the pipe's reader may lag (once, in a loaded
  // run of the suite, the line was not there yet).
  EXPECT_TRUE(node(0).process().WaitForOutput("node 2 restarted", Seconds(5)))
      << node(0).Output();
  EXPECT_EQ(node(0).Output().find("node 2 not heard"), std::string::npos)
      << "counted out by expiry, not as a restart";
  // The new run's members are in the room like anyone's.
  TestClient c = Connect(1);
  ASSERT_NO_FATAL_FAILURE(JoinTogether(a, c, kRoom));
  const uint64_t c_id = IdOf(c);
  ASSERT_TRUE(Move(c, 3, 3, 4));
  EXPECT_TRUE(ReadSnapshotUntil(
      a, Seconds(5), [&](const Snapshot& s) { return Lists(s, c_id, 4); }));
}

// A broker outage shorter than the expiry, during which a remote member
// leaves and its node drops the room: the leave, published while the broker
// was away, is lost, and no state of that node will ever come for a room it
// no longer has. Its presence, which no longer lists the room, says the
// member is gone (the expiry of a minute never does here).
using ClusterShortOutageTest = ClusterLongExpiryTest;

TEST_F(ClusterShortOutageTest, LeaveLostInAnOutageStillGoes) {
  constexpr uint32_t kRoom = 90;
  TestClient a;
  TestClient b;
  uint64_t b_id = 0;
  ASSERT_NO_FATAL_FAILURE(MeetInRoom(kRoom, a, b, &b_id));
  ASSERT_NO_FATAL_FAILURE(KillBroker(0, 1));
  // b leaves: its S_JOIN in the next room comes once the old room has let
  // it go, and published (into the void) that it left; node 2 then has no
  // room kRoom.
  ASSERT_TRUE(JoinSkippingSnapshots(b, kRoom + 1, /*skip_chats=*/true));
  ASSERT_NO_FATAL_FAILURE(RestartBroker(0, 1));
  EXPECT_TRUE(ReadSnapshotUntil(a, Seconds(5), [&](const Snapshot& s) {
    return ListsGone(s, b_id);
  })) << node(0).Output();
  // And a's next full snapshot does not list it.
  ASSERT_TRUE(JoinSkippingSnapshots(a, kRoom));
  auto full = ReadSnapshotUntil(a, Seconds(5),
                                [](const Snapshot& s) { return s.full; });
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->Find(b_id), nullptr) << "a ghost of a member long gone";
}

// Presence as a node sends it (cluster_wire.h): [kind 4][node u16]
// [incarnation u64] then [room u32][sessions u32] pairs, little-endian.
std::string Presence(uint16_t node, uint64_t incarnation,
                     const std::vector<std::pair<uint32_t, uint32_t>>& table) {
  std::string out(1, '\x04');
  auto append = [&](const auto value) {
    char bytes[sizeof(value)];
    std::memcpy(bytes, &value, sizeof(value));
    out.append(bytes, sizeof(value));
  };
  append(node);
  append(incarnation);
  for (const auto& [room, count] : table) {
    append(room);
    append(count);
  }
  return out;
}

// Another node's presence is not trusted to be well formed: a room listed
// twice in it, or counts that add up past 32 bits across nodes, neither
// crash a node nor leave its counts wrong.
TEST_F(ClusterTest, MalformedPresenceLeavesNodesRunning) {
  constexpr uint32_t kRoom = 95;
  TestClient a = Connect(0);
  ASSERT_TRUE(Join(a, kRoom).has_value());
  ASSERT_TRUE(PublishRaw(
      nats_.port(),
      {
          {"sc.node.9",
           Presence(9, 1, {{kRoom, 1}, {kRoom, 0xFFFFFFFF}, {kRoom, 1}})},
          {"sc.node.9", Presence(9, 1, {})},
          {"sc.node.10", Presence(10, 1, {{kRoom, 0xFFFFFFFF}})},
          {"sc.node.11", Presence(11, 1, {{kRoom, 1}})},
          {"sc.node.12", Presence(12, 1, {{kRoom, 1}})},
          {"sc.node.12", Presence(12, 1, {})},
          {"sc.node.10", Presence(10, 1, {})},
      }));
  // Of all that, node 11's one session is left (until it expires).
  EXPECT_TRUE(JoinUntilCount(a, kRoom, 2, Seconds(2)).has_value());
  for (int i = 0; i < kNodes; ++i) {
    EXPECT_TRUE(node(i).process().running()) << node(i).Output();
    TestClient alive = Connect(i);
  }
}

// A room new on this node first waits (up to 200 ms) for the state of the
// nodes whose presence lists it, and keeps its joiners' S_JOIN back
// meanwhile. A session that passes through such a room, joining on before
// that wait ends, leaves it with no holder: its S_JOIN there, and every
// S_JOIN and answer after, still come. (Node 9 lists the rooms and never
// answers, so the wait runs its full length.)
TEST_F(ClusterTest, AJoinThroughARoomStillWaitingForTheOthersIsAnswered) {
  constexpr uint32_t kWaiting = 500;
  constexpr uint32_t kNext = 501;
  constexpr uint32_t kProbe = 502;
  const std::string presence =
      Presence(9, 1, {{kWaiting, 1}, {kNext, 1}, {kProbe, 1}});
  ASSERT_TRUE(PublishRaw(nats_.port(), {{"sc.node.9", presence}}));
  TestClient probe = Connect(0);
  ASSERT_TRUE(JoinUntilCount(probe, kProbe, 2, Seconds(5)).has_value())
      << "node 1 never heard node 9's presence";
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    // Node 9 stays listed (its presence expires after 3 s unheard).
    ASSERT_TRUE(PublishRaw(nats_.port(), {{"sc.node.9", presence}}));
    TestClient a = Connect(0);
    std::vector<std::byte> write = EncodePacket(kCJoin, U32(kWaiting));
    Append(write, EncodePacket(kCJoin, U32(kNext)));
    Append(write, EncodePacket(kCEcho, Bytes("after")));
    ASSERT_TRUE(a.SendAll(write));
    std::vector<uint32_t> joined;
    std::optional<Packet> packet;
    while ((packet = a.ReadPacket(Seconds(3))).has_value()) {
      if (packet->id == kSJoin) joined.push_back(ReadU32(packet->payload, 0));
      if (packet->id == kSEcho) break;
    }
    ASSERT_TRUE(packet.has_value())
        << "no S_ECHO; S_JOINs so far: " << joined.size();
    EXPECT_EQ(joined, (std::vector<uint32_t>{kWaiting, kNext}));
  }
}

// A kDelta from `node` (cluster_wire.h): [kind 2][node u16], then entities
// [id u64][x f32][y f32][seq u32][gone u8].
struct WireEntity {
  uint64_t id;
  float x;
  float y;
  uint32_t seq;
};
std::string Delta(uint16_t node, const std::vector<WireEntity>& entities) {
  std::string out(1, '\x02');
  auto append = [&](const auto value) {
    char bytes[sizeof(value)];
    std::memcpy(bytes, &value, sizeof(value));
    out.append(bytes, sizeof(value));
  };
  append(node);
  for (const WireEntity& e : entities) {
    append(e.id);
    append(e.x);
    append(e.y);
    append(e.seq);
    append(uint8_t{0});
  }
  return out;
}

// A broken node's positions that no C_MOVE could set do not reach clients:
// its other members do.
TEST_F(ClusterTest, RemotePositionsOutsideTheWorldAreIgnored) {
  constexpr uint32_t kRoom = 97;
  TestClient a = Connect(0);
  ASSERT_TRUE(Join(a, kRoom).has_value());
  ASSERT_TRUE(Move(a, 1, 1, 1));
  ASSERT_TRUE(ReadUntil(a, kSSnapshot, Seconds(5)).has_value());
  // Node 1 subscribes to the room's subject once it has it.
  ASSERT_TRUE(WaitFor([&] { return RoomSubscribers(kRoom) == 1; }, Seconds(5)));
  constexpr uint64_t kNode = 9;
  const uint64_t good = (kNode << 48) | 1;
  const uint64_t nan = (kNode << 48) | 2;
  const uint64_t far = (kNode << 48) | 3;
  ASSERT_TRUE(
      PublishRaw(nats_.port(),
                 {{"sc.room." + std::to_string(kRoom),
                   Delta(static_cast<uint16_t>(kNode),
                         {{good, 5, 5, 1},
                          {nan, std::numeric_limits<float>::quiet_NaN(), 0, 1},
                          {far, 0, 20000, 1}})}}));
  auto seen = ReadSnapshotUntil(
      a, Seconds(5), [&](const Snapshot& s) { return Lists(s, good, 1); });
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->Find(nan), nullptr);
  EXPECT_EQ(seen->Find(far), nullptr);
}

// A chat from the broker carries its sender's session id; a node speaks
// only for its own sessions: a chat with node 9 in its header and a sender
// of node 1 (or of node 2) reaches nobody, node 9's own does.
TEST_F(ClusterTest, ChatsOfAnotherNodesSessionsAreIgnored) {
  constexpr uint32_t kRoom = 96;
  TestClient a = Connect(0);
  ASSERT_TRUE(Join(a, kRoom).has_value());
  ASSERT_TRUE(WaitFor([&] { return RoomSubscribers(kRoom) == 1; }, Seconds(5)));
  auto chat = [](uint16_t node, uint64_t sender, std::string_view text) {
    std::string out(1, '\x01');
    out.append(reinterpret_cast<const char*>(&node), sizeof(node));
    out.append(reinterpret_cast<const char*>(&sender), sizeof(sender));
    out.append(text);
    return out;
  };
  const std::string subject = "sc.room." + std::to_string(kRoom);
  const uint64_t own = (uint64_t{9} << 48) | 1;
  ASSERT_TRUE(PublishRaw(
      nats_.port(), {{subject, chat(9, (uint64_t{1} << 48) | 1, "forged 1")},
                     {subject, chat(9, (uint64_t{2} << 48) | 1, "forged 2")},
                     {subject, chat(9, own, "own")}}));
  auto first = ReadUntil(a, kSChat, Seconds(5));
  ASSERT_TRUE(first.has_value());
  ASSERT_GE(first->payload.size(), 8u);
  EXPECT_EQ(ReadU64(first->payload, 0), own);
  EXPECT_EQ(
      std::string(reinterpret_cast<const char*>(first->payload.data()) + 8,
                  first->payload.size() - 8),
      "own");
}

// Messages between nodes that were dropped (a full outgoing queue, a slow
// consumer at the broker's end) are counted and never sent again: what they
// leave wrong, each room's periodic state repairs (Room::Refresh). A member
// node 2 does not have, as if its leave had been lost, goes from node 1's
// snapshots; so does one of node 9, which never said it had sessions here.
TEST_F(ClusterTest, MembersWhoseLeaveWasLostGoWithinSeconds) {
  constexpr uint32_t kRoom = 98;
  TestClient a;
  TestClient b;
  uint64_t b_id = 0;
  ASSERT_NO_FATAL_FAILURE(MeetInRoom(kRoom, a, b, &b_id));
  const uint64_t ghost = (uint64_t{2} << 48) | 999;
  const uint64_t stranger = (uint64_t{9} << 48) | 1;
  const std::string subject = "sc.room." + std::to_string(kRoom);
  ASSERT_TRUE(
      PublishRaw(nats_.port(), {{subject, Delta(2, {{ghost, 3, 3, 1}})},
                                {subject, Delta(9, {{stranger, 4, 4, 1}})}}));
  // Each comes and goes (a refresh may undo the ghost in the tick it came,
  // and then the clients see only its `gone`); b stays.
  bool ghost_gone = false;
  bool stranger_gone = false;
  bool b_gone = false;
  ASSERT_TRUE(ReadSnapshotUntil(a, Seconds(10),
                                [&](const Snapshot& s) {
                                  ghost_gone =
                                      ghost_gone || ListsGone(s, ghost);
                                  stranger_gone =
                                      stranger_gone || ListsGone(s, stranger);
                                  b_gone = b_gone || ListsGone(s, b_id);
                                  return ghost_gone && stranger_gone;
                                }))
      << "ghost gone " << ghost_gone << ", stranger gone " << stranger_gone;
  EXPECT_FALSE(b_gone);
}

// That periodic state repeats what the others know already: a room where
// nobody moves sends its clients nothing, however many times it comes.
TEST_F(ClusterTest, RepeatedStatesSendAQuietRoomNothing) {
  constexpr uint32_t kRoom = 99;
  TestClient a;
  TestClient b;
  uint64_t b_id = 0;
  ASSERT_NO_FATAL_FAILURE(MeetInRoom(kRoom, a, b, &b_id));
  for (TestClient* client : {&a, &b}) {
    while (ReadUntil(*client, kSSnapshot, milliseconds(500)).has_value()) {
    }
  }
  // Two refreshes of each node at least (WorldOptions::state_refresh).
  EXPECT_FALSE(ReadUntil(a, kSSnapshot, Seconds(5)).has_value());
  EXPECT_FALSE(ReadUntil(b, kSSnapshot, milliseconds(100)).has_value());
}

}  // namespace
}  // namespace servercore::test
