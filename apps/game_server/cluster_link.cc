#include "cluster_link.h"

#include <nats/nats.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "../common/protocol.h"
#include "cluster_wire.h"
#include "room.h"
#include "servercore/packet_framer.h"
#include "servercore/packet_writer.h"

namespace game {

using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kRoomPrefix = "sc.room.";
constexpr std::string_view kNodePrefix = "sc.node.";

std::string RoomSubject(uint32_t room) {
  return std::string(kRoomPrefix) + std::to_string(room);
}

}  // namespace

// cnats calls these on its own threads; `closure` is the link.
struct ClusterLink::Callbacks {
  static void Message(natsConnection*, natsSubscription*, natsMsg* msg,
                      void* closure) {
    auto* link = static_cast<ClusterLink*>(closure);
    link->msgs_in_.fetch_add(1, std::memory_order_relaxed);
    const std::string_view subject = natsMsg_GetSubject(msg);
    const char* data = natsMsg_GetData(msg);
    const auto size = static_cast<size_t>(natsMsg_GetDataLength(msg));
    if (subject.starts_with(kRoomPrefix)) {
      const uint32_t room = static_cast<uint32_t>(
          std::strtoul(subject.data() + kRoomPrefix.size(), nullptr, 10));
      link->HandleRoom(room, data, size);
    } else {
      cluster::Kind kind;
      uint16_t node;
      if (cluster::ReadHeader({data, size}, &kind, &node) &&
          kind == cluster::Kind::kPresence && node != link->node_id()) {
        link->HandlePresence(node, data + cluster::kHeaderSize,
                             size - cluster::kHeaderSize);
      }
    }
    natsMsg_Destroy(msg);
  }
  static void Connected(natsConnection*, void* closure) {
    static_cast<ClusterLink*>(closure)->Resync();
  }
  static void Reconnected(natsConnection*, void* closure) {
    auto* link = static_cast<ClusterLink*>(closure);
    link->reconnects_.fetch_add(1, std::memory_order_relaxed);
    link->Resync();
  }
  static void Disconnected(natsConnection*, void* closure) {
    static_cast<ClusterLink*>(closure)->connected_.store(
        false, std::memory_order_release);
  }
  static void Error(natsConnection*, natsSubscription*, natsStatus status,
                    void* closure) {
    if (status == NATS_SLOW_CONSUMER) {
      static_cast<ClusterLink*>(closure)->dropped_in_.fetch_add(
          1, std::memory_order_relaxed);
    }
  }
};

ClusterLink::ClusterLink(ClusterOptions options)
    : options_(std::move(options)) {}

ClusterLink::~ClusterLink() { Stop(); }

std::string ClusterLink::Start(CountsFn counts) {
  counts_ = std::move(counts);
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, options_.url.c_str());
  if (s == NATS_OK) s = natsOptions_SetNoEcho(opts, true);
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);  // forever
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 250);
  if (s == NATS_OK) s = natsOptions_SetReconnectJitter(opts, 100, 100);
  // No buffer to fill while reconnecting: publishes then fail (counted)
  // rather than reach the other nodes late.
  if (s == NATS_OK) s = natsOptions_SetReconnectBufSize(opts, 1);
  // A broker that stops answering is noticed within ~2 s.
  if (s == NATS_OK) s = natsOptions_SetPingInterval(opts, 1000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(opts, 2);
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(opts, true);
  if (s == NATS_OK) {
    s = natsOptions_SetRetryOnFailedConnect(opts, true, &Callbacks::Connected,
                                            this);
  }
  if (s == NATS_OK) {
    s = natsOptions_SetReconnectedCB(opts, &Callbacks::Reconnected, this);
  }
  if (s == NATS_OK) {
    s = natsOptions_SetDisconnectedCB(opts, &Callbacks::Disconnected, this);
  }
  if (s == NATS_OK) {
    s = natsOptions_SetErrorHandler(opts, &Callbacks::Error, this);
  }
  if (s != NATS_OK) {
    if (opts != nullptr) natsOptions_Destroy(opts);
    return std::string("NATS options: ") + natsStatus_GetText(s);
  }
  nats_options_ = opts;
  s = natsConnection_Connect(&connection_, opts);
  if (s == NATS_OK) {
    connected_.store(true, std::memory_order_release);
  } else if (s != NATS_NOT_YET_CONNECTED) {
    natsOptions_Destroy(opts);
    nats_options_ = nullptr;
    return std::string("NATS connect: ") + natsStatus_GetText(s);
  }
  // Every node's presence. Subscribed before the first connect succeeds,
  // cnats sends it once connected.
  const std::string nodes = std::string(kNodePrefix) + "*";
  s = natsConnection_Subscribe(&presence_sub_, connection_, nodes.c_str(),
                               &Callbacks::Message, this);
  if (s != NATS_OK) {
    Stop();
    return std::string("NATS subscribe: ") + natsStatus_GetText(s);
  }
  running_.store(true, std::memory_order_release);
  thread_ = std::thread([this] { Run(); });
  return {};
}

