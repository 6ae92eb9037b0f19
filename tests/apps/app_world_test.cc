// docs/PROTOCOL.md "The world" checked from the outside against the real
// GameServer: entering with the first C_MOVE, a full snapshot first on
// entering and after each S_JOIN, deltas of what changed (gone entities
// included) once per tick and nothing when nothing changed, the default
// tick of 50 ms, --tick-ms and ticks numbered by the wall clock, the
// two-tick bound, movers that leave mid-tick, rooms of 1,000
// world members, and snapshots split past 65535 bytes. S_SNAPSHOT is decoded by
// hand (ParseSnapshot), as a client written from the contract could.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/apps/app_fixture.h"

namespace servercore::test {
namespace {

using Clock = std::chrono::steady_clock;
using WorldTest = GameServerTestBase<std::string>;

// One client of the world: its session id, learned from its own S_CHAT in
// a room of its own, and what it saw: every entity's latest state, by id.
struct Player {
  TestClient client;
  uint64_t id = 0;
  uint32_t room = 0;
  uint64_t last_tick = 0;
  std::map<uint64_t, SnapshotEntity> seen;           // present entities only
  std::map<std::pair<bool, uint64_t>, int> packets;  // by (full, tick)
  size_t largest_packet = 0;
  bool last_full = false;  // the last packet was a full snapshot's

  // Connects, learns the session id in room `private_room`, joins `room`.
  [[nodiscard]] bool Enter(uint16_t port, uint32_t private_room,
                           uint32_t in_room) {
    if (!ConnectReady(client, port)) return false;
    if (!Join(client, private_room)) return false;
    const auto own = ChatForId(client, Bytes("who am i"));
    if (!own) return false;
    id = *own;
    room = in_room;
    return Join(client, in_room).has_value();
  }

  bool Move(float x, float y, uint32_t seq) {
    return client.SendPacket(kCMove, MovePayload(x, y, seq));
  }

  // Reads the next packet, which must be an S_SNAPSHOT of this player's
  // room; applies it to `seen` and checks that ticks never go back.
  std::optional<Snapshot> NextSnapshot(
      std::chrono::milliseconds timeout = Seconds(10)) {
    auto packet = client.ReadPacket(timeout);
    if (!packet) return std::nullopt;
    EXPECT_EQ(packet->id, kSSnapshot) << "player " << id;
    if (packet->id != kSSnapshot) return std::nullopt;
    largest_packet = std::max(largest_packet, packet->payload.size() + 4);
    auto snapshot = ParseSnapshot(packet->payload);
    EXPECT_TRUE(snapshot.has_value()) << "S_SNAPSHOT does not parse";
    if (!snapshot) return std::nullopt;
    EXPECT_EQ(snapshot->room, room);
    EXPECT_GE(snapshot->tick, last_tick) << "tick went back";
    last_tick = snapshot->tick;
    // A full snapshot replaces the view, once: its later packets (a split
    // one shares the tick) add to it.
    const bool next_part =
        last_full && snapshot->full && packets.contains({true, snapshot->tick});
    if (snapshot->full && !next_part) seen.clear();
    last_full = snapshot->full;
    ++packets[{snapshot->full, snapshot->tick}];
    std::vector<uint64_t> ids;
    for (const SnapshotEntity& e : snapshot->entities) {
      ids.push_back(e.session_id);
    }
    std::sort(ids.begin(), ids.end());
    EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end())
        << "an entity listed twice in one snapshot";
    for (const SnapshotEntity& e : snapshot->entities) {
      if (e.gone) {
        seen.erase(e.session_id);
        continue;
      }
      auto [it, added] = seen.emplace(e.session_id, e);
      if (!added) {
        EXPECT_GE(e.last_seq, it->second.last_seq)
            << "last_seq of " << e.session_id << " went back";
        it->second = e;
      }
    }
    return snapshot;
  }

