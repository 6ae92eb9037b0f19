// ClusterLink: a GameServer node's one connection to NATS (docs/CLUSTER.md):
// publishes what rooms hand it, subscribes to a room's subject while the
// room exists here, routes what arrives to the room's JobQueue, and keeps
// the other nodes' presence (sessions per room), which expires when a node
// goes silent.
//
// Never blocks a worker: Publish only appends to a bounded queue (what does
// not fit is dropped and counted), and one thread of the link's own drains
// it into cnats, whose publish may block on its socket. While the connection
// is down, everything is dropped and counted, at Publish and again at the
// drain, and cnats keeps no reconnect buffer: nothing sent late, nothing
// twice. Messages from NATS arrive on cnats' delivery thread (one for all
// subscriptions, so in order per publishing node) and become room jobs.
//
// Thread safety: every public member may be called from any thread, after
// Start and until Stop (then Publish and the room calls do nothing).
// Ownership: owns the NATS connection and its thread; holds rooms weakly.
#ifndef SERVERCORE_APPS_GAME_SERVER_CLUSTER_LINK_H_
#define SERVERCORE_APPS_GAME_SERVER_CLUSTER_LINK_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "servercore/mutex.h"
#include "servercore/thread_annotations.h"

// cnats' types, kept out of the header.
struct __natsConnection;
struct __natsSubscription;
struct __natsOptions;
struct __natsMsg;

namespace game {

class Room;

struct ClusterOptions {
  std::vector<std::string> servers;  // nats://HOST:PORT each, one or more
  uint16_t node_id = 0;              // 1..65535
  // Queued for the broker at most; past it Publish drops.
  size_t max_queued_bytes = 8 << 20;
  // Presence goes out this often when it changed, and every heartbeat anyway.
  std::chrono::milliseconds presence_period{250};
  std::chrono::milliseconds heartbeat{1000};
  // A node not heard for this long is dead: its members go.
  std::chrono::milliseconds node_expiry{3000};
};

struct ClusterStats {
  bool connected = false;
  uint64_t msgs_in = 0;
  uint64_t msgs_out = 0;
  uint64_t dropped = 0;     // not published (queue full, broker down, error)
  uint64_t dropped_in = 0;  // deliveries cnats dropped (a slow consumer)
  uint64_t reconnects = 0;
  uint64_t nodes = 0;           // other nodes alive
  uint64_t remote_members = 0;  // their sessions, all rooms
};

class ClusterLink {
 public:
  // Fills the local sessions per room (room, count), for presence.
  using CountsFn =
      std::function<void(std::vector<std::pair<uint32_t, uint32_t>>&)>;

  explicit ClusterLink(ClusterOptions options);
  ~ClusterLink();
  ClusterLink(const ClusterLink&) = delete;
  ClusterLink& operator=(const ClusterLink&) = delete;

  // Connects (or keeps trying in the background when NATS is not up) and
  // starts the thread. An empty string, or why it cannot start at all.
  [[nodiscard]] std::string Start(CountsFn counts);
  // Sends what is queued and a last presence (call it after the sessions
  // are closed: it is empty then), then closes. Idempotent.
  void Stop();

  uint16_t node_id() const noexcept { return options_.node_id; }

  // Queues `message` for room `room`'s subject, or drops and counts it.
  void Publish(uint32_t room, std::string message);
  // Publish, for a message of what `from` holds (its members, its leaves),
  // unless another Room object has taken the id here since `from` was
  // released: then that one, not published (its own messages speak for this
  // node now, and a late one of `from`'s would undo them at the others).
  // Atomic with AddRoom: a newer room's messages are queued after.
  std::shared_ptr<Room> PublishFor(uint32_t room, const Room* from,
                                   std::string message);
  // A room exists here / is gone: subscribe / unsubscribe (in call order),
  // and route what arrives for it. RemoveRoom ignores a room that is not
  // the one registered.
  void AddRoom(uint32_t room, std::weak_ptr<Room> handle);
  void RemoveRoom(uint32_t room, const Room* handle);
  // The other nodes' sessions in `room`, as their latest presence says.
  uint32_t RemoteCount(uint32_t room) const;
  // The other nodes whose latest presence lists sessions in `room`.
  std::vector<uint16_t> NodesIn(uint32_t room) const;
  // For the stats line: rooms here with remote sessions (room, remote count),
  // at most `max`, largest first.
  std::vector<std::pair<uint32_t, uint32_t>> RemoteRooms(size_t max) const;
  ClusterStats GetStats() const;

 private:
  struct Outgoing {
    enum class Op : uint8_t { kPublish, kSubscribe, kUnsubscribe } op;
    uint32_t room = 0;
    std::string data;
  };
  struct Node {
    std::chrono::steady_clock::time_point last_heard;
    uint64_t incarnation = 0;  // its presence's: a new one is a restart
    // room, sessions: sorted by room, one entry each, counts not 0
    std::vector<std::pair<uint32_t, uint32_t>> table;
  };

