// WorldChecker: what one DummyClient session checks of the world
// (docs/PROTOCOL.md "The world", "Ticks", "Snapshots") in --mode move. It is
// told what the session sent (OnMoveSent), the rooms it joined (OnJoined)
// and every typed packet and snapshot it got, with the time, and counts each
// rule broken in WorldStats:
//
//   unsolicited      a packet of id >= 1000 other than S_PONG (and S_BYE,
//                    which a disconnection follows) before the first C_MOVE;
//   not_full_first   on entering the world and after each S_JOIN while in
//                    it, the first snapshot of the room is not full, or the
//                    full snapshot (all its packets: those sharing its tick)
//                    does not list the session itself;
//   missing_in_full  (with a MoveLog) a full snapshot that does not list a
//                    member of the room on this session's server (of the
//                    same --hosts entry) whose first C_MOVE was sent more
//                    than two ticks plus the grace before the snapshot came:
//                    a full snapshot lists every world member of the room;
//   tick_back        `tick` smaller than an earlier one of the same room
//                    since the last S_JOIN (equal is fine: the packets of a
//                    split snapshot share it, and a full snapshot may repeat
//                    the latest delta's);
//   own_seq_back     the session's own entity's last_seq going back;
//   seq_back         another member's last_seq going back with no `gone`
//                    for it in between (a member of this run, with a
//                    MoveLog: an entity of another client may send any seq);
//   future_seq       the own entity's last_seq above any seq sent;
//   late             a move reflected (own last_seq >= its seq) more than
//                    two ticks plus the grace after it was sent;
//   wrong_room       a snapshot whose room is not the session's room (the
//                    one of its last S_JOIN; while a C_JOIN is on its way
//                    that is still the room being left, whose snapshots may
//                    still come);
//   gone_and_present one snapshot packet listing an entity both gone and
//                    not gone;
//   empty_delta      a snapshot that is not full and lists no entity (a
//                    tick with no change sends nothing);
//   wrong_position   the session's own entity, or another member of this
//                    run's once known by its id, not where its move of that
//                    last_seq put it;
//   peer_late        (with a MoveLog) a move of another member of the room
//                    shown to this session more than two ticks plus the
//                    grace after it was sent (or after this session entered
//                    the world, if later); plus --remote-grace-ms when the
//                    mover is on another node (its session id's top 16 bits,
//                    the node id, differ from ours).
//
// Peers (with a MoveLog): the other members of the room, by DummyClient
// index, are known in advance (room_first, room_count); an entity is told to
// be one of them by its position, as the session tells itself, whatever
// server or node it is on. Each member's moves must all show to this session
// by the end of the run: pending_moves() counts them with its own.
//
// Ticks: with tick_ns 0 (DummyClient without --tick-ms) the period two ticks
// are counted in is learned from the snapshots (TickClock); a move shown
// before the period is known is judged once it is, or at the end in the
// best period measured. With no measure at all by then (fewer than two
// deltas seen: a long tick, a short run) it is not judged, and counted so
// (not_judged): an unknown period is no ground for an error.
//
// The session recognises itself by position: the entity whose (x, y) is
// where MovePath puts the session at that entity's last_seq; from then on,
// by that entity's id. Move-to-snapshot latency (the send time of seq n to
// the first snapshot with own last_seq >= n) goes into the histogram.
//
// Thread safety: a WorldChecker is not thread-safe (its session locks
// around it); WorldStats' counters and the histogram may be shared by all.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_WORLD_CHECKER_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_WORLD_CHECKER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "game.pb.h"
#include "latency_histogram.h"
#include "move_log.h"
#include "move_path.h"
#include "tick_clock.h"

