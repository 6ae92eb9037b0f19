// WorldChecker: every rule DummyClient --mode move checks of the snapshots a
// session gets (docs/PROTOCOL.md "The world", "Ticks", "Snapshots"), fed by
// hand, with no socket and no clock.
#include "apps/dummy_client/world_checker.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>

namespace game {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kT0 = 1'000'000 * kMs;  // any monotonic origin
constexpr uint64_t kSelf = 7;             // the id the server gave us
constexpr uint64_t kOther = 8;
constexpr uint32_t kIndex = 3;  // our DummyClient session index

struct Ent {
  uint64_t id;
  uint32_t seq;
  bool gone = false;
};

class WorldCheckerTest : public ::testing::Test {
 protected:
  // An entity as the server shows it: ours at the position of its seq.
  static void Fill(pb::Entity* e, const Ent& spec) {
    e->set_session_id(spec.id);
    e->set_last_seq(spec.seq);
    e->set_gone(spec.gone);
    if (spec.gone) return;
    const MovePath path(spec.id == kSelf ? kIndex : kIndex + 1);
    const Position p = path.At(spec.seq);
    e->set_x(p.x);
    e->set_y(p.y);
  }

  void Snap(uint32_t room, uint64_t tick, bool full,
            std::initializer_list<Ent> entities, int64_t at = kT0) {
    pb::S_SNAPSHOT s;
    s.set_room(room);
    s.set_tick(tick);
    s.set_full(full);
    for (const Ent& e : entities) Fill(s.add_entities(), e);
    checker_.OnSnapshot(s, 4 + s.ByteSizeLong(), at);
  }

  // Joins `room` (unless 0), enters the world with move 1 and gets the full
  // snapshot.
  void Enter(uint32_t room = 0, uint64_t tick = 10) {
    if (room != 0) checker_.OnJoined(room);
    checker_.OnMoveSent(1, kT0);
    Snap(room, tick, true, {{kSelf, 1}, {kOther, 4}}, kT0 + 10 * kMs);
  }