void ClusterLink::Stop() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  running_.store(false, std::memory_order_release);
  if (connection_ != nullptr) {
    // Drained, not just closed: the messages cnats still holds for a
    // subscription are delivered (and freed) before it goes; destroying a
    // live subscription can strand one in the delivery pool.
    if (natsConnection_DrainTimeout(connection_, 1000) == NATS_OK) {
      const auto deadline = Clock::now() + std::chrono::seconds(2);
      while (!natsConnection_IsClosed(connection_) && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    natsConnection_Close(connection_);
  }
  for (auto& [room, sub] : subscriptions_) natsSubscription_Destroy(sub);
  subscriptions_.clear();
  if (presence_sub_ != nullptr) natsSubscription_Destroy(presence_sub_);
  presence_sub_ = nullptr;
  if (connection_ != nullptr) {
    natsConnection_Destroy(connection_);
    connection_ = nullptr;
  }
  if (nats_options_ != nullptr) {
    natsOptions_Destroy(nats_options_);
    nats_options_ = nullptr;
    nats_CloseAndWait(2000);  // cnats' own threads end
  }
  servercore::MutexLock lock(mu_);
  rooms_.clear();
}

bool ClusterLink::Connected() const {
  return connected_.load(std::memory_order_acquire);
}

void ClusterLink::Resync() {
  connected_.store(true, std::memory_order_release);
  {
    std::lock_guard lock(queue_mu_);
    resync_ = true;
  }
  queue_cv_.notify_one();
}

// --- Outgoing --------------------------------------------------------------

void ClusterLink::Publish(uint32_t room, std::string message) {
  if (!Connected() || !running_.load(std::memory_order_acquire)) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_ ||
        queued_bytes_ + message.size() > options_.max_queued_bytes) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queued_bytes_ += message.size();
    queue_.push_back({Outgoing::Op::kPublish, room, std::move(message)});
  }
  queue_cv_.notify_one();
}

void ClusterLink::AddRoom(uint32_t room, std::weak_ptr<Room> handle) {
  {
    servercore::MutexLock lock(mu_);
    rooms_[room] = std::move(handle);
  }
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_) return;
    queue_.push_back({Outgoing::Op::kSubscribe, room, {}});
  }
  queue_cv_.notify_one();
}

void ClusterLink::RemoveRoom(uint32_t room, const Room* handle) {
  {
    servercore::MutexLock lock(mu_);
    auto it = rooms_.find(room);
    if (it == rooms_.end()) return;
    std::shared_ptr<Room> current = it->second.lock();
    if (current != nullptr && current.get() != handle) return;
    rooms_.erase(it);
  }
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_) return;
    queue_.push_back({Outgoing::Op::kUnsubscribe, room, {}});
  }
  queue_cv_.notify_one();
}

void ClusterLink::Run() {
  std::deque<Outgoing> batch;
  const auto wake =
      std::min(options_.presence_period, std::chrono::milliseconds(100));
  for (;;) {
    bool resync = false;
    bool last = false;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait_for(
          lock, wake, [&] { return stopping_ || resync_ || !queue_.empty(); });
      last = stopping_;
      batch.swap(queue_);
      queued_bytes_ = 0;
      resync = std::exchange(resync_, false);
    }
    Drain(batch);
    if (last) {
      // Stopping: what the rooms published as their sessions closed (the
      // leaves) is out; so is a last presence, empty by now, so the other
      // nodes count this one's sessions out at once rather than at expiry.
      PublishPresence(/*force=*/true);
      natsConnection_FlushTimeout(connection_, 500);
      return;
    }
    if (resync) {
      PublishPresence(/*force=*/true);
      // Each room here sends its state again and asks for the others'.
      std::vector<std::shared_ptr<Room>> rooms;
      {
        servercore::MutexLock lock(mu_);
        for (auto& [id, weak] : rooms_) {
          if (auto room = weak.lock()) rooms.push_back(std::move(room));
        }
      }
      for (auto& room : rooms) room->DoAsync(&Room::PublishState, true);
    } else {
      PublishPresence(/*force=*/false);
    }
    ExpireNodes();
  }
}

