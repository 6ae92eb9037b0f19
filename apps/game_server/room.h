// Room: one chat room and its world (docs/PROTOCOL.md "Packet ids" and "The
// world"), a JobQueue. Joins, leaves, chats, moves and ticks are jobs of the
// room, run one at a time in push order, so no lock guards a room's state:
// sessions push jobs from their workers (DoAsync) and never wait on the room.
//
// Ordering rules and how the jobs keep them:
// - A session's packets to its room are pushed by its worker in the order
//   they arrived, and one queue runs them in that order: per-sender chat
//   order.
// - At accept, before its socket is read, the session's first Join is pushed
//   to room 0 (kInitial, no S_JOIN): a client whose connect returned is in
//   room 0 before a later connection's chat is pushed there.
// - C_JOIN hands over between two queues. The worker pushes Leave to the old
//   room, then Join (kAnnounced) to the new one. The new room holds the
//   session as pending: what the room sends it meanwhile is kept back. The
//   old room's Leave, once it has removed the session, and so after every
//   packet the old room ever queued to it, pushes Confirm to the new room.
//   Join and Confirm both in (either order), the new room sends S_JOIN,
//   then what it kept back; the full snapshot of a session in the world
//   follows at the next tick.
//   So no packet of the old room follows the S_JOIN, and none of the new
//   room precedes it. Join pushed again before the hand-over ends chains: a
//   pending member told to leave finishes its S_JOIN, then confirms onwards.
//
// The world. A session enters it with its first C_MOVE and keeps its position
// across rooms (the worker carries it, WorldPosition). A member that entered,
// moved, left or disconnected since the room's last tick is noted; the tick
// job (every WorldOptions::tick, armed while the room has world members)
// turns the notes into one S_SNAPSHOT, split at 65535 bytes by
// SnapshotEncoder, encoded once and queued to every active world member.
// Who entered the world or joined again while in it since the last tick
// gets, before that delta, a full snapshot: one list encoded for all of
// them. A tick with nothing noted sends nothing. Tick numbers count periods
// since WorldOptions::epoch, so they grow across a room's lifetimes too.
//
// Rooms across nodes (docs/CLUSTER.md), when WorldOptions::cluster is set.
// Chat publishes the S_CHAT once; a tick publishes its own members' changes
// once (kDelta) before snapshotting; RemoteChat queues one buffer built by
// the link to every member; RemoteWorld keeps the other nodes' world members
// of this room (remote_), whose changes join the next local tick's snapshot
// and whose members the full snapshots list. Every node ticks on the same
// wall-clock grid: it publishes its moves at each grid point and snapshots
// a little later (SnapshotDelay, at most 10 ms), so a move reaches the
// other nodes' members in the same tick as this node's, not one later. S_JOIN
// counts add the other nodes' sessions as their presence says
// (ClusterLink::RemoteCount).
//
// Thread safety: the jobs run on whichever thread executes the queue, one at
// a time; call them only through DoAsync. members() and id() from any thread.
// Ownership: a room holds a SessionRef to each member until it leaves, and
// borrows `stats`, which must outlive it.
#ifndef SERVERCORE_APPS_GAME_SERVER_ROOM_H_
#define SERVERCORE_APPS_GAME_SERVER_ROOM_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "game.pb.h"
#include "servercore/job_queue.h"
#include "servercore/send_buffer.h"
#include "servercore/session.h"
#include "world_stats.h"

namespace game {

class ClusterLink;
class GameSession;

struct WorldOptions {
  std::chrono::milliseconds tick{50};
  // Tick numbers count periods from here, and a room's ticks fall on the
  // grid epoch + k * tick (on a cluster, each snapshot a little after its
  // grid point: Room::SnapshotDelay). GameServer puts every node's epoch at
  // the Unix epoch (WallClockEpoch), so the nodes' ticks coincide.
  std::chrono::steady_clock::time_point epoch =
      std::chrono::steady_clock::now();
  // False only to measure the naive design: each receiver's snapshot encoded
  // for it alone (docs/BENCHMARKS.md).
  bool shared_snapshots = true;
  // Set on a node of a cluster: the link (which outlives every room) and
  // this node's id.
  ClusterLink* cluster = nullptr;
  uint16_t node_id = 0;
  // How often a room of a cluster publishes its whole world state again
  // while other nodes have sessions in it (Room::Refresh).
  std::chrono::milliseconds state_refresh{2000};
};

// The steady_clock time at which the wall clock read the Unix epoch, as
// the clocks stand now: for WorldOptions::epoch, a grid of ticks (and tick
// numbers, Unix time / tick) that every node whose clock is synchronized
// shares.
std::chrono::steady_clock::time_point WallClockEpoch();

// A session's place in the world, as its worker last saw it.
struct WorldPosition {
  bool in_world = false;
  float x = 0;
  float y = 0;
  uint32_t seq = 0;
};

// What Room::Relay does after its packet.
enum class RelayAfter : uint8_t {
  kNothing,
  kProtocolError,  // close the session (its protocol error, deferred)
  kPeerClosed,     // close the session (its peer's end of stream, deferred)
};

enum class JoinKind : uint8_t {
  kInitial,    // at accept: a member at once, no S_JOIN
  kAnnounced,  // after C_JOIN: pending until the old room confirms
};

class Room final : public servercore::JobQueue {
 public:
  Room(uint32_t id, const WorldOptions& options, WorldStats& stats);
  ~Room() override;

