// Room's jobs and helpers for the other nodes of a cluster (room.h, "Rooms
// across nodes"; docs/CLUSTER.md): what this node publishes of a room, and
// what it keeps of the others' world members.
#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include "../common/protocol.h"
#include "cluster_link.h"
#include "cluster_wire.h"
#include "game_session.h"
#include "room.h"

namespace game {

using servercore::SendBufferRef;
using Clock = std::chrono::steady_clock;

namespace {
// How long a new room waits for the other nodes' state before it announces
// its joiners anyway (a node that left meanwhile never answers).
constexpr std::chrono::milliseconds kSyncTimeout{200};
}  // namespace

// A room on a cluster is made syncing (room.h): a joiner on another worker
// may reach it before this first job, and waits too.
void Room::StartSync() {
  if (options_.cluster == nullptr) return;
  sync_waiting_ = options_.cluster->NodesIn(id_);
  if (!sync_waiting_.empty()) {
    sync_timer_ = DoTimer(kSyncTimeout, &Room::EndSync);
  }
  PublishState(/*want_reply=*/true);
  refresh_timer_ = DoTimerEvery(options_.state_refresh, [this] { Refresh(); });
  if (sync_waiting_.empty()) EndSync();  // nobody to wait for
}

void Room::Refresh() {
  // A room released here whose last jobs still run: the presence says so
  // already, and its state would be older than a newer room's.
  if (members_.empty() && pending_.empty()) return;
  const Clock::time_point now = Clock::now();
  const std::vector<uint16_t> listed = options_.cluster->NodesIn(id_);
  auto listed_has = [&](uint16_t node) {
    return std::find(listed.begin(), listed.end(), node) != listed.end();
  };
  // Unlisted for a whole period and silent here since: a node's first delta
  // in a room may come before its presence lists the room, never a period
  // before, and a node that comes back sends here again (RemoteWorld).
  std::vector<uint16_t> nodes;
  for (const auto& [id, remote] : remote_) {
    const uint16_t node = cluster::NodeOf(id);
    if (!listed_has(node)) nodes.push_back(node);
  }
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  std::unordered_map<uint16_t, Clock::time_point> unlisted;
  for (uint16_t node : nodes) {
    auto before = unlisted_since_.find(node);
    if (before == unlisted_since_.end()) {
      unlisted.emplace(node, now);
    } else if (now - before->second < options_.state_refresh) {
      unlisted.emplace(node, before->second);
    } else {
      DropNode(node);
    }
  }
  unlisted_since_ = std::move(unlisted);
  if (listed.empty()) return;  // nobody else to tell
  if (world_members_ == 0) {
    // Told a few times, as drops come in bursts; then nothing more to say.
    if (empty_states_left_ == 0) return;
    --empty_states_left_;
  }
  PublishState(/*want_reply=*/false);
}

// A sync keeps back the S_JOIN of a stay that goes on: its full snapshot
// must list the other nodes' members. A stay already told to leave has no
// full snapshot here and is announced at once, so that its next room hears
// from this one now: the room may lose its last holder meanwhile, and its
// sync, cancelled with it, would never end (its count of the other nodes'
// sessions is the link's presence, not the sync's).
void Room::AnnounceOrDefer(size_t pending_index) {
  if (!syncing_ || pending_[pending_index].leaving) {
    Announce(pending_index);
    return;
  }
  Pending& pending = pending_[pending_index];
  pending.deferred = true;
  deferred_announces_.push_back(Stay{pending.member.id, pending.member.serial});
}

void Room::EndSync() {
  if (!syncing_) return;
  syncing_ = false;
  sync_waiting_.clear();
  if (sync_timer_ != 0) CancelTimer(sync_timer_);
  sync_timer_ = 0;
  // In the order they came; a member told to leave meanwhile is still
  // pending (leaving), and Announce handles that.
  for (const auto& [id, serial] : deferred_announces_) {
    const size_t index = FindPending(id, serial);  // kNotFound: announced
    if (index != static_cast<size_t>(-1)) Announce(index);
  }
  deferred_announces_.clear();
}

bool Room::IsLocal(uint64_t session_id) const noexcept {
  return cluster::NodeOf(session_id) == options_.node_id;
}

void Room::PublishLocalDelta() {
  if (options_.cluster == nullptr || published_.empty()) return;
  std::string message =
      cluster::Begin(cluster::Kind::kDelta, options_.node_id,
                     published_.size() * cluster::kEntitySize);
  for (const EntityState& e : published_) {
    cluster::AppendEntity(message, {.id = e.id,
                                    .x = e.position.x,
                                    .y = e.position.y,
                                    .seq = e.position.seq,
                                    .gone = e.gone});
  }
  (void)options_.cluster->PublishFor(id_, this, std::move(message));
}

void Room::PublishState(bool want_reply) {
  if (options_.cluster == nullptr) return;
  std::string message =
      cluster::Begin(cluster::Kind::kState, options_.node_id,
                     1 + world_members_ * cluster::kEntitySize);
  cluster::Append(message, static_cast<uint8_t>(want_reply ? 1 : 0));
  auto add = [&](const Member& m) {
    if (!m.position.in_world) return;
    cluster::AppendEntity(message, {.id = m.id,
                                    .x = m.position.x,
                                    .y = m.position.y,
                                    .seq = m.position.seq});
  };
  for (const Member& member : members_) add(member);
  for (const auto& [id, index] : current_pending_) add(pending_[index].member);
  (void)options_.cluster->PublishFor(id_, this, std::move(message));
}

void Room::RemoteChat(SendBufferRef packet) { Broadcast(packet); }

// Noted only while some member here is in the world to see it (otherwise a
// full snapshot shows it on entering). From a state, only when it changed:
// a state repeated by Refresh sends the clients nothing new (a delta is a
// move, noted like a local one even when it repeats a position).
void Room::SetRemote(uint64_t id, const WorldPosition& position,
                     bool only_changes) {
  auto [it, added] = remote_.try_emplace(id);
  RemoteMember& remote = it->second;
  if (only_changes && !added && remote.position.x == position.x &&
      remote.position.y == position.y && remote.position.seq == position.seq) {
    return;
  }
  remote.position = position;
  remote.position.in_world = true;
  if (world_members_ != 0 && !remote.noted) {
    remote.noted = true;
    remote_noted_.push_back(id);
  }
}

void Room::EraseRemote(uint64_t id) {
  if (remote_.erase(id) != 0 && world_members_ != 0) gone_.push_back(id);
}

void Room::RemoteWorld(std::string message) {
  cluster::Kind kind;
  uint16_t node;
  if (!cluster::ReadHeader(message, &kind, &node) || node == options_.node_id) {
    return;
  }
  size_t at = cluster::kHeaderSize;
  bool want_reply = false;
  if (kind == cluster::Kind::kState) {
    if (message.size() < at + 1) return;
    want_reply = message[at] != 0;
    ++at;
  }
  unlisted_since_.erase(node);    // Refresh: it is here
  std::vector<uint64_t> present;  // kState: the node's members now
  for (; at + cluster::kEntitySize <= message.size();
       at += cluster::kEntitySize) {
    const cluster::Entity e = cluster::ReadEntity(message.data() + at);
    if (cluster::NodeOf(e.id) != node) continue;  // only its own members
    if (e.gone) {
      EraseRemote(e.id);
      continue;
    }
    // Only positions a C_MOVE could set (docs/PROTOCOL.md "The world"): a
    // broken node's others are not passed on to the clients.
    if (!ValidCoordinate(e.x) || !ValidCoordinate(e.y)) continue;
    SetRemote(e.id, WorldPosition{.x = e.x, .y = e.y, .seq = e.seq},
              /*only_changes=*/kind == cluster::Kind::kState);
    if (kind == cluster::Kind::kState) present.push_back(e.id);
  }
  if (kind != cluster::Kind::kState) return;
  // A state replaces what this room knew of the node's members.
  std::sort(present.begin(), present.end());
  std::vector<uint64_t> stale;
  for (const auto& [id, remote] : remote_) {
    if (cluster::NodeOf(id) == node &&
        !std::binary_search(present.begin(), present.end(), id)) {
      stale.push_back(id);
    }
  }
  for (uint64_t id : stale) EraseRemote(id);
  if (want_reply) PublishState(/*want_reply=*/false);
  if (syncing_ && !sync_waiting_.empty()) {  // (empty: before StartSync)
    std::erase(sync_waiting_, node);
    if (sync_waiting_.empty()) EndSync();
  }
}

void Room::DropNode(uint16_t node) {
  std::vector<uint64_t> dead;
  for (const auto& [id, remote] : remote_) {
    if (cluster::NodeOf(id) == node) dead.push_back(id);
  }
  for (uint64_t id : dead) EraseRemote(id);
}

}  // namespace game