void ClusterLink::Drain(std::deque<Outgoing>& batch) {
  std::string subject;
  for (Outgoing& item : batch) {
    subject = RoomSubject(item.room);
    switch (item.op) {
      case Outgoing::Op::kPublish: {
        // Checked again here: what was queued before the connection went
        // is dropped, not left for cnats to send after it returns.
        const bool up =
            natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED;
        if (up && natsConnection_Publish(
                      connection_, subject.c_str(), item.data.data(),
                      static_cast<int>(item.data.size())) == NATS_OK) {
          msgs_out_.fetch_add(1, std::memory_order_relaxed);
        } else {
          dropped_.fetch_add(1, std::memory_order_relaxed);
        }
        break;
      }
      case Outgoing::Op::kSubscribe: {
        if (subscriptions_.count(item.room) != 0) break;
        natsSubscription* sub = nullptr;
        // cnats keeps the subscription across reconnects and sends it once
        // connected; only a closed connection refuses it.
        if (natsConnection_Subscribe(&sub, connection_, subject.c_str(),
                                     &Callbacks::Message, this) == NATS_OK) {
          subscriptions_[item.room] = sub;
        }
        break;
      }
      case Outgoing::Op::kUnsubscribe: {
        auto it = subscriptions_.find(item.room);
        if (it == subscriptions_.end()) break;
        natsSubscription_Unsubscribe(it->second);
        natsSubscription_Destroy(it->second);
        subscriptions_.erase(it);
        break;
      }
    }
  }
  batch.clear();
}

void ClusterLink::PublishPresence(bool force) {
  const Clock::time_point now = Clock::now();
  if (!force && now - last_presence_ < options_.presence_period) return;
  std::vector<std::pair<uint32_t, uint32_t>> table;
  counts_(table);
  std::sort(table.begin(), table.end());
  if (!force && table == published_table_ &&
      now - last_presence_ < options_.heartbeat) {
    return;
  }
  last_presence_ = now;
  if (natsConnection_Status(connection_) != NATS_CONN_STATUS_CONNECTED) {
    return;  // presence is not counted as traffic lost: it is sent again
  }
  std::string message =
      cluster::Begin(cluster::Kind::kPresence, options_.node_id,
                     table.size() * cluster::kPresenceEntrySize);
  for (const auto& [room, count] : table) {
    cluster::Append(message, room);
    cluster::Append(message, count);
  }
  const std::string subject =
      std::string(kNodePrefix) + std::to_string(options_.node_id);
  if (natsConnection_Publish(connection_, subject.c_str(), message.data(),
                             static_cast<int>(message.size())) == NATS_OK) {
    msgs_out_.fetch_add(1, std::memory_order_relaxed);
    published_table_ = std::move(table);
  }
}

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
  std::vector<std::pair<uint32_t, uint32_t>> table;
  table.reserve(size / cluster::kPresenceEntrySize);
  for (size_t at = 0; at + cluster::kPresenceEntrySize <= size;
       at += cluster::kPresenceEntrySize) {
    const uint32_t count = cluster::Read<uint32_t>(data + at + 4);
    if (count != 0)
      table.emplace_back(cluster::Read<uint32_t>(data + at), count);
  }
  // A node first heard (or back after expiring): the rooms we share ask for
  // its state, and send ours.
  std::vector<std::shared_ptr<Room>> shared;
  {
    servercore::MutexLock lock(mu_);
    auto [it, is_new] = nodes_.try_emplace(node_id);
    it->second.last_heard = Clock::now();
    if (is_new) {
      for (const auto& entry : table) {
        auto room = rooms_.find(entry.first);
        if (room == rooms_.end()) continue;
        if (auto handle = room->second.lock()) shared.push_back(handle);
      }
    }
    SetTable(it->second, std::move(table));
  }
  for (auto& room : shared) room->DoAsync(&Room::PublishState, true);
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
}

// --- Reading ---------------------------------------------------------------

uint32_t ClusterLink::RemoteCount(uint32_t room) const {
  servercore::MutexLock lock(mu_);
  auto it = remote_counts_.find(room);
  return it == remote_counts_.end() ? 0 : it->second;
}

std::vector<uint16_t> ClusterLink::NodesIn(uint32_t room) const {
  std::vector<uint16_t> out;
  servercore::MutexLock lock(mu_);
  for (const auto& [id, node] : nodes_) {
    for (const auto& entry : node.table) {
      if (entry.first == room) {
        out.push_back(id);
        break;
      }
    }
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
      if (it != remote_counts_.end()) out.emplace_back(room, it->second);
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
