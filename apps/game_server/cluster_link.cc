#include "cluster_link.h"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string_view>

#include "cluster_wire.h"
#include "room.h"

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
          kind == cluster::Kind::kPresence) {
        // NoEcho: a presence with this node's id is another process's.
        if (node != link->node_id()) {
          link->HandlePresence(node, data + cluster::kHeaderSize,
                               size - cluster::kHeaderSize);
        } else {
          link->SameIdHeard();
        }
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
  static void Disconnected(natsConnection* connection, void* closure) {
    auto* link = static_cast<ClusterLink*>(closure);
    // A late word from a connection ReopenIfClosed has replaced.
    if (connection != link->current_.load(std::memory_order_acquire)) return;
    link->connected_.store(false, std::memory_order_release);
  }
};

namespace {
// Not zero (a Node's "none yet"), and unlike any earlier run's.
uint64_t DrawIncarnation() {
  std::random_device device;
  const uint64_t drawn =
      (uint64_t{device()} << 32) ^ device() ^
      static_cast<uint64_t>(
          std::chrono::system_clock::now().time_since_epoch().count());
  return drawn == 0 ? 1 : drawn;
}
}  // namespace

ClusterLink::ClusterLink(ClusterOptions options)
    : options_(std::move(options)), incarnation_(DrawIncarnation()) {}

ClusterLink::~ClusterLink() { Stop(); }

std::string ClusterLink::Start(CountsFn counts) {
  counts_ = std::move(counts);
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  // A list goes in as servers: cnats 3.4 takes SetURL's text as one URL.
  std::vector<const char*> server_names;
  for (const std::string& server : options_.servers) {
    server_names.push_back(server.c_str());
  }
  if (s == NATS_OK) {
    s = natsOptions_SetServers(opts, server_names.data(),
                               static_cast<int>(server_names.size()));
  }
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
  if (s != NATS_OK) {
    if (opts != nullptr) natsOptions_Destroy(opts);
    return std::string("NATS options: ") + natsStatus_GetText(s);
  }
  nats_options_ = opts;
  if (std::string error = Open(); !error.empty()) {
    Stop();
    return error;
  }
  running_.store(true, std::memory_order_release);
  thread_ = std::thread([this] { Run(); });
  return {};
}

std::string ClusterLink::Open() {
  natsStatus s = natsConnection_Connect(&connection_, nats_options_);
  current_.store(connection_, std::memory_order_release);
  if (s == NATS_OK) {
    connected_.store(true, std::memory_order_release);
  } else if (s != NATS_NOT_YET_CONNECTED) {
    return std::string("NATS connect: ") + natsStatus_GetText(s);
  }
  // Every node's presence. Subscribed before the first connect succeeds,
  // cnats sends it once connected.
  const std::string nodes = std::string(kNodePrefix) + "*";
  s = natsConnection_Subscribe(&presence_sub_, connection_, nodes.c_str(),
                               &Callbacks::Message, this);
  // Closed already: cnats gave up on a first connect that timed out (see
  // ReopenIfClosed), which replaces the connection, presence included.
  if (s == NATS_CONNECTION_CLOSED) {
    presence_sub_ = nullptr;
    return {};
  }
  if (s != NATS_OK) {
    return std::string("NATS subscribe: ") + natsStatus_GetText(s);
  }
  return {};
}