  uint32_t id() const noexcept { return id_; }

  // Jobs. `serial` names one stay of a session in a room (the worker counts
  // its joins), so a leave or confirm finds the right one even when a session
  // rejoins the room it is leaving.
  void Join(std::shared_ptr<GameSession> session, uint32_t serial,
            WorldPosition position, JoinKind kind);
  // `next` (null on disconnect) gets Confirm(session_id, next_serial) once the
  // session is out of this room.
  void Leave(uint64_t session_id, uint32_t serial, std::shared_ptr<Room> next,
             uint32_t next_serial);
  void Confirm(uint64_t session_id, uint32_t serial);
  void Chat(uint64_t sender, servercore::SendBufferRef packet);
  void Move(uint64_t session_id, WorldPosition position);
  // The session's own reply (or close), in order after its earlier jobs:
  // held like the room's packets while the session is pending.
  void Relay(uint64_t session_id, servercore::SendBufferRef packet,
             RelayAfter after);
  // Cluster jobs, pushed by the ClusterLink. An S_CHAT from another node;
  // a kDelta or kState message from another node (cluster_wire.h); every
  // member of a node that died goes; this node's world members of the room
  // to the others (kState), asking for theirs when `want_reply`.
  void RemoteChat(servercore::SendBufferRef packet);
  void RemoteWorld(std::string message);
  void DropNode(uint16_t node);
  void PublishState(bool want_reply);
  // The room's first job on a node of a cluster: publishes its (empty)
  // state asking for the others', and until the nodes that have sessions
  // here have answered (or kSyncTimeout passed) keeps its S_JOINs back, so
  // the full snapshot after one lists the remote members too. Arms Refresh.
  void StartSync();

 private:
  struct Member {
    std::shared_ptr<GameSession> session;
    uint64_t id = 0;
    uint32_t serial = 0;
    WorldPosition position;
    bool noted = false;        // in noted_ since the last tick
    bool wants_full = false;   // in full_wanted_ since the last tick
    bool unpublished = false;  // in unpublished_ since the last publish
  };
  // A member between its Join and the old room's Confirm.
  struct Pending {
    Member member;
    std::vector<servercore::SendBufferRef> held;  // sent once announced
    bool leaving = false;   // a Leave came first: announce, then go on
    bool deferred = false;  // confirmed, its S_JOIN kept back by a sync
    // A deferred close (kProtocolError, kPeerClosed), after `held`.
    RelayAfter close_after = RelayAfter::kNothing;
    std::shared_ptr<Room> next;
    uint32_t next_serial = 0;
  };

  // One stay of a session here: its id and join serial.
  struct Stay {
    uint64_t id;
    uint32_t serial;
    bool operator==(const Stay&) const = default;
  };
  struct StayHash {
    size_t operator()(const Stay& stay) const noexcept {
      return std::hash<uint64_t>{}(stay.id ^ (uint64_t{stay.serial} << 40));
    }
  };