  // Reads snapshots until `done(*this)` holds; false on a timeout.
  template <typename Done>
  bool ReadUntil(Done done, std::chrono::milliseconds timeout = Seconds(10)) {
    const auto deadline = Clock::now() + timeout;
    while (!done(*this)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - Clock::now());
      if (left.count() <= 0 || !NextSnapshot(left)) return false;
    }
    return true;
  }

  bool Sees(uint64_t who, uint32_t seq) const {
    auto it = seen.find(who);
    return it != seen.end() && it->second.last_seq >= seq;
  }
};

TEST_P(WorldTest, FirstMoveEntersWithAFullSnapshotAndOthersSeeTheDelta) {
  START_SERVER();
  Player a, b, watcher, pinger;
  ASSERT_TRUE(a.Enter(server_.port(), 1001, 10));
  ASSERT_TRUE(b.Enter(server_.port(), 1002, 10));
  ASSERT_TRUE(watcher.Enter(server_.port(), 1003, 10));
  // Speaks typed packets (C_PING) but never moves: not in the world either.
  ASSERT_TRUE(pinger.Enter(server_.port(), 1004, 10));
  ASSERT_TRUE(pinger.client.SendPacket(kCPing, ProtoVarint(1, 1)));
  auto pong = pinger.client.ReadPacket(Seconds(10));
  ASSERT_TRUE(pong && pong->id == kSPong);

  ASSERT_TRUE(a.Move(1.5F, -2.25F, 1));
  auto first = a.NextSnapshot();
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->full) << "entering: a full snapshot first";
  ASSERT_EQ(first->entities.size(), 1u);
  EXPECT_EQ(first->entities[0].session_id, a.id);
  EXPECT_EQ(first->entities[0].x, 1.5F);
  EXPECT_EQ(first->entities[0].y, -2.25F);
  EXPECT_EQ(first->entities[0].last_seq, 1u);
  EXPECT_FALSE(first->entities[0].gone);
  // Entering is a change: the next tick tells every world member (a too).
  auto delta = a.NextSnapshot();
  ASSERT_TRUE(delta.has_value());
  EXPECT_FALSE(delta->full);

  ASSERT_TRUE(b.Move(-7, 8, 5));
  auto b_full = b.NextSnapshot();
  ASSERT_TRUE(b_full.has_value());
  EXPECT_TRUE(b_full->full);
  EXPECT_GE(b_full->tick, delta->tick) << "a full snapshot: the latest tick";
  EXPECT_TRUE(b.Sees(a.id, 1) && b.Sees(b.id, 5)) << "every world member";
  EXPECT_EQ(b_full->entities.size(), 2u);
  ASSERT_TRUE(a.ReadUntil([&](const Player& p) { return p.Sees(b.id, 5); }));

  // Only what changed: a moves, b does not.
  ASSERT_TRUE(a.Move(3, 4, 2));
  ASSERT_TRUE(b.ReadUntil([&](const Player& p) { return p.Sees(a.id, 2); }));
  // A client that never sent C_MOVE sees no packet of id 1000 or more, nor
  // a snapshot when it pinged.
  ExpectNothingPending(watcher.client, "not in the world");
  ExpectNothingPending(pinger.client, "pinged, not in the world");
}

