// ClusterLink's incoming side (cluster_link.h): what arrives for a room
// becomes a job of that room; the other nodes' presence, its expiry, and
// what the rooms and the stats line read of it.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

#include "../common/protocol.h"
#include "cluster_link.h"
#include "cluster_wire.h"
#include "room.h"
#include "servercore/packet_framer.h"
#include "servercore/packet_writer.h"

namespace game {

using Clock = std::chrono::steady_clock;

// --- Incoming --------------------------------------------------------------

std::shared_ptr<Room> ClusterLink::FindRoom(uint32_t room) const {
  servercore::MutexLock lock(mu_);
  auto it = rooms_.find(room);
  return it == rooms_.end() ? nullptr : it->second.lock();
}

void ClusterLink::HandleRoom(uint32_t room_id, const char* data, size_t size) {
  cluster::Kind kind;
  uint16_t node;
  if (!cluster::ReadHeader({data, size}, &kind, &node) ||
      node == options_.node_id) {
    return;
  }
  std::shared_ptr<Room> room = FindRoom(room_id);
  if (room == nullptr) return;  // left meanwhile: unsubscribing
  const char* body = data + cluster::kHeaderSize;
  const size_t body_size = size - cluster::kHeaderSize;
  switch (kind) {
    case cluster::Kind::kChat: {
      if (body_size < kChatSenderSize ||
          servercore::kPacketHeaderSize + body_size >
              servercore::kMaxPacketLimit) {
        return;
      }
      // Only the node's own sessions' chats (as with its entities): a
      // broken node does not speak for another's sessions, or this one's.
      if (cluster::NodeOf(cluster::Read<uint64_t>(body)) != node) return;
      // Built once here; the room queues this one buffer to every member.
      servercore::SendBufferRef packet = servercore::MakePacket(
          kSChat, std::as_bytes(std::span(body, body_size)));
      room->DoAsync(&Room::RemoteChat, std::move(packet));
      break;
    }
    case cluster::Kind::kDelta:
    case cluster::Kind::kState:
      room->DoAsync(&Room::RemoteWorld, std::string(data, size));
      break;
    default:
      break;
  }
}

void ClusterLink::SetTable(Node& node,
                           std::vector<std::pair<uint32_t, uint32_t>> table) {
  for (const auto& [room, count] : node.table) {
    auto it = remote_counts_.find(room);
    it->second -= count;
    remote_members_ -= count;
    if (it->second == 0) remote_counts_.erase(it);
  }
  node.table = std::move(table);
  for (const auto& [room, count] : node.table) {
    if (count == 0) continue;
    remote_counts_[room] += count;
    remote_members_ += count;
  }
}

void ClusterLink::HandlePresence(uint16_t node_id, const char* data,
                                 size_t size) {
  if (size < cluster::kIncarnationSize) return;
  const auto incarnation = cluster::Read<uint64_t>(data);
  std::vector<std::pair<uint32_t, uint32_t>> table;
  table.reserve(size / cluster::kPresenceEntrySize);
  for (size_t at = cluster::kIncarnationSize;
       at + cluster::kPresenceEntrySize <= size;
       at += cluster::kPresenceEntrySize) {
    const uint32_t count = cluster::Read<uint32_t>(data + at + 4);
    if (count != 0)
      table.emplace_back(cluster::Read<uint32_t>(data + at), count);
  }
  // One entry per room, as a node sends it. Another node's bytes are not
  // trusted: a room listed twice would be counted in twice and taken out
  // entry by entry, and SetTable must find every room it takes out.
  std::sort(table.begin(), table.end());
  size_t kept = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    if (kept != 0 && table[kept - 1].first == table[i].first) {
      uint32_t& sum = table[kept - 1].second;
      sum = sum > UINT32_MAX - table[i].second ? UINT32_MAX
                                               : sum + table[i].second;
    } else {
      table[kept++] = table[i];
    }
  }
  table.resize(kept);
  // A node first heard (or back after expiring): the rooms we share ask for
  // its state, and send ours. A node heard with a new incarnation was
  // restarted: its earlier run's members leave every room they were in
  // first, then the same asking, also in those rooms, so that what the new
  // run already sent there (and the drop took too) comes again. A node
  // heard again that no longer lists a room has no members there: whatever
  // this node still shows of them goes (their leave may have been lost,
  // dropped while the broker was away, and no state of theirs will ever
  // come for a room they no longer have).
  std::vector<std::shared_ptr<Room>> shared;
  std::vector<std::shared_ptr<Room>> left;
  bool restarted = false;
  {
    servercore::MutexLock lock(mu_);
    auto [it, is_new] = nodes_.try_emplace(node_id);
    Node& node = it->second;
    node.last_heard = Clock::now();
    restarted = !is_new && node.incarnation != incarnation;
    node.incarnation = incarnation;
    // Rooms to ask (and, restarted, to drop from), and rooms to drop from.
    std::vector<uint32_t> ids;
    std::vector<uint32_t> left_ids;
    if (is_new || restarted) {
      for (const auto& entry : table) ids.push_back(entry.first);
      if (restarted) {
        for (const auto& entry : node.table) ids.push_back(entry.first);
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      }
    } else {
      // Both tables sorted by room, one entry each.
      auto next = table.begin();
      for (const auto& [id, count] : node.table) {
        while (next != table.end() && next->first < id) ++next;
        if (next == table.end() || next->first != id) left_ids.push_back(id);
      }
    }
    for (auto [ids_of, out] :
         {std::pair{&ids, &shared}, std::pair{&left_ids, &left}}) {
      for (uint32_t id : *ids_of) {
        auto room = rooms_.find(id);
        if (room == rooms_.end()) continue;
        if (auto handle = room->second.lock()) out->push_back(handle);
      }
    }
    SetTable(node, std::move(table));
  }
  if (restarted) {
    std::printf("cluster: node %u restarted, its earlier members leave\n",
                unsigned{node_id});
    std::fflush(stdout);
  }
  for (auto& room : shared) {
    if (restarted) room->DoAsync(&Room::DropNode, node_id);
    room->DoAsync(&Room::PublishState, true);
  }
  for (auto& room : left) room->DoAsync(&Room::DropNode, node_id);
}