  // Every lookup is a hash lookup and the count is the size of a map: a
  // client that pipelines thousands of C_JOINs to one room leaves as many
  // pending stays here, and no job may cost in proportion to them.
  Member* FindCurrent(uint64_t session_id);
  size_t FindPending(uint64_t session_id, uint32_t serial) const;
  bool HasCurrent(uint64_t session_id) const;
  uint32_t MemberCount(const Pending& announced) const;
  void AddActive(Member member);
  void RemoveActive(size_t index);
  size_t AddPending(Member member);
  void MarkLeaving(size_t pending_index);
  Pending TakePending(size_t pending_index);
  void CountStay(uint64_t session_id);
  void UncountStay(uint64_t session_id);
  void Announce(size_t pending_index);
  void AnnounceOrDefer(size_t pending_index);
  // A Relay's close, once what came before it is sent.
  static void CloseAfter(GameSession& session, RelayAfter after);
  void EndSync();
  void Entered(Member& member);
  void Gone(const Member& member);
  // The other nodes told that the session left the room here.
  void PublishGone(uint64_t session_id);
  void GoneFromOlder(uint64_t session_id);
  void Note(Member& member);
  void WantFull(Member& member);
  void SendFulls();
  void SendFullOnLeaving(Member& member);
  // Fills world_ with every world member of the room, pending stays and
  // other nodes' members included: what a full snapshot lists.
  void ListWorld();
  void Tick();
  // On a cluster: this node's moves since the last grid point, to the other
  // nodes (kDelta), on the grid itself, SnapshotDelay before the snapshots
  // of every node's tick, which then include them.
  void PublishTick();
  std::chrono::milliseconds SnapshotDelay() const;
  void StartTicking();
  void StopTicking();
  uint64_t TickNumber(std::chrono::steady_clock::time_point now) const;
  // Remote members.
  struct RemoteMember {
    WorldPosition position;
    bool noted = false;  // in remote_noted_ since the last tick
  };
  bool IsLocal(uint64_t session_id) const noexcept;
  void SetRemote(uint64_t id, const WorldPosition& position, bool only_changes);
  void EraseRemote(uint64_t id);
  void PublishLocalDelta();
  // Every WorldOptions::state_refresh: repairs what messages lost between
  // the nodes left wrong (cluster drops are counted, never resent). This
  // room's state goes out again, replacing what the others hold of its
  // members (a lost leave, a lost entry); remote members of a node whose
  // presence has not listed this room for a whole period, silent here
  // meanwhile, go (a node that left, or one never heard of).
  void Refresh();
  // One entity of a snapshot.
  struct EntityState {
    uint64_t id;
    WorldPosition position;
    bool gone;
  };
  // An S_CHAT to every member, and held for every pending one.
  void Broadcast(const servercore::SendBufferRef& packet);
  void Encode(const std::vector<EntityState>& entities, bool full,
              std::vector<servercore::SendBufferRef>& parts);
  void Deliver(GameSession& to,
               const std::vector<servercore::SendBufferRef>& parts,
               size_t entities, bool full);

  const uint32_t id_;
  const WorldOptions options_;
  WorldStats& stats_;

  std::vector<Member> members_;  // active: receive the room's packets
  std::unordered_map<uint64_t, size_t> index_;  // session id -> members_
  std::vector<Pending> pending_;
  // Where each pending stay is in pending_; each session's current one
  // (not leaving: a session has at most one).
  std::unordered_map<Stay, size_t, StayHash> pending_at_;
  std::unordered_map<uint64_t, size_t> current_pending_;
  // Stays here (active and pending) per session: the sessions in the room,
  // each once, as S_JOIN counts them.
  std::unordered_map<uint64_t, uint32_t> stays_;
  std::unordered_set<Stay, StayHash> early_confirms_;

  // The world.
  size_t world_members_ = 0;     // in the world, active or pending
  std::vector<uint64_t> noted_;  // entered or moved since the last tick
  std::vector<uint64_t> gone_;   // left since the last tick
  // Entered the world, or joined again while in it, since the last tick:
  // the tick sends them one full snapshot, built once for all of them.
  std::vector<uint64_t> full_wanted_;
  uint64_t tick_ = 0;  // the latest tick number
  servercore::TimerId timer_ = 0;
  servercore::TimerId publish_timer_ = 0;  // on a cluster, with timer_
  std::vector<uint64_t> unpublished_;  // entered or moved since the last one
  std::chrono::steady_clock::time_point next_due_;
  // Reused by every snapshot: no allocation in a steady tick.
  std::vector<EntityState> entities_;   // the tick's delta
  std::vector<EntityState> published_;  // PublishTick's
  std::vector<EntityState> world_;      // a full snapshot's
  pb::S_SNAPSHOT message_;
  std::vector<servercore::SendBufferRef> parts_;       // the delta, encoded
  std::vector<servercore::SendBufferRef> full_parts_;  // the full one

  // Other nodes' world members of this room, by session id.
  std::unordered_map<uint64_t, RemoteMember> remote_;
  // StartSync: the nodes yet to send their state, and the announces kept
  // back meanwhile (session id, serial). Syncing from the start on a
  // cluster, until StartSync finds nobody to wait for or the wait ends.
  bool syncing_ = options_.cluster != nullptr;
  std::vector<uint16_t> sync_waiting_;
  // In the order they came; one announced since (told to leave) is no
  // longer pending and is skipped.
  std::vector<Stay> deferred_announces_;
  servercore::TimerId sync_timer_ = 0;
  std::vector<uint64_t> remote_noted_;  // entered or moved since the last tick
  // Refresh: its timer; how many more empty states to send (a few after
  // the world here empties, as drops come in bursts); and since when each
  // node with members in remote_ has been found unlisted here.
  static constexpr uint8_t kEmptyStates = 3;
  servercore::TimerId refresh_timer_ = 0;
  uint8_t empty_states_left_ = 0;
  std::unordered_map<uint16_t, std::chrono::steady_clock::time_point>
      unlisted_since_;
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_ROOM_H_