void ClusterLink::ReopenIfClosed() {
  // Null after a reopen that failed; cnats says closed then too.
  const natsConnStatus status = natsConnection_Status(connection_);
  if (status == NATS_CONN_STATUS_CONNECTED) reopens_ = 0;  // logs again
  if (status != NATS_CONN_STATUS_CLOSED) return;
  const Clock::time_point now = Clock::now();
  if (now < next_reopen_) return;
  next_reopen_ = now + kReopenWait;
  connected_.store(false, std::memory_order_release);
  for (auto& [room, sub] : subscriptions_) Destroy(sub);
  subscriptions_.clear();
  Destroy(presence_sub_);
  current_.store(nullptr, std::memory_order_release);
  if (connection_ != nullptr) natsConnection_Destroy(connection_);
  connection_ = nullptr;
  if (reopens_++ == 0) {
    std::fprintf(stderr,
                 "cluster: the connection to NATS closed by itself; opening "
                 "a new one every %lld ms until one stays up\n",
                 static_cast<long long>(kReopenWait.count()));
  }
  // May block for cnats' connect timeout (2 s) against a broker that
  // accepts and never answers; nothing is published meanwhile anyway.
  const std::string error = Open();
  if (!error.empty() && reopens_ == 1) {
    std::fprintf(stderr, "cluster: %s\n", error.c_str());
  }
  // The rooms here, subscribed again (sent once connected, as at start);
  // after a failed Open, at the next try. A subscription still queued
  // finds its room subscribed and is skipped; so is a removal's.
  std::vector<uint32_t> rooms;
  {
    servercore::MutexLock lock(mu_);
    for (const auto& [room, handle] : rooms_) rooms.push_back(room);
  }
  for (const uint32_t room : rooms) {
    natsSubscription* sub = nullptr;
    if (natsConnection_Subscribe(&sub, connection_, RoomSubject(room).c_str(),
                                 &Callbacks::Message, this) == NATS_OK) {
      subscriptions_[room] = sub;
    }
  }
  // Connected at once: no callback comes, so resynchronize here (presence
  // and every room's state, as after a reconnect).
  if (connected_.load(std::memory_order_acquire)) Resync();
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
  for (auto& [room, sub] : subscriptions_) Destroy(sub);
  subscriptions_.clear();
  Destroy(presence_sub_);
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

std::shared_ptr<Room> ClusterLink::PublishFor(uint32_t room, const Room* from,
                                              std::string message) {
  servercore::MutexLock lock(mu_);  // (then queue_mu_, in Publish)
  auto it = rooms_.find(room);
  if (it != rooms_.end()) {
    std::shared_ptr<Room> current = it->second.lock();
    if (current != nullptr && current.get() != from) return current;
  }
  Publish(room, std::move(message));
  return nullptr;
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
    if (!last) ReopenIfClosed();
    Drain(batch);
    if (last) {
      // Stopping: what the rooms published as their sessions closed (the
      // leaves) is out; so is a last presence, empty by now, so the other
      // nodes count this one's sessions out at once rather than at expiry.
      PublishPresence(/*force=*/true);
      natsConnection_FlushTimeout(connection_, 500);
      CountDroppedIn();
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
    // A walk of every subscription: not at every wake (each batch of
    // publishes wakes this thread), a few times a second.
    if (const Clock::time_point now = Clock::now();
        now - dropped_counted_ >= kDroppedCountPeriod) {
      dropped_counted_ = now;
      CountDroppedIn();
    }
  }
}

void ClusterLink::Destroy(natsSubscription*& sub, bool unsubscribe) {
  if (sub == nullptr) return;
  CountDroppedIn(sub);
  dropped_seen_.erase(sub);
  if (unsubscribe) natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  sub = nullptr;
}

void ClusterLink::CountDroppedIn(natsSubscription* sub) {
  int64_t dropped = 0;
  // (cnats answers no once the connection is closed: the few dropped
  // since the last look are not counted.)
  if (natsSubscription_GetDropped(sub, &dropped) != NATS_OK) return;
  int64_t& seen = dropped_seen_[sub];
  if (dropped > seen) {
    dropped_in_.fetch_add(static_cast<uint64_t>(dropped - seen),
                          std::memory_order_relaxed);
    seen = dropped;
  }
}

void ClusterLink::CountDroppedIn() {
  for (const auto& [room, sub] : subscriptions_) CountDroppedIn(sub);
  if (presence_sub_ != nullptr) CountDroppedIn(presence_sub_);
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
        Destroy(it->second, /*unsubscribe=*/true);
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
  std::string message = cluster::Begin(
      cluster::Kind::kPresence, options_.node_id,
      cluster::kIncarnationSize + table.size() * cluster::kPresenceEntrySize);
  cluster::Append(message, incarnation_);
  for (const auto& [room, count] : table) {
    cluster::Append(message, room);
    cluster::Append(message, count);
  }
  const std::string subject =
      std::string(kNodePrefix) + std::to_string(options_.node_id);
  const natsStatus status =
      natsConnection_Publish(connection_, subject.c_str(), message.data(),
                             static_cast<int>(message.size()));
  if (status == NATS_OK) {
    msgs_out_.fetch_add(1, std::memory_order_relaxed);
    published_table_ = std::move(table);
    return;
  }
  // Tried again every period; said every kSameIdLogPeriod while it fails.
  // Too many rooms for one message (about 131,000 at the broker's default
  // max_payload of 1 MiB) is the one cause that does not pass by itself.
  if (presence_failure_logged_ != Clock::time_point{} &&
      now - presence_failure_logged_ < kSameIdLogPeriod) {
    return;
  }
  presence_failure_logged_ = now;
  std::fprintf(
      stderr,
      "cluster: presence of %zu rooms (%zu bytes; the broker takes "
      "at most %lld) not published: %s; the other nodes count this "
      "node's sessions out once it expires\n",
      table.size(), message.size(),
      static_cast<long long>(natsConnection_GetMaxPayload(connection_)),
      natsStatus_GetText(status));
}

}  // namespace game