  // cnats' callbacks (cluster_link.cc).
  struct Callbacks;
  friend struct Callbacks;

  // Connects (or, NATS not answering, leaves cnats trying in the
  // background) and subscribes to the nodes' presence: empty, or why not.
  std::string Open();
  // thread_: cnats 3.4 closes a connection whose first connect timed out
  // (a broker that accepted the TCP connection and never answered, say
  // stopped) and never tries again; a closed connection is replaced, at
  // most every kReopenWait, its room subscriptions made again.
  void ReopenIfClosed();
  void Run();
  void Drain(std::deque<Outgoing>& batch);
  // thread_ (or Stop, after it): destroys a subscription (unsubscribed
  // first if asked), its drops counted.
  void Destroy(__natsSubscription*& sub, bool unsubscribe = false);
  // thread_: adds the deliveries cnats dropped since the last look, for one
  // subscription or all, to dropped_in_ (cnats calls its error handler once
  // when a subscription becomes a slow consumer, then drops in silence
  // until it catches up).
  void CountDroppedIn(__natsSubscription* sub);
  void CountDroppedIn();
  void PublishPresence(bool force);
  void ExpireNodes();
  void Resync();
  void HandlePresence(uint16_t node, const char* data, size_t size);
  // A presence with this node's own id came: logs that another node has it.
  void SameIdHeard();
  void HandleRoom(uint32_t room, const char* data, size_t size);
  std::shared_ptr<Room> FindRoom(uint32_t room) const;
  // Sets this node's table, adjusting remote_counts_ (mu_ held).
  void SetTable(Node& node, std::vector<std::pair<uint32_t, uint32_t>> table)
      SERVERCORE_REQUIRES(mu_);
  bool Connected() const;

  const ClusterOptions options_;
  // Drawn at construction, sent with every presence: the others tell this
  // run of the node from an earlier one with the same id, whose members
  // (same ids, counted from 1 again) must leave at once, not at an expiry
  // that a node restarted within it never reaches.
  const uint64_t incarnation_;
  CountsFn counts_;
  __natsOptions* nats_options_ = nullptr;
  __natsConnection* connection_ = nullptr;
  __natsSubscription* presence_sub_ = nullptr;
  std::thread thread_;

  // The outgoing queue, drained by thread_.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Outgoing> queue_;
  size_t queued_bytes_ = 0;
  bool stopping_ = false;
  bool resync_ = false;  // (re)connected: presence and states again

  // Rooms here, and what the other nodes said.
  mutable servercore::Mutex mu_;
  std::unordered_map<uint32_t, std::weak_ptr<Room>> rooms_
      SERVERCORE_GUARDED_BY(mu_);
  std::unordered_map<uint16_t, Node> nodes_ SERVERCORE_GUARDED_BY(mu_);
  // Sums of u32 counts over at most 65535 nodes: a u64 never wraps (a wrap
  // to 0 would erase a room SetTable still has to take counts out of).
  std::unordered_map<uint32_t, uint64_t> remote_counts_
      SERVERCORE_GUARDED_BY(mu_);
  uint64_t remote_members_ SERVERCORE_GUARDED_BY(mu_) = 0;

  // cnats' delivery thread's alone (one for all subscriptions).
  static constexpr std::chrono::seconds kSameIdLogPeriod{10};
  std::chrono::steady_clock::time_point same_id_logged_;

  // thread_'s alone.
  static constexpr std::chrono::milliseconds kReopenWait{1000};
  std::chrono::steady_clock::time_point next_reopen_;
  uint64_t reopens_ = 0;  // since the connection was last up
  std::unordered_map<uint32_t, __natsSubscription*> subscriptions_;
  std::unordered_map<__natsSubscription*, int64_t> dropped_seen_;
  std::vector<std::pair<uint32_t, uint32_t>> published_table_;
  std::chrono::steady_clock::time_point last_presence_;
  std::chrono::steady_clock::time_point presence_failure_logged_;
  static constexpr std::chrono::milliseconds kDroppedCountPeriod{250};
  std::chrono::steady_clock::time_point dropped_counted_;

  std::atomic<bool> running_{false};
  std::atomic<bool> connected_{false};
  // connection_, for cnats' callbacks (any thread) to tell it from one
  // ReopenIfClosed has replaced.
  std::atomic<__natsConnection*> current_{nullptr};
  std::atomic<uint64_t> msgs_in_{0};
  std::atomic<uint64_t> msgs_out_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> dropped_in_{0};
  std::atomic<uint64_t> reconnects_{0};
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_CLUSTER_LINK_H_