  WorldStats stats_;
  LatencyHistogram latency_;
  WorldChecker checker_{
      WorldCheckerOptions{.tick_ns = 50 * kMs, .grace_ns = 100 * kMs},
      MovePath(kIndex), stats_, latency_};
};

TEST_F(WorldCheckerTest, AGoodRunBreaksNoRule) {
  Enter();
  EXPECT_TRUE(checker_.knows_self());
  EXPECT_EQ(checker_.self_id(), kSelf);
  checker_.OnMoveSent(2, kT0 + 100 * kMs);
  checker_.OnMoveSent(3, kT0 + 110 * kMs);
  Snap(0, 12, false, {{kSelf, 3}, {kOther, 6}}, kT0 + 150 * kMs);
  Snap(0, 12, false, {{kOther, 7}});  // the rest of a split snapshot
  Snap(0, 15, false, {{kOther, 9, true}});
  checker_.Finish();
  EXPECT_EQ(stats_.Violations(), 0u);
  EXPECT_EQ(checker_.pending_moves(), 0u);
  EXPECT_EQ(stats_.snapshots, 4u);
  EXPECT_EQ(stats_.full_snapshots, 1u);
  EXPECT_EQ(stats_.entities, 6u);
  EXPECT_GT(stats_.snapshot_bytes, 4u * 4);
  EXPECT_EQ(stats_.moves_reflected, 3u);
  EXPECT_EQ(latency_.Count(), 3u);
  EXPECT_EQ(LatencyHistogram::BucketOf(latency_.Max()),
            LatencyHistogram::BucketOf(50 * kMs));  // move 2
}

TEST_F(WorldCheckerTest, TypedPacketsBeforeTheFirstMoveAreUnsolicited) {
  EXPECT_TRUE(checker_.AcceptTyped(pb::PACKET_ID_S_PONG));
  EXPECT_TRUE(checker_.AcceptTyped(pb::PACKET_ID_S_BYE));
  EXPECT_EQ(stats_.unsolicited, 0u);
  EXPECT_FALSE(checker_.AcceptTyped(1004));
  Snap(0, 1, true, {{kOther, 1}});
  EXPECT_EQ(stats_.unsolicited, 2u);
  EXPECT_FALSE(checker_.in_world());
  Enter();
  EXPECT_TRUE(checker_.AcceptTyped(pb::PACKET_ID_S_SNAPSHOT));
  EXPECT_EQ(stats_.Violations(), 2u);
}

TEST_F(WorldCheckerTest, FirstSnapshotInTheWorldMustBeFull) {
  checker_.OnMoveSent(1, kT0);
  Snap(0, 10, false, {{kSelf, 1}});
  Snap(0, 11, true, {{kSelf, 1}});  // too late to count
  checker_.Finish();
  EXPECT_EQ(stats_.not_full_first, 1u);
  EXPECT_EQ(stats_.Violations(), 1u);
}

TEST_F(WorldCheckerTest, FullSnapshotMustListTheSessionItself) {
  checker_.OnMoveSent(1, kT0);
  Snap(0, 10, true, {{kOther, 4}});
  EXPECT_EQ(stats_.not_full_first, 0u) << "a split snapshot may go on";
  Snap(0, 11, false, {{kSelf, 1}});
  EXPECT_EQ(stats_.not_full_first, 1u);
  EXPECT_TRUE(checker_.knows_self()) << "found in the delta";
  EXPECT_EQ(stats_.Violations(), 1u);
}

TEST_F(WorldCheckerTest, FullSnapshotWithoutSelfIsCaughtAtTheEndToo) {
  checker_.OnMoveSent(1, kT0);
  Snap(0, 10, true, {{kOther, 4}});
  checker_.Finish();
  EXPECT_EQ(stats_.not_full_first, 1u);
}

TEST_F(WorldCheckerTest, SplitFullSnapshotMayListSelfInALaterPacket) {
  checker_.OnMoveSent(1, kT0);
  Snap(0, 10, true, {{kOther, 4}});
  Snap(0, 10, true, {{kOther + 1, 2}});
  Snap(0, 10, true, {{kSelf, 1}});
  Snap(0, 11, false, {{kOther, 5}});
  checker_.Finish();
  EXPECT_EQ(stats_.Violations(), 0u);
  EXPECT_EQ(stats_.full_snapshots, 3u);
}

TEST_F(WorldCheckerTest, SplitFullSnapshotWithoutSelfAnywhereIsCaught) {
  checker_.OnMoveSent(1, kT0);
  Snap(0, 10, true, {{kOther, 4}});
  Snap(0, 10, true, {{kOther + 1, 2}});
  Snap(0, 12, true, {{kSelf, 1}});  // another tick: another snapshot
  checker_.Finish();
  EXPECT_EQ(stats_.not_full_first, 1u);
}

TEST_F(WorldCheckerTest, EachJoinInTheWorldWantsAFullSnapshotFirst) {
  Enter(0);
  checker_.OnJoined(5);
  Snap(5, 3, true, {{kSelf, 1}, {kOther, 4}});
  checker_.OnJoined(6);
  Snap(6, 30, false, {{kSelf, 1}});
  EXPECT_EQ(stats_.not_full_first, 1u);
  EXPECT_EQ(stats_.Violations(), 1u);
}

TEST_F(WorldCheckerTest, JoinsBeforeTheWorldWantNoFullSnapshot) {
  Enter(5);  // --room-size: C_JOIN right after connecting
  Snap(5, 11, false, {{kSelf, 1}});
  checker_.Finish();
  EXPECT_EQ(stats_.Violations(), 0u);
}

TEST_F(WorldCheckerTest, TickNeverDecreasesWithinARoom) {
  Enter(0, 10);
  Snap(0, 10, false, {{kOther, 5}});  // equal: a split or repeated tick
  Snap(0, 12, false, {{kOther, 6}});
  Snap(0, 11, false, {{kOther, 7}});
  EXPECT_EQ(stats_.tick_back, 1u);
  Snap(0, 11, false, {{kOther, 8}});  // still below 12
  EXPECT_EQ(stats_.tick_back, 2u);
  Snap(0, 13, false, {{kOther, 9}});
  EXPECT_EQ(stats_.tick_back, 2u);
}

TEST_F(WorldCheckerTest, FullSnapshotMayRepeatTheLatestDeltaTick) {
  checker_.OnJoined(1);
  checker_.OnMoveSent(1, kT0);
  Snap(1, 20, true, {{kSelf, 1}});
  Snap(1, 21, false, {{kOther, 1}});
  checker_.OnJoined(2);  // another room counts its own ticks
  Snap(2, 4, true, {{kSelf, 1}});
  Snap(2, 4, false, {{kOther, 2}});
  checker_.Finish();
  EXPECT_EQ(stats_.Violations(), 0u);
}

TEST_F(WorldCheckerTest, OwnLastSeqNeverGoesBack) {
  Enter();
  checker_.OnMoveSent(2, kT0 + 1 * kMs);
  checker_.OnMoveSent(3, kT0 + 2 * kMs);
  Snap(0, 11, false, {{kSelf, 3}}, kT0 + 20 * kMs);
  Snap(0, 12, false, {{kSelf, 2}}, kT0 + 30 * kMs);
  EXPECT_EQ(stats_.own_seq_back, 1u);
  checker_.OnJoined(4);  // not even across a join
  Snap(4, 1, true, {{kSelf, 2}}, kT0 + 40 * kMs);
  EXPECT_EQ(stats_.own_seq_back, 2u);
  EXPECT_EQ(stats_.Violations(), 2u);
}

TEST_F(WorldCheckerTest, OwnLastSeqAboveAnySentIsCaught) {
  Enter();
  Snap(0, 11, false, {{kSelf, 1}, {kSelf, 2}});
  EXPECT_EQ(stats_.future_seq, 1u);
}

TEST_F(WorldCheckerTest, OthersLastSeqNeverGoesBackUnlessGoneInBetween) {
  Enter();                            // kOther at 4
  Snap(0, 11, false, {{kOther, 3}});  // back
  EXPECT_EQ(stats_.seq_back, 1u);
  Snap(0, 12, false, {{kOther, 4}});
  Snap(0, 13, false, {{kOther, 0, true}});  // gone: it may come back lower
  Snap(0, 14, false, {{kOther, 1}});
  Snap(0, 15, false, {{99, 0, true}});  // never seen: fine
  EXPECT_EQ(stats_.seq_back, 1u);
  checker_.OnJoined(3);  // the old room's members are forgotten
  Snap(3, 1, true, {{kSelf, 1}, {kOther, 0}});
  EXPECT_EQ(stats_.Violations(), 1u);
}

TEST_F(WorldCheckerTest, MovesReflectedLaterThanTwoTicksAndTheGraceAreLate) {
  Enter();
  // Two ticks are 100 ms, the grace 100 ms more.
  checker_.OnMoveSent(2, kT0 + 1000 * kMs);
  Snap(0, 11, false, {{kSelf, 2}}, kT0 + 1090 * kMs);  // in time
  checker_.OnMoveSent(3, kT0 + 2000 * kMs);
  Snap(0, 12, false, {{kSelf, 3}}, kT0 + 2150 * kMs);  // past 2 ticks only
  checker_.OnMoveSent(4, kT0 + 3000 * kMs);
  checker_.OnMoveSent(5, kT0 + 3200 * kMs);
  Snap(0, 13, false, {{kSelf, 5}}, kT0 + 3350 * kMs);  // 4 late, 5 not
  EXPECT_EQ(stats_.over_two_ticks, 2u);
  EXPECT_EQ(stats_.late, 1u);
  EXPECT_EQ(stats_.worst_late_ns, static_cast<uint64_t>(350 * kMs));
  EXPECT_EQ(stats_.Violations(), 1u);
  EXPECT_EQ(checker_.pending_moves(), 0u);
}

TEST_F(WorldCheckerTest, UnreflectedMovesStayPending) {
  Enter();
  checker_.OnMoveSent(2, kT0 + 1 * kMs);
  Snap(0, 11, false, {{kOther, 5}});
  EXPECT_EQ(checker_.pending_moves(), 1u);
}

TEST_F(WorldCheckerTest, SnapshotsOfTheRoomBeingLeftMayComeUntilSJoin) {
  Enter(1);
  // C_JOIN(2) is on its way: room 1 may still speak, room 2 may not yet.
  Snap(1, 11, false, {{kOther, 5}});
  EXPECT_EQ(stats_.wrong_room, 0u);
  Snap(2, 3, true, {{kSelf, 1}});
  EXPECT_EQ(stats_.wrong_room, 1u);
  checker_.OnJoined(2);
  Snap(1, 12, false, {{kOther, 6}});  // after S_JOIN: no more of room 1
  EXPECT_EQ(stats_.wrong_room, 2u);
  Snap(2, 3, true, {{kSelf, 1}});
  checker_.Finish();
  EXPECT_EQ(stats_.Violations(), 2u);
}

TEST_F(WorldCheckerTest, AnEntityGoneAndPresentInOneSnapshotIsCaught) {
  Enter();
  Snap(0, 11, false, {{kOther, 5}, {kOther, 0, true}});
  EXPECT_EQ(stats_.gone_and_present, 1u);
  Snap(0, 12, false, {{kOther + 1, 0, true}, {kOther + 1, 2}});
  EXPECT_EQ(stats_.gone_and_present, 2u);
  Snap(0, 13, false, {{kOther + 2, 0, true}});
  Snap(0, 14, false, {{kOther + 2, 3}});  // another snapshot: fine
  EXPECT_EQ(stats_.gone_and_present, 2u);
}

}  // namespace
}  // namespace game
