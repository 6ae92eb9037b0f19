#include "room.h"

#include <algorithm>

#include "../common/protocol.h"
#include "cluster_link.h"
#include "cluster_wire.h"
#include "game_session.h"
#include "servercore/check.h"
#include "servercore/packet_writer.h"
#include "snapshot_encoder.h"

namespace game {

using servercore::PacketWriter;
using servercore::SendBufferRef;
using Clock = std::chrono::steady_clock;

namespace {
constexpr size_t kNotFound = static_cast<size_t>(-1);
}  // namespace

std::chrono::steady_clock::time_point WallClockEpoch() {
  const auto steady = Clock::now();
  const auto wall = std::chrono::system_clock::now().time_since_epoch();
  return steady - std::chrono::duration_cast<Clock::duration>(wall);
}

Room::Room(uint32_t id, const WorldOptions& options, WorldStats& stats)
    : id_(id),
      options_(options),
      stats_(stats),
      tick_(TickNumber(Clock::now())) {}

Room::~Room() {
  if (timer_ != 0) CancelTimer(timer_);
  if (publish_timer_ != 0) CancelTimer(publish_timer_);
  if (sync_timer_ != 0) CancelTimer(sync_timer_);
  if (refresh_timer_ != 0) CancelTimer(refresh_timer_);
}

// --- Membership -----------------------------------------------------------

void Room::Join(std::shared_ptr<GameSession> session, uint32_t serial,
                WorldPosition position, JoinKind kind) {
  Member member;
  member.id = session->id();
  member.session = std::move(session);
  member.serial = serial;
  member.position = position;
  member.session->JobDone();
  if (kind == JoinKind::kInitial) {
    AddActive(std::move(member));
    return;
  }
  const uint64_t id = member.id;
  const size_t index = AddPending(std::move(member));
  Member& added = pending_[index].member;
  if (added.position.in_world) Entered(added);
  if (early_confirms_.erase(Stay{id, serial}) != 0) AnnounceOrDefer(index);
}

void Room::Leave(uint64_t session_id, uint32_t serial,
                 std::shared_ptr<Room> next, uint32_t next_serial) {
  auto it = index_.find(session_id);
  if (it != index_.end() && members_[it->second].serial == serial) {
    Member& member = members_[it->second];
    member.session->JobDone();
    if (member.wants_full) SendFullOnLeaving(member);
    RemoveActive(it->second);
    if (next) next->DoAsync(&Room::Confirm, session_id, next_serial);
    return;
  }
  const size_t pending = FindPending(session_id, serial);
  SERVERCORE_CHECK(pending != kNotFound,
                   "room %u: Leave of session %llu (serial %u) not a member",
                   id_, static_cast<unsigned long long>(session_id), serial);
  Pending& stay = pending_[pending];
  stay.member.session->JobDone();
  MarkLeaving(pending);
  stay.next = std::move(next);
  stay.next_serial = next_serial;
  // Kept back by a sync: it need not wait now (AnnounceOrDefer).
  if (stay.deferred) Announce(pending);
}

void Room::Confirm(uint64_t session_id, uint32_t serial) {
  const size_t pending = FindPending(session_id, serial);
  if (pending == kNotFound) {
    // The old room was quicker than the worker's Join push: Join announces.
    early_confirms_.insert(Stay{session_id, serial});
    return;
  }
  AnnounceOrDefer(pending);
}

// S_JOIN, then what was kept back, and a world member's full snapshot at
// the next tick; a member that was told to leave meanwhile then leaves.
void Room::Announce(size_t pending_index) {
  Pending pending = TakePending(pending_index);
  const std::shared_ptr<GameSession> session = pending.member.session;
  const uint32_t serial = pending.member.serial;
  const uint64_t id = pending.member.id;
  const bool in_world = pending.member.position.in_world;
  if (!pending.leaving) AddActive(std::move(pending.member));
  PacketWriter reply(kSJoin, kJoinReplyPayloadSize);
  uint64_t count = MemberCount(pending);
  if (options_.cluster != nullptr) count += options_.cluster->RemoteCount(id_);
  reply.WriteU32(id_).WriteU32(
      static_cast<uint32_t>(std::min<uint64_t>(count, UINT32_MAX)));
  session->Send(reply.Finish());
  if (in_world && !pending.leaving) WantFull(members_[index_.at(id)]);
  for (SendBufferRef& packet : pending.held) session->Send(std::move(packet));
  if (in_world && pending.leaving) SendFullOnLeaving(pending.member);
  CloseAfter(*session, pending.close_after);
  session->Announced(serial);
  if (pending.leaving) {
    if (in_world) Gone(pending.member);
    if (pending.next) {
      pending.next->DoAsync(&Room::Confirm, id, pending.next_serial);
    }
  }
}

void Room::AddActive(Member member) {
  CountStay(member.id);
  index_[member.id] = members_.size();
  members_.push_back(std::move(member));
}

void Room::RemoveActive(size_t index) {
  Member& member = members_[index];
  if (member.position.in_world) Gone(member);
  UncountStay(member.id);
  index_.erase(member.id);
  if (index + 1 != members_.size()) {
    member = std::move(members_.back());
    index_[member.id] = index;
  }
  members_.pop_back();
}

size_t Room::AddPending(Member member) {
  const size_t index = pending_.size();
  CountStay(member.id);
  pending_at_[Stay{member.id, member.serial}] = index;
  // The stay before, if it was here, was told to leave first.
  SERVERCORE_CHECK(current_pending_.count(member.id) == 0,
                   "room %u: session %llu joins while current here", id_,
                   static_cast<unsigned long long>(member.id));
  current_pending_[member.id] = index;
  pending_.emplace_back();
  pending_.back().member = std::move(member);
  return index;
}

void Room::MarkLeaving(size_t pending_index) {
  Pending& pending = pending_[pending_index];
  pending.leaving = true;
  auto current = current_pending_.find(pending.member.id);
  if (current != current_pending_.end() && current->second == pending_index) {
    current_pending_.erase(current);
  }
}

Room::Pending Room::TakePending(size_t pending_index) {
  Pending taken = std::move(pending_[pending_index]);
  const uint64_t id = taken.member.id;
  pending_at_.erase(Stay{id, taken.member.serial});
  if (!taken.leaving) current_pending_.erase(id);
  UncountStay(id);
  if (pending_index + 1 != pending_.size()) {
    Pending& moved = pending_[pending_index];
    moved = std::move(pending_.back());
    pending_at_[Stay{moved.member.id, moved.member.serial}] = pending_index;
    if (!moved.leaving) current_pending_[moved.member.id] = pending_index;
  }
  pending_.pop_back();
  return taken;
}

void Room::CountStay(uint64_t session_id) { ++stays_[session_id]; }

void Room::UncountStay(uint64_t session_id) {
  auto it = stays_.find(session_id);
  SERVERCORE_CHECK(it != stays_.end(), "room %u: session %llu has no stay", id_,
                   static_cast<unsigned long long>(session_id));
  if (--it->second == 0) stays_.erase(it);
}

// Whether the session has a stay here that is not on its way out: active, or
// pending and not leaving (a session has at most one).
bool Room::HasCurrent(uint64_t session_id) const {
  return index_.count(session_id) != 0 ||
         current_pending_.count(session_id) != 0;
}

// The sessions in the room once each, with `announced`, a stay just taken
// out of the pending ones. A session that joins again before its stay here
// is announced has several stays here at once (leaving ones, and maybe the
// current one): it counts once.
uint32_t Room::MemberCount(const Pending& announced) const {
  size_t count = stays_.size();
  // (Not leaving, it is active now and counted.)
  if (announced.leaving && stays_.count(announced.member.id) == 0) ++count;
  return static_cast<uint32_t>(count);
}

Room::Member* Room::FindCurrent(uint64_t session_id) {
  auto it = index_.find(session_id);
  if (it != index_.end()) return &members_[it->second];
  auto pending = current_pending_.find(session_id);
  if (pending != current_pending_.end()) {
    return &pending_[pending->second].member;
  }
  return nullptr;
}

size_t Room::FindPending(uint64_t session_id, uint32_t serial) const {
  auto it = pending_at_.find(Stay{session_id, serial});
  return it == pending_at_.end() ? kNotFound : it->second;
}

// --- Chat and movement ----------------------------------------------------

void Room::Chat(uint64_t sender, SendBufferRef packet) {
  if (options_.cluster != nullptr) {
    // Once for every other node: the S_CHAT's payload, after its header.
    const auto payload = packet->Data().subspan(servercore::kPacketHeaderSize);
    std::string message =
        cluster::Begin(cluster::Kind::kChat, options_.node_id, payload.size());
    message.append(reinterpret_cast<const char*>(payload.data()),
                   payload.size());
    options_.cluster->Publish(id_, std::move(message));
  }
  Broadcast(packet);
  if (Member* from = FindCurrent(sender)) from->session->JobDone();
}

void Room::Broadcast(const SendBufferRef& packet) {
  // One count of references for the whole room, not one per member.
  servercore::SendBufferShares shares(packet, members_.size());
  for (const Member& member : members_) member.session->Send(shares.Take());
  for (const auto& [id, index] : current_pending_) {
    pending_[index].held.push_back(packet);
  }
}

void Room::Relay(uint64_t session_id, SendBufferRef packet, RelayAfter after) {
  auto it = index_.find(session_id);
  if (it != index_.end()) {
    GameSession& session = *members_[it->second].session;
    if (packet) session.Send(std::move(packet));
    CloseAfter(session, after);
    session.JobDone();
    return;
  }
  auto current = current_pending_.find(session_id);
  if (current == current_pending_.end()) return;
  Pending& pending = pending_[current->second];
  if (packet) pending.held.push_back(std::move(packet));
  // The first close stands (a protocol error, then the end of the stream:
  // the client is told about its error).
  if (pending.close_after == RelayAfter::kNothing) pending.close_after = after;
  pending.member.session->JobDone();
}

void Room::CloseAfter(GameSession& session, RelayAfter after) {
  switch (after) {
    case RelayAfter::kNothing:
      break;
    case RelayAfter::kProtocolError:
      session.Disconnect(servercore::DisconnectReason::kProtocolError);
      break;
    case RelayAfter::kPeerClosed:
      session.Disconnect(servercore::DisconnectReason::kPeerClosed);
      break;
  }
}

void Room::Move(uint64_t session_id, WorldPosition position) {
  Member* member = FindCurrent(session_id);
  SERVERCORE_CHECK(member != nullptr,
                   "room %u: Move of session %llu, not a "
                   "member",
                   id_, static_cast<unsigned long long>(session_id));
  const bool entering = !member->position.in_world;
  member->position = position;
  member->position.in_world = true;
  if (!entering) {
    Note(*member);
  } else {
    Entered(*member);
    // An active member sees the world at the next tick; a pending one at
    // the tick after its S_JOIN.
    if (index_.count(session_id) != 0) WantFull(*member);
  }
  member->session->JobDone();  // after what it sent the mover
}

// --- The world ------------------------------------------------------------

void Room::Entered(Member& member) {
  ++world_members_;
  empty_states_left_ = kEmptyStates;  // its leave may yet be lost
  stats_.members.fetch_add(1, std::memory_order_relaxed);
  Note(member);
  StartTicking();
}

void Room::Gone(const Member& member) {
  --world_members_;
  stats_.members.fetch_sub(1, std::memory_order_relaxed);
  gone_.push_back(member.id);
  // Told to the other nodes at once, not at the next tick: the last
  // member's leave drops the room here, and its timer with it. Its moves
  // still noted are not published after this (it is no longer current).
  PublishGone(member.id);
}

void Room::PublishGone(uint64_t session_id) {
  if (options_.cluster == nullptr) return;
  std::string message = cluster::Begin(cluster::Kind::kDelta, options_.node_id,
                                       cluster::kEntitySize);
  cluster::AppendEntity(message, {.id = session_id, .gone = true});
  if (auto newer =
          options_.cluster->PublishFor(id_, this, std::move(message))) {
    // This room was released, its last jobs late, and a newer one holds
    // the id here: the session may be its member already; it knows.
    newer->DoAsync(&Room::GoneFromOlder, session_id);
  }
}

void Room::GoneFromOlder(uint64_t session_id) {
  if (!HasCurrent(session_id)) PublishGone(session_id);
}

void Room::Note(Member& member) {
  if (!member.noted) {
    member.noted = true;
    noted_.push_back(member.id);
  }
  if (options_.cluster != nullptr && !member.unpublished) {
    member.unpublished = true;
    unpublished_.push_back(member.id);
  }
}

void Room::WantFull(Member& member) {
  if (member.wants_full) return;
  member.wants_full = true;
  full_wanted_.push_back(member.id);
  StartTicking();
}

std::chrono::milliseconds Room::SnapshotDelay() const {
  // Time for the others' moves, published on the grid point, to cross the
  // broker first: far more than a loopback or LAN hop, a small part of a
  // tick. Standalone, nothing to wait for.
  if (options_.cluster == nullptr) return std::chrono::milliseconds(0);
  return std::min(options_.tick / 4, std::chrono::milliseconds(10));
}

void Room::StartTicking() {
  if (timer_ != 0) return;
  // The next grid point (WorldOptions::epoch), not a period from now: every
  // node's room ticks together.
  const Clock::time_point now = Clock::now();
  const Clock::time_point grid =
      options_.epoch +
      ((now - options_.epoch) / options_.tick + 1) * options_.tick;
  next_due_ = grid + SnapshotDelay();
  timer_ = DoTimerEvery(next_due_, options_.tick, [this] { Tick(); });
  if (options_.cluster != nullptr) {
    publish_timer_ =
        DoTimerEvery(grid, options_.tick, [this] { PublishTick(); });
  }
}

void Room::StopTicking() {
  CancelTimer(timer_);
  timer_ = 0;
  if (publish_timer_ != 0) CancelTimer(publish_timer_);
  publish_timer_ = 0;
}

void Room::PublishTick() {
  if (unpublished_.empty()) return;
  published_.clear();
  for (uint64_t id : unpublished_) {
    Member* member = FindCurrent(id);
    if (member == nullptr || !member->unpublished) continue;
    member->unpublished = false;
    published_.push_back({id, member->position, false});
  }
  unpublished_.clear();
  PublishLocalDelta();
}

uint64_t Room::TickNumber(Clock::time_point now) const {
  return static_cast<uint64_t>((now - options_.epoch) / options_.tick);
}

void Room::Tick() {
  const Clock::time_point now = Clock::now();
  stats_.tick_lateness.Record(
      std::chrono::duration_cast<std::chrono::microseconds>(now - next_due_)
          .count());
  // The timer skips the periods a late worker missed; so does the due time.
  next_due_ += options_.tick;
  if (next_due_ <= now) {
    next_due_ += ((now - next_due_) / options_.tick + 1) * options_.tick;
  }
  if (noted_.empty() && gone_.empty() && remote_noted_.empty() &&
      full_wanted_.empty()) {
    if (world_members_ == 0) StopTicking();
    return;
  }
  tick_ = std::max(tick_ + 1, TickNumber(now));
  // Its own timer has published by now, unless it runs late or on another
  // worker: then here, before the snapshot, as the grid promises.
  PublishTick();
  entities_.clear();
  for (uint64_t id : noted_) {
    Member* member = FindCurrent(id);
    if (member == nullptr || !member->noted) continue;
    member->noted = false;
    entities_.push_back({id, member->position, false});
  }
  // This node's moves went to the others on the grid point, a little
  // before (PublishTick; its leaves at once, in Gone); theirs, received
  // since the last tick, that one's included, join the snapshot here.
  // A member that left and came back within the tick is simply present.
  std::sort(gone_.begin(), gone_.end());
  gone_.erase(std::unique(gone_.begin(), gone_.end()), gone_.end());
  for (uint64_t id : gone_) {
    if (IsLocal(id) && FindCurrent(id) == nullptr) {
      entities_.push_back({id, {}, true});
    }
  }
  for (uint64_t id : remote_noted_) {
    auto it = remote_.find(id);
    if (it == remote_.end() || !it->second.noted) continue;
    it->second.noted = false;
    entities_.push_back({id, it->second.position, false});
  }
  for (uint64_t id : gone_) {
    if (!IsLocal(id) && remote_.count(id) == 0) {
      entities_.push_back({id, {}, true});
    }
  }
  noted_.clear();
  gone_.clear();
  remote_noted_.clear();
  // Fulls wait while the room syncs (SendFulls): with no delta either, the
  // tick sends nothing and is not counted.
  if (entities_.empty() && (full_wanted_.empty() || syncing_)) return;
  stats_.ticks.fetch_add(1, std::memory_order_relaxed);
  // Who entered (or joined again) has the whole world first, then the
  // tick's delta like every world member: the full snapshot already holds
  // it, but the rule is one delta for all, movers included.
  SendFulls();
  if (entities_.empty()) return;
  if (options_.shared_snapshots) Encode(entities_, /*full=*/false, parts_);
  for (const Member& member : members_) {
    // Still waiting for its full snapshot (SendFulls): nothing before it.
    if (!member.position.in_world || member.wants_full) continue;
    if (!options_.shared_snapshots) Encode(entities_, /*full=*/false, parts_);
    Deliver(*member.session, parts_, entities_.size(), /*full=*/false);
  }
}

// One full snapshot for everyone in full_wanted_, encoded once however many
// entered in the tick: a crowd entering together costs one list, not one
// per member (and then the naive baseline, one per member, shows what that
// saves).
void Room::SendFulls() {
  // A room new on this node waits for the other nodes' state (StartSync, at
  // most kSyncTimeout), so that the list has their members too; so does
  // whoever entered its world meanwhile, a room-0 session above all (it
  // came without an S_JOIN to hold back).
  if (full_wanted_.empty() || syncing_) return;
  ListWorld();
  bool encoded = false;
  for (uint64_t id : full_wanted_) {
    Member* member = FindCurrent(id);
    // Gone since, or left and joined again: that stay asks for its own.
    if (member == nullptr || !member->wants_full) continue;
    member->wants_full = false;
    if (!member->position.in_world || index_.count(id) == 0) continue;
    if (!encoded || !options_.shared_snapshots) {
      Encode(world_, /*full=*/true, full_parts_);
      encoded = true;
    }
    Deliver(*member->session, full_parts_, world_.size(), /*full=*/true);
  }
  full_wanted_.clear();
}

// A world member leaving before the tick that was to send its full snapshot
// (its S_JOIN here and its next C_JOIN came within one tick, or it was told
// to leave while its S_JOIN was kept back) has it now, listing it too: the
// contract owes one after every S_JOIN of a world member, before it goes on
// to the next room's S_JOIN. Built for it alone, like a chat to a room it
// pays for itself, and only once per stay (the flow control bounds how
// fast a client can join). While the room syncs the list has only what
// this node knows so far.
void Room::SendFullOnLeaving(Member& member) {
  member.wants_full = false;
  // Gone from the world, or leaving because it disconnected.
  if (!member.position.in_world || !member.session->IsConnected()) return;
  ListWorld();
  // A stay announced only to leave is no member any more; a later stay of
  // the same session that is (pending here) is listed already.
  if (FindCurrent(member.id) == nullptr) {
    world_.push_back({member.id, member.position, false});
  }
  Encode(world_, /*full=*/true, full_parts_);
  Deliver(*member.session, full_parts_, world_.size(), /*full=*/true);
}

void Room::ListWorld() {
  world_.clear();
  for (const Member& member : members_) {
    if (member.position.in_world) {
      world_.push_back({member.id, member.position, false});
    }
  }
  for (const auto& [id, index] : current_pending_) {
    const Member& member = pending_[index].member;
    if (member.position.in_world) {
      world_.push_back({member.id, member.position, false});
    }
  }
  for (const auto& [id, remote] : remote_) {
    world_.push_back({id, remote.position, false});
  }
}

void Room::Encode(const std::vector<EntityState>& entities, bool full,
                  std::vector<SendBufferRef>& parts) {
  parts.clear();
  SnapshotEncoder encoder(message_, parts, id_, tick_, full);
  for (const EntityState& entity : entities) {
    encoder.Add(entity.id, entity.position.x, entity.position.y,
                entity.position.seq, entity.gone);
  }
  encoder.Finish();
}

void Room::Deliver(GameSession& to, const std::vector<SendBufferRef>& parts,
                   size_t entities, bool full) {
  size_t bytes = 0;
  for (const SendBufferRef& part : parts) {
    bytes += part->WriteSize();
    to.Send(part);
  }
  stats_.snapshots.fetch_add(parts.size(), std::memory_order_relaxed);
  if (full) {
    stats_.full_snapshots.fetch_add(parts.size(), std::memory_order_relaxed);
  }
  stats_.snapshot_bytes.fetch_add(bytes, std::memory_order_relaxed);
  stats_.entity_updates.fetch_add(entities, std::memory_order_relaxed);
}

}  // namespace game