// Without --tick-ms a room ticks every 50 ms (docs/PROTOCOL.md "Command
// line" and "Ticks"). `tick` counts the room's ticks, quiet ones included,
// so between two deltas it grows by the time between them over 50 ms. The
// server stamps each delta at some moment between the move's send and the
// delta's arrival: that bounds the time between the two stamps, and each
// tick number is that time's floor, hence the one tick of slack either way.
// Half a second apart: about 10 ticks, where 25 or 100 ms would give 20 or
// 5. The sleep is the interval measured, not a wait for the server.
TEST_P(WorldTest, DefaultTickIsFiftyMilliseconds) {
  START_SERVER();
  Player a;
  ASSERT_TRUE(a.Enter(server_.port(), 2101, 21));
  // Sends C_MOVE `seq`, then reads to the delta that carries it; its tick,
  // and when the move was sent and the delta came.
  struct Stamped {
    uint64_t tick = 0;
    Clock::time_point sent, received;
  };
  const auto move = [&](uint32_t seq) -> std::optional<Stamped> {
    Stamped out;
    out.sent = Clock::now();
    if (!a.Move(0, static_cast<float>(seq), seq)) return std::nullopt;
    for (;;) {
      auto snapshot = a.NextSnapshot();
      if (!snapshot) return std::nullopt;
      if (!snapshot->full && a.Sees(a.id, seq)) {
        out.tick = snapshot->tick;
        out.received = Clock::now();
        return out;
      }
    }
  };
  const auto first = move(1);
  ASSERT_TRUE(first.has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto second = move(2);
  ASSERT_TRUE(second.has_value());
  const auto ms = [](Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  const double shortest = ms(second->sent - first->received);
  const double longest = ms(second->received - first->sent);
  const double ticks = static_cast<double>(second->tick - first->tick);
  EXPECT_GE(ticks, shortest / 50 - 1)
      << "ticks slower than every 50 ms: " << ticks << " in " << shortest
      << " to " << longest << " ms";
  EXPECT_LE(ticks, longest / 50 + 1)
      << "ticks faster than every 50 ms: " << ticks << " in " << shortest
      << " to " << longest << " ms";
}

// --tick-ms sets the period, and a tick is numbered by the wall clock's
// periods since the Unix epoch (docs/PROTOCOL.md), so a client on the same
// clock knows which tick a move falls in: the delta that shows it carries
// that tick's number plus one or two (within two ticks), never a tick yet
// to come. A server that ignored --tick-ms would number its ticks five
// times higher (every 50 ms).
TEST_P(WorldTest, TicksFollowTickMsOnTheWallClock) {
  // Longer under a sanitizer: a move may take that long to reach its room.
  constexpr uint64_t kTickMs = 250 * kSlowdown;
  START_SERVER("--tick-ms", std::to_string(kTickMs));
  Player a;
  ASSERT_TRUE(a.Enter(server_.port(), 2201, 22));
  const auto wall_tick = [] {
    const auto since_epoch =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch());
    return static_cast<uint64_t>(since_epoch.count()) / kTickMs;
  };
  for (uint32_t seq = 1; seq <= 6; ++seq) {
    const uint64_t sent = wall_tick();
    ASSERT_TRUE(a.Move(0, static_cast<float>(seq), seq));
    std::optional<Snapshot> shown;
    while (!shown) {
      auto snapshot = a.NextSnapshot();
      ASSERT_TRUE(snapshot.has_value()) << "seq " << seq << " never shown";
      if (a.Sees(a.id, seq)) shown = std::move(snapshot);
    }
    const uint64_t received = wall_tick();
    SCOPED_TRACE("seq " + std::to_string(seq) + ": sent in wall tick " +
                 std::to_string(sent) + ", shown in tick " +
                 std::to_string(shown->tick) + ", received in wall tick " +
                 std::to_string(received));
    EXPECT_GE(shown->tick, sent);
    EXPECT_LE(shown->tick, sent + 2) << "not within two ticks";
    // One tick of slack: a timer may fire a hair before its boundary.
    EXPECT_LE(shown->tick, received + 1) << "a tick from the future";
  }
}

TEST_P(WorldTest, DeltasCarryOnlyChangesAndQuietTicksSendNothing) {
  START_SERVER("--tick-ms", "20");
  Player a, b;
  ASSERT_TRUE(a.Enter(server_.port(), 2001, 20));
  ASSERT_TRUE(b.Enter(server_.port(), 2002, 20));
  ASSERT_TRUE(a.Move(1, 1, 1));
  ASSERT_TRUE(b.Move(2, 2, 1));
  ASSERT_TRUE(a.ReadUntil([&](const Player& p) { return p.Sees(b.id, 1); }));
  ASSERT_TRUE(b.ReadUntil([&](const Player& p) { return p.Sees(a.id, 1); }));
  // Let any tick still owed go out: read until nothing came for half a
  // second (scaled), so that a tick a loaded machine ran late is drained
  // here, not taken for a quiet tick's packet. A server that sends on every
  // tick never goes quiet: give up after 10 s and let the checks below fail.
  const auto drain = [](TestClient& client) {
    const auto give_up = std::chrono::steady_clock::now() + Seconds(10);
    while (client.ReadPacket(Seconds(1) / 2) &&
           std::chrono::steady_clock::now() < give_up) {
    }
  };
  drain(a.client);
  drain(b.client);
  // Then nothing moves for many ticks.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ExpectNothingPending(a.client, "quiet ticks, a");
  ExpectNothingPending(b.client, "quiet ticks, b");

  for (uint32_t seq = 2; seq <= 20; ++seq) {
    ASSERT_TRUE(a.Move(static_cast<float>(seq), 0, seq));
    auto snapshot = b.NextSnapshot();
    ASSERT_TRUE(snapshot.has_value());
    EXPECT_FALSE(snapshot->full);
    for (const SnapshotEntity& e : snapshot->entities) {
      EXPECT_EQ(e.session_id, a.id) << "b did not move";
    }
    // Each move is one tick's only change here: b sees it at once.
    EXPECT_TRUE(b.Sees(a.id, seq));
  }
}

// Every world member sees a move within two ticks of the server getting it.
// The client cannot see when that was, so it checks from its send: two ticks
// plus a second (three under sanitizers) for the network and the scheduler.
TEST_P(WorldTest, MovesReachEveryMemberWithinTwoTicks) {
  START_SERVER("--tick-ms", "100");
  constexpr uint32_t kPlayers = 5;
  std::vector<Player> players(kPlayers);
  for (uint32_t i = 0; i < kPlayers; ++i) {
    ASSERT_TRUE(players[i].Enter(server_.port(), 3000 + i, 30));
    ASSERT_TRUE(players[i].Move(0, 0, 1));
  }
  for (Player& p : players) {
    ASSERT_TRUE(p.ReadUntil([&](const Player& me) {
      return std::all_of(players.begin(), players.end(),
                         [&](const Player& o) { return me.Sees(o.id, 1); });
    }));
  }
  const auto bound = std::chrono::milliseconds(200) + Seconds(1);
  for (uint32_t seq = 2; seq <= 6; ++seq) {
    const auto sent = Clock::now();
    for (Player& p : players)
      ASSERT_TRUE(p.Move(0, static_cast<float>(seq), seq));
    for (Player& p : players) {
      ASSERT_TRUE(p.ReadUntil(
          [&](const Player& me) {
            return std::all_of(
                players.begin(), players.end(),
                [&](const Player& o) { return me.Sees(o.id, seq); });
          },
          bound))
          << "seq " << seq << " not seen within two ticks";
    }
    EXPECT_LE(Clock::now() - sent, bound);
  }
}

// A member that moves and leaves by C_JOIN within one tick is, for those it
// left, only gone: never shown at its last position first (docs/PROTOCOL.md:
// a member that moved and then left within one tick appears only as gone).
// One-second ticks: the two packets, in one write, fall in one tick.
TEST_P(WorldTest, AMoverLeavingByJoinWithinATickIsOnlyGone) {
  START_SERVER("--tick-ms", "1000");
  Player a, c;
  ASSERT_TRUE(a.Enter(server_.port(), 4501, 45));
  ASSERT_TRUE(c.Enter(server_.port(), 4502, 45));
  ASSERT_TRUE(a.Move(1, 1, 1));
  ASSERT_TRUE(c.Move(3, 3, 1));
  ASSERT_TRUE(a.ReadUntil(
      [&](const Player& p) { return p.Sees(a.id, 1) && p.Sees(c.id, 1); }));
  std::vector<std::byte> write = EncodePacket(kCMove, MovePayload(9, 9, 2));
  Append(write, EncodePacket(kCJoin, U32(46)));
  ASSERT_TRUE(c.client.SendAll(write));
  bool shown_moved = false;
  ASSERT_TRUE(a.ReadUntil([&](const Player& p) {
    shown_moved = shown_moved || p.Sees(c.id, 2);
    return !p.seen.contains(c.id);
  })) << "c never gone for a";
  EXPECT_FALSE(shown_moved) << "c's last move shown before it was gone";
}

TEST_P(WorldTest, GoneOnDisconnectEvenForAMoverLeavingMidTick) {
  START_SERVER("--tick-ms", "200");
  Player a, b, c;
  ASSERT_TRUE(a.Enter(server_.port(), 4001, 40));
  ASSERT_TRUE(b.Enter(server_.port(), 4002, 40));
  ASSERT_TRUE(c.Enter(server_.port(), 4003, 40));
  ASSERT_TRUE(a.Move(1, 1, 1));
  ASSERT_TRUE(b.Move(2, 2, 1));
  ASSERT_TRUE(c.Move(3, 3, 1));
  auto everyone = [&](const Player& p) {
    return p.Sees(a.id, 1) && p.Sees(b.id, 1) && p.Sees(c.id, 1);
  };
  ASSERT_TRUE(a.ReadUntil(everyone));
  ASSERT_TRUE(b.ReadUntil(everyone));

  // c moves and disconnects in one write, between two ticks: the next
  // snapshot says it is gone (never gone and present at once: NextSnapshot
  // checks that no entity is listed twice).
  ASSERT_TRUE(c.Move(9, 9, 2));
  c.client.Close();
  auto c_gone = [&](const Player& p) { return p.seen.count(c.id) == 0; };
  ASSERT_TRUE(a.ReadUntil(c_gone));
  ASSERT_TRUE(b.ReadUntil(c_gone));
  EXPECT_TRUE(a.Sees(b.id, 1) && b.Sees(a.id, 1));

  // b leaves the room: gone for a; b's new room greets it with S_JOIN and a
  // full snapshot of that room (b alone), and nothing of room 40 after.
  ASSERT_TRUE(b.client.SendPacket(kCJoin, U32(41)));
  bool joined = false;
  while (!joined) {
    auto packet = b.client.ReadPacket(Seconds(10));
    ASSERT_TRUE(packet.has_value());
    if (packet->id == kSJoin) {
      EXPECT_EQ(ReadU32(packet->payload, 0), 41u);
      joined = true;
    } else {
      ASSERT_EQ(packet->id, kSSnapshot);  // room 40's, queued before
      EXPECT_EQ(ParseSnapshot(packet->payload)->room, 40u);
    }
  }
  b.room = 41;
  auto full = b.NextSnapshot();
  ASSERT_TRUE(full.has_value());
  EXPECT_TRUE(full->full);
  ASSERT_EQ(full->entities.size(), 1u);
  EXPECT_EQ(full->entities[0].session_id, b.id);
  EXPECT_EQ(full->entities[0].last_seq, 1u) << "b keeps its position";
  auto b_gone = [&](const Player& p) { return p.seen.count(b.id) == 0; };
  ASSERT_TRUE(a.ReadUntil(b_gone));
}

// A world member that arrives by C_JOIN, without moving, is in the room's
// next delta for those already there (one entity per member that "moved or
// entered the room"), with the position and seq it had; its own first
// snapshot there is full and lists them.
TEST_P(WorldTest, AMemberArrivingByJoinIsInTheOthersNextDelta) {
  START_SERVER("--tick-ms", "20");
  Player a, b;
  ASSERT_TRUE(a.Enter(server_.port(), 9001, 90));
  ASSERT_TRUE(b.Enter(server_.port(), 9101, 91));
  ASSERT_TRUE(a.Move(1, 2, 1));
  ASSERT_TRUE(b.Move(3, 4, 5));
  ASSERT_TRUE(a.ReadUntil([&](const Player& me) { return me.Sees(a.id, 1); }));
  ASSERT_TRUE(b.ReadUntil([&](const Player& me) { return me.Sees(b.id, 5); }));
  EXPECT_FALSE(a.seen.contains(b.id));

  ASSERT_TRUE(b.client.SendPacket(kCJoin, U32(90)));
  ASSERT_TRUE(a.ReadUntil([&](const Player& me) { return me.Sees(b.id, 5); },
                          Seconds(5)))
      << "b entered room 90 and its members never saw it";
  EXPECT_FLOAT_EQ(a.seen.at(b.id).x, 3);
  EXPECT_FLOAT_EQ(a.seen.at(b.id).y, 4);
  EXPECT_FALSE(a.last_full) << "a learned of b by a delta";

  for (;;) {  // b: room 91's last snapshots, maybe, then S_JOIN
    auto packet = b.client.ReadPacket(Seconds(10));
    ASSERT_TRUE(packet.has_value());
    if (packet->id == kSJoin) break;
    ASSERT_EQ(packet->id, kSSnapshot);
  }
  b.room = 90;
  auto full = b.NextSnapshot();
  ASSERT_TRUE(full.has_value());
  EXPECT_TRUE(full->full);
  EXPECT_TRUE(b.Sees(a.id, 1) && b.Sees(b.id, 5));
}

// After each S_JOIN of a world member, its first snapshot of the new room is
// full, however busy the room; none of the old room's follows the S_JOIN.
TEST_P(WorldTest, EachJoinOfAWorldMemberStartsWithAFullSnapshot) {
  START_SERVER("--tick-ms", "5");
  Player traveller;
  ASSERT_TRUE(traveller.Enter(server_.port(), 5001, 50));
  ASSERT_TRUE(traveller.Move(0, 0, 1));
  std::vector<Player> locals(2);
  for (size_t i = 0; i < locals.size(); ++i) {
    const auto n = static_cast<uint32_t>(i);
    ASSERT_TRUE(locals[i].Enter(server_.port(), 5100 + n, 51 + n));
  }
  std::atomic<bool> stop{false};
  std::thread movers([&] {
    for (uint32_t seq = 1; !stop.load(); ++seq) {
      for (Player& p : locals) p.Move(1, static_cast<float>(seq % 100), seq);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  uint32_t seq = 1;
  for (int hop = 0; hop < 20; ++hop) {
    const uint32_t to = 50 + static_cast<uint32_t>(hop % 3);
    const uint32_t from = traveller.room;
    ASSERT_TRUE(traveller.client.SendPacket(kCJoin, U32(to)));
    ASSERT_TRUE(traveller.Move(2, 2, ++seq));
    for (;;) {
      auto packet = traveller.client.ReadPacket(Seconds(10));
      ASSERT_TRUE(packet.has_value()) << "hop " << hop;
      if (packet->id == kSJoin) break;
      ASSERT_EQ(packet->id, kSSnapshot) << "hop " << hop;
      EXPECT_EQ(ParseSnapshot(packet->payload)->room, from)
          << "hop " << hop << ": the new room's snapshot before S_JOIN";
    }
    traveller.room = to;
    traveller.last_tick = 0;
    auto first = traveller.NextSnapshot();
    ASSERT_TRUE(first.has_value());
    EXPECT_TRUE(first->full) << "hop " << hop;
    EXPECT_NE(first->Find(traveller.id), nullptr) << "itself included";
    // Read on until its own latest move shows: what follows is this room's.
    ASSERT_TRUE(traveller.ReadUntil(
        [&](const Player& p) { return p.Sees(p.id, seq); }));
  }
  stop = true;
  movers.join();
}

// Two C_JOINs in one write: the first room's stay ends before its tick.
// Its S_JOIN still owes the full snapshot (the contract: "after each S_JOIN
// of a world member"), listing the room's world with the traveller in it,
// and it comes before the next room's S_JOIN. Before, the first room sent
// nothing, and a client waiting for its full snapshot never had it.
TEST_P(WorldTest, TwoJoinsInOneWriteHaveAFullSnapshotEach) {
  START_SERVER("--tick-ms", "1000");
  Player traveller, local;
  ASSERT_TRUE(traveller.Enter(server_.port(), 6001, 60));
  ASSERT_TRUE(local.Enter(server_.port(), 6002, 61));
  ASSERT_TRUE(traveller.Move(1, 1, 1));
  ASSERT_TRUE(local.Move(5, 5, 1));
  ASSERT_TRUE(
      traveller.ReadUntil([&](const Player& p) { return p.Sees(p.id, 1); }));
  ASSERT_TRUE(
      local.ReadUntil([&](const Player& p) { return p.Sees(p.id, 1); }));

  std::vector<std::byte> write = EncodePacket(kCJoin, U32(61));
  Append(write, EncodePacket(kCJoin, U32(62)));
  ASSERT_TRUE(traveller.client.SendAll(write));
  for (const uint32_t room : {61u, 62u}) {
    std::optional<Packet> packet;
    // A snapshot of the room being left may come first.
    do {
      packet = traveller.client.ReadPacket(Seconds(10));
      ASSERT_TRUE(packet.has_value()) << "room " << room;
    } while (packet->id == kSSnapshot &&
             ParseSnapshot(packet->payload)->room != room);
    ASSERT_EQ(packet->id, kSJoin) << "room " << room;
    traveller.room = room;
    traveller.last_tick = 0;
    const auto full = traveller.NextSnapshot();
    ASSERT_TRUE(full.has_value()) << "room " << room;
    EXPECT_TRUE(full->full) << "room " << room;
    const SnapshotEntity* self = full->Find(traveller.id);
    ASSERT_NE(self, nullptr) << "room " << room << ": itself included";
    EXPECT_EQ(self->last_seq, 1u);
    EXPECT_EQ(full->Find(local.id) != nullptr, room == 61) << "room " << room;
  }
}

// An invalid C_MOVE closes the session and never enters it into the world:
// the others see nothing of it, or (if it was in) see it gone.
TEST_P(WorldTest, InvalidMovesNeverReachTheWorld) {
  START_SERVER("--tick-ms", "20");
  Player a;
  ASSERT_TRUE(a.Enter(server_.port(), 6001, 60));
  ASSERT_TRUE(a.Move(0, 0, 1));
  ASSERT_TRUE(a.ReadUntil([&](const Player& p) { return p.Sees(a.id, 1); }));
  const std::vector<std::vector<std::byte>> bad = {
      MovePayload(std::numeric_limits<float>::quiet_NaN(), 0, 1),
      MovePayload(0, -std::numeric_limits<float>::infinity(), 1),
      MovePayload(10000.01F, 0, 1),
      MovePayload(0, -10000.5F, 1),
      Bytes("\x0D\x00"),  // x cut short
  };
  for (uint32_t i = 0; i < bad.size(); ++i) {
    Player intruder;
    ASSERT_TRUE(intruder.Enter(server_.port(), 6100 + i, 60));
    ASSERT_TRUE(intruder.client.SendPacket(kCMove, bad[i]));
    EXPECT_TRUE(intruder.client.WaitForClose(Seconds(10))) << "case " << i;
    // Valid first, then invalid: in the world, then gone.
    Player turncoat;
    ASSERT_TRUE(turncoat.Enter(server_.port(), 6200 + i, 60));
    ASSERT_TRUE(turncoat.Move(5, 5, 1));
    ASSERT_TRUE(
        a.ReadUntil([&](const Player& p) { return p.Sees(turncoat.id, 1); }));
    ASSERT_TRUE(turncoat.client.SendPacket(kCMove, bad[i]));
    EXPECT_TRUE(turncoat.client.WaitForClose(Seconds(10))) << "case " << i;
    ASSERT_TRUE(a.ReadUntil(
        [&](const Player& p) { return p.seen.count(turncoat.id) == 0; }));
    EXPECT_EQ(a.seen.count(intruder.id), 0u) << "case " << i;
  }
  EXPECT_EQ(a.seen.size(), 1u);
}

// Raises the soft fd limit to the hard one (a test of thousands of clients,
// plus their server, needs more than the usual 1,024).
bool EnoughFds(rlim_t needed) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur >= needed;
}

// `count` players in room `room`, each in the world with seq `first_seq`+i;
// then every one of them must see every other at its seq. `*split_ticks`:
// how many players got a snapshot (full or delta) of some tick in more than
// one packet. Checks every `check_every`-th player, and the last ten (the
// client's own decoding is most of this test's time under sanitizers).
void CrowdedRoom(uint16_t port, size_t count, uint32_t room, uint32_t first_seq,
                 size_t check_every, size_t* split_ticks) {
  std::vector<Player> players(count);
  for (size_t i = 0; i < count; ++i) {
    Player& p = players[i];
    ASSERT_TRUE(ConnectReady(p.client, port)) << i;
    p.room = room;
    ASSERT_TRUE(Join(p.client, room).has_value()) << i;
  }
  for (size_t i = 0; i < count; ++i) {
    const auto seq = static_cast<uint32_t>(first_seq + i);
    ASSERT_TRUE(players[i].Move(static_cast<float>(i % 20000) - 9999.5F,
                                static_cast<float>(i) / 7.0F, seq));
  }
  *split_ticks = 0;
  for (size_t i = 0; i < count; ++i) {
    if (i % check_every != 0 && i + 10 < count) continue;
    Player& p = players[i];
    ASSERT_TRUE(p.ReadUntil(
        [&](const Player& me) {
          if (me.seen.size() != count) return false;
          for (const auto& [id, e] : me.seen) {
            if (e.last_seq < first_seq) return false;
          }
          return true;
        },
        Seconds(60)))
        << "player " << i << " saw " << p.seen.size() << " of " << count;
    EXPECT_LE(p.largest_packet, 65535u);
    for (const auto& [tick, packets] : p.packets) {
      if (packets > 1) {
        ++*split_ticks;
        break;
      }
    }
  }
}

TEST_P(WorldTest, ARoomOfAThousandWorldMembers) {
  if (!EnoughFds(2 * 1000 + 100)) GTEST_SKIP() << "not enough fds";
  START_SERVER("--tick-ms", "50");
  size_t split_ticks = 0;
  CrowdedRoom(server_.port(), 1000, 70, 1, 1, &split_ticks);
}

// A snapshot of 3,300 entities is more than 65535 bytes (about 21 bytes an
// entity with seqs past 2^28): the full snapshots of the last to enter, and
// the deltas of ticks in which most of them moved, come as several packets
// of one tick, and every member still sees every move. Ticks of a second,
// so the moves land in few of them.
TEST_P(WorldTest, SnapshotsPast65535BytesAreSplit) {
  constexpr size_t kPlayers = 3300;
  if (!EnoughFds(2 * kPlayers + 100)) GTEST_SKIP() << "not enough fds";
  START_SERVER("--tick-ms", "1000");
  size_t split_ticks = 0;
  CrowdedRoom(server_.port(), kPlayers, 80, 0xF0000000u, 25, &split_ticks);
  EXPECT_GT(split_ticks, 0u) << "no snapshot was split";
}

INSTANTIATE_TEST_SUITE_P(Backends, WorldTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

}  // namespace
}  // namespace servercore::test