void ClusterLink::SameIdHeard() {
  // The two nodes ignore each other's messages, each taking them for its
  // own, and the others see one node restarted at every presence. Said
  // once at first, then every kSameIdLogPeriod while it goes on.
  const Clock::time_point now = Clock::now();
  if (same_id_logged_ != Clock::time_point{} &&
      now - same_id_logged_ < kSameIdLogPeriod) {
    return;
  }
  same_id_logged_ = now;
  std::printf(
      "cluster: another node runs with node id %u: node ids must be unique "
      "(both nodes' session ids collide, and the others see this node "
      "restart again and again)\n",
      unsigned{options_.node_id});
  std::fflush(stdout);
}

void ClusterLink::ExpireNodes() {
  const Clock::time_point now = Clock::now();
  std::vector<uint16_t> dead;
  std::vector<std::shared_ptr<Room>> rooms;
  {
    servercore::MutexLock lock(mu_);
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      if (now - it->second.last_heard < options_.node_expiry) {
        ++it;
        continue;
      }
      SetTable(it->second, {});
      dead.push_back(it->first);
      it = nodes_.erase(it);
    }
    if (dead.empty()) return;
    for (auto& [id, weak] : rooms_) {
      if (auto room = weak.lock()) rooms.push_back(std::move(room));
    }
  }
  for (uint16_t node : dead) {
    std::printf("cluster: node %u not heard for %lld ms, its members leave\n",
                unsigned{node},
                static_cast<long long>(options_.node_expiry.count()));
    for (auto& room : rooms) room->DoAsync(&Room::DropNode, node);
  }
  std::fflush(stdout);
  // A dead node heard again since the erase above (its presence, on the
  // delivery thread, found it new) may have had its state applied, and
  // asked for, before these drops reached the rooms, which then took that
  // state away too: ask for it again, after the drops.
  bool back = false;
  {
    servercore::MutexLock lock(mu_);
    for (uint16_t node : dead) back = back || nodes_.count(node) != 0;
  }
  if (back) {
    for (auto& room : rooms) room->DoAsync(&Room::PublishState, true);
  }
}

// --- Reading ---------------------------------------------------------------

uint32_t ClusterLink::RemoteCount(uint32_t room) const {
  servercore::MutexLock lock(mu_);
  auto it = remote_counts_.find(room);
  return it == remote_counts_.end() ? 0
                                    : static_cast<uint32_t>(std::min<uint64_t>(
                                          it->second, UINT32_MAX));
}

std::vector<uint16_t> ClusterLink::NodesIn(uint32_t room) const {
  std::vector<uint16_t> out;
  servercore::MutexLock lock(mu_);
  // Every room asks every state_refresh: a table is sorted by room.
  for (const auto& [id, node] : nodes_) {
    auto it = std::lower_bound(
        node.table.begin(), node.table.end(), room,
        [](const auto& entry, uint32_t r) { return entry.first < r; });
    if (it != node.table.end() && it->first == room) out.push_back(id);
  }
  return out;
}

std::vector<std::pair<uint32_t, uint32_t>> ClusterLink::RemoteRooms(
    size_t max) const {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  {
    servercore::MutexLock lock(mu_);
    for (const auto& [room, weak] : rooms_) {
      auto it = remote_counts_.find(room);
      if (it != remote_counts_.end()) {
        out.emplace_back(room, static_cast<uint32_t>(
                                   std::min<uint64_t>(it->second, UINT32_MAX)));
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (out.size() > max) out.resize(max);
  return out;
}

ClusterStats ClusterLink::GetStats() const {
  ClusterStats stats;
  stats.connected = Connected();
  stats.msgs_in = msgs_in_.load(std::memory_order_relaxed);
  stats.msgs_out = msgs_out_.load(std::memory_order_relaxed);
  stats.dropped = dropped_.load(std::memory_order_relaxed);
  stats.dropped_in = dropped_in_.load(std::memory_order_relaxed);
  stats.reconnects = reconnects_.load(std::memory_order_relaxed);
  servercore::MutexLock lock(mu_);
  stats.nodes = nodes_.size();
  stats.remote_members = remote_members_;
  return stats;
}

}  // namespace game