namespace game {

struct WorldStats {
  // Figures.
  std::atomic<uint64_t> snapshots{0};  // S_SNAPSHOT packets
  std::atomic<uint64_t> snapshot_bytes{0};
  std::atomic<uint64_t> entities{0};  // Entity entries in them
  std::atomic<uint64_t> full_snapshots{0};
  std::atomic<uint64_t> moves_reflected{0};
  std::atomic<uint64_t> over_two_ticks{0};  // reflected after 2 ticks, in grace
  std::atomic<uint64_t> worst_late_ns{0};   // the slowest of the late moves
  // Other members' moves shown to this session (each move counted once per
  // member that saw it), those after two ticks within the grace, and the
  // slowest of the late ones.
  std::atomic<uint64_t> peer_moves_seen{0};
  std::atomic<uint64_t> peer_over_two_ticks{0};
  std::atomic<uint64_t> worst_peer_late_ns{0};
  // The tick period learned from the snapshots (the slowest any session
  // learned), 0 if none did or --tick-ms was given.
  std::atomic<uint64_t> learned_tick_ns{0};
  // The median of the sessions' learned periods, set at the end (report).
  std::atomic<uint64_t> median_tick_ns{0};
  // Moves shown that were never judged: no tick period was ever measured.
  std::atomic<uint64_t> not_judged{0};
  // Rules broken (see the file comment).
  std::atomic<uint64_t> unsolicited{0};
  std::atomic<uint64_t> not_full_first{0};
  std::atomic<uint64_t> missing_in_full{0};
  std::atomic<uint64_t> tick_back{0};
  std::atomic<uint64_t> own_seq_back{0};
  std::atomic<uint64_t> seq_back{0};
  std::atomic<uint64_t> future_seq{0};
  std::atomic<uint64_t> late{0};
  std::atomic<uint64_t> wrong_room{0};
  std::atomic<uint64_t> gone_and_present{0};
  std::atomic<uint64_t> empty_delta{0};
  std::atomic<uint64_t> wrong_position{0};
  std::atomic<uint64_t> peer_late{0};

  uint64_t Violations() const noexcept {
    return unsolicited + not_full_first + missing_in_full + tick_back +
           own_seq_back + seq_back + future_seq + late + wrong_room +
           gone_and_present + empty_delta + wrong_position + peer_late;
  }
};

// The contract's default tick (docs/PROTOCOL.md "Ticks"): the period moves
// are judged in when it is neither given nor learned.
inline constexpr int64_t kDefaultTickNs = 50'000'000;

struct WorldCheckerOptions {
  int64_t tick_ns = kDefaultTickNs;  // the server's --tick-ms; 0: learn it
  int64_t grace_ns = 500'000'000;    // allowed beyond two ticks
  int64_t remote_grace_ns = 0;       // and more for a mover on another node
  // Peers: this session's index, and the other members of its room
  // (indices room_first to room_first + room_count - 1, itself among them)
  // whose moves `moves` logs. No peer checks when `moves` is null.
  uint32_t self_index = 0;
  uint32_t room_first = 0;
  uint32_t room_count = 0;
  const MoveLog* moves = nullptr;
  // The run's first path number: session i walks MovePath(path_base + i).
  // Drawn at each start, so that two DummyClients in one room never walk
  // the same paths and take each other's entities for their own
  // (path_base + sessions stays below 2^32).
  uint32_t path_base = 0;
  // The run's --hosts entries: sessions are dealt out to them in turn
  // (HostOf). A full snapshot is checked for the members on this session's
  // server only: one on another node of a cluster may come a delta later.
  size_t hosts = 1;
};

class WorldChecker {
 public:
  WorldChecker(const WorldCheckerOptions& options, const MovePath& path,
               WorldStats& stats, LatencyHistogram& latency)
      : options_(options),
        path_(path),
        stats_(stats),
        latency_(latency),
        peer_seen_(options.moves != nullptr ? options.room_count : 0) {}

  // The session sent C_MOVE number `seq` (1, 2, …) at `now_ns`; the first
  // enters the world.
  void OnMoveSent(uint32_t seq, int64_t now_ns);
  // S_JOIN for `room` arrived.
  void OnJoined(uint32_t room);
  // A packet of id >= 1000 arrived: false (counted as unsolicited) if the
  // session may not get it yet.
  bool AcceptTyped(uint16_t id);
  // An S_SNAPSHOT of `bytes` bytes, the header included, arrived at `now_ns`.
  void OnSnapshot(const pb::S_SNAPSHOT& snapshot, size_t bytes, int64_t now_ns);
  // The run is over: a full snapshot still being read is checked.
  void Finish();

  bool in_world() const noexcept { return in_world_; }
  // Moves sent and not reflected yet: this session's own, and with peers
  // those the other members sent and this session has not seen.
  size_t pending_moves() const noexcept;
  // The rules this checker found broken so far (all counters together).
  uint64_t violations() const noexcept { return violations_; }
  bool knows_self() const noexcept { return self_known_; }
  // The tick period moves are judged in now: tick_ns, or the learned one;
  // nullopt before any is measured.
  std::optional<int64_t> tick_ns() const noexcept;
  uint64_t self_id() const noexcept { return self_id_; }

 private:
  struct SentMove {
    uint32_t seq;
    int64_t sent_ns;
  };

  // What a Shown is: a move of the session's own or of another member
  // shown after latency_ns, or a member left out of a full snapshot that
  // had entered the world latency_ns before it came.
  enum class ShownKind : uint8_t { kOwn, kPeer, kMissing };
  // Judged against two ticks plus the grace and `extra_grace_ns`.
  struct Shown {
    int64_t latency_ns;
    int64_t extra_grace_ns;
    ShownKind kind;
  };
  // Shown moves waiting for the tick period to be learned; past this many
  // they are judged in the best period measured so far or, with none yet,
  // only the latest of them are kept (a heap by lateness beyond the
  // grace), the others counted as not judged.
  static constexpr size_t kMaxUnjudged = 4096;
  // As the heap's order: its front is the least late kept.
  static bool LaterThan(const Shown& a, const Shown& b) noexcept {
    return a.latency_ns - a.extra_grace_ns > b.latency_ns - b.extra_grace_ns;
  }

  // What is known of another entity: its last_seq, and which member of
  // the room it is (kNotPeer: none of ours, or peers not checked).
  struct Other {
    uint32_t seq;
    uint32_t peer;
  };
  static constexpr uint32_t kNotPeer = ~uint32_t{0};

  void Violate(std::atomic<uint64_t>& counter);
  void CloseFullRun();
  // The members on this session's server that the full snapshot just read
  // left out, each judged by how long before it came it entered the world.
  void CheckFullListsMembers();
  bool IsSelf(const pb::Entity& entity) const;
  void OnOwnSeq(uint32_t seq, int64_t now_ns);
  void OnOtherSeq(const pb::Entity& entity, int64_t now_ns);
  // The slot in peer_seen_ of the member at `entity`'s position, or kNotPeer.
  uint32_t FindPeer(const pb::Entity& entity) const;
  void OnPeerSeq(uint32_t peer, uint64_t id, uint32_t seq, int64_t now_ns);
  // Judges `shown` now if the period is known, else later.
  void OnShown(const Shown& shown);
  void Judge(const Shown& shown, int64_t tick_ns);
  void JudgeUnjudged();

  const WorldCheckerOptions options_;
  const MovePath path_;
  WorldStats& stats_;
  LatencyHistogram& latency_;

  bool in_world_ = false;
  uint32_t room_ = 0;
  uint32_t last_sent_ = 0;
  uint32_t own_seq_ = 0;
  bool self_known_ = false;
  uint64_t self_id_ = 0;
  // A full snapshot is due as the room's first, or being read.
  bool need_full_ = false;
  bool in_full_ = false;
  uint64_t full_tick_ = 0;
  bool self_in_full_ = false;
  int64_t full_arrived_ns_ = 0;
  // With peers: which members (by index - room_first) the full snapshot
  // being read listed.
  std::vector<bool> peer_in_full_;
  bool have_tick_ = false;
  uint64_t last_tick_ = 0;
  std::deque<SentMove> pending_;
  TickClock tick_clock_;
  std::vector<Shown> unjudged_;
  // Other entities' last_seq, until their `gone` or our next S_JOIN.
  std::unordered_map<uint64_t, Other> others_;
  // With peers: the first C_MOVE's send time, and the highest seq seen of
  // each member of the room (by index - room_first).
  int64_t entered_ns_ = 0;
  std::vector<uint32_t> peer_seen_;
  uint64_t violations_ = 0;
};

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_WORLD_CHECKER_H_
