// LoadSession: one DummyClient connection. It sends numbered packets (echo,
// chat or C_MOVE) and checks every packet it gets back: echo payloads byte
// for byte and in order; chat messages per sender with no gap, reorder or
// duplicate, none from another room, and each sender named by the same
// session id at every receiver; snapshots by its WorldChecker; and
// the S_PONG of each C_PING it sent to keep itself alive.
//
// Payload of every echo and chat load packet: load_payload.h. A payload
// under kHeaderSize bytes carries the header cut short: what it
// leaves out is known to the checker instead (an echo's sequence is the next
// one due; a chat's, the next one due from its sender; the send time of an
// own packet comes from a list of them kept in send order), and only what is
// known is checked. Chat needs kMinChatPayload bytes: the sender's index and
// the magic that tell this run's chats from other clients'.
//
// Thread safety: SendNext and KeepAlive may be called from any thread (a
// per-session lock keeps sequence order equal to queue order); the hooks and
// the Handle_S_* handlers run on the session's worker; the counters read by
// the reporter are atomics, the checker is behind its own lock.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_LOAD_SESSION_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_LOAD_SESSION_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "game.pb.h"
#include "host_list.h"
#include "latency_histogram.h"
#include "load_payload.h"
#include "move_log.h"
#include "servercore/mutex.h"
#include "servercore/packet_session.h"
#include "servercore/send_buffer.h"
#include "world_checker.h"

namespace game {

enum class Mode { kEcho, kChat, kMove };

struct LoadConfig {
  std::string host = "127.0.0.1";
  int port = 7777;
  // The servers, session i on hosts[HostOf(i, hosts.size())]: --hosts, or
  // the one of --host and --port.
  std::vector<HostPort> hosts;
  int sessions = 100;
  Mode mode = Mode::kEcho;
  int room_size = 0;  // sessions per room (rooms 1, 2, …); 0 = all in room 0
  int payload = 64;
  double rate = 0;  // packets/s per sending session; 0 = closed loop
  int depth = 1;    // closed loop: packets in flight per sending session
  double duration = 10;
  double warmup = 0;  // seconds of load before the measured duration
  int senders = 0;    // chat: how many sessions send (0 = all)
  int threads = 1;
  double tick_ms = 0;  // move: the server's --tick-ms; 0: learned (TickClock)
  double late_grace_ms = 500;  // move: allowed beyond two ticks
  double remote_grace_ms = 0;  // move: and more for a mover on another node
  double keepalive = 10;       // seconds of silence before a C_PING
  double drain_ms = 5000;  // after the load: wait this long for what is owed
  int first_room = 1;      // with rooms: the first room id used
  double idle = 0;  // seconds connected and silent but for C_PING, after load
  std::string json;
};

// The room of session `index`: first_room + index / room_size, or 0
// without rooms. A room's members are consecutive indices (RoomMembers).
inline uint32_t RoomOf(const LoadConfig& config, uint32_t index) {
  return config.room_size > 0
             ? static_cast<uint32_t>(config.first_room) +
                   index / static_cast<uint32_t>(config.room_size)
             : 0;
}

// What went to one host (HostList) and what went wrong with its sessions.
struct HostCounters {
  std::atomic<uint64_t> connected{0};  // sessions connected to it
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> disconnected{0};
  // Every other error its sessions saw as receivers (corrupt, out of order,
  // the world's rules broken, ...); losses are counted at the end.
  std::atomic<uint64_t> errors{0};
};

// The first index and the number of the sessions in the room of session
// `index`.
inline std::pair<uint32_t, uint32_t> RoomMembers(const LoadConfig& config,
                                                 uint32_t index) {
  const auto sessions = static_cast<uint32_t>(config.sessions);
  if (config.room_size <= 0) return {0, sessions};
  const auto size = static_cast<uint32_t>(config.room_size);
  const uint32_t first = index / size * size;
  return {first, std::min(size, sessions - first)};
}

// Counters shared by all sessions of a run.
struct LoadState {
  explicit LoadState(size_t hosts = 1) : per_host(hosts) {}

  std::atomic<bool> sending{false};
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> corrupt{0};          // wrong bytes or sizes
  std::atomic<uint64_t> out_of_order{0};     // gaps, reorders, duplicates
  std::atomic<uint64_t> unexpected{0};       // packet ids we never asked for
  std::atomic<uint64_t> disconnected{0};     // closed by the server mid-run
  std::atomic<uint64_t> refused{0};          // connections that failed
  std::atomic<uint64_t> bad_join{0};         // S_JOIN of another room, or empty
  std::atomic<uint64_t> chat_wrong_room{0};  // S_CHAT from another room
  // S_CHAT naming its sender by another session id than the sender's other
  // S_CHATs do, at this or any other receiver (on any server).
  std::atomic<uint64_t> chat_sender_id{0};
  std::atomic<uint64_t> pings{0};  // C_PING sent (keep-alive)
  std::atomic<uint64_t> pongs{0};
  // S_PONG unasked for, with another time than the C_PING's, or never
  // (skipped by a later one, or still owed at the end, after a wait of up
  // to --drain-ms for the pongs owed, by a session still connected).
  std::atomic<uint64_t> bad_pong{0};
  // Packets after an S_BYE: it is the last a session gets.
  std::atomic<uint64_t> after_bye{0};
  std::atomic<uint64_t> byes{0};  // S_BYE (the close counts as disconnected)
  // S_CHATs of clients not of this run (room 0 is everyone's; a room of
  // ours may be shared): legal traffic, not checked, not counted received.
  std::atomic<uint64_t> foreign_chats{0};
  LatencyHistogram latency;  // round trip (echo, chat) or move to snapshot
  WorldStats world;
  std::vector<HostCounters> per_host;  // by LoadConfig::hosts' order
  // Move mode: every session's moves, for the other members of its room.
  std::unique_ptr<MoveLog> moves;
  // Chat mode: the session id the first S_CHAT of each sender (by client
  // index) carried, 0 until then; every other must carry the same.
  std::unique_ptr<std::atomic<uint64_t>[]> chat_sender_ids;
  int64_t start_ns = 0;  // open loop: the schedule's origin
  // The magic of this run's load payloads, drawn at each start: two
  // DummyClients chatting in one room tell their chats apart by it.
  uint32_t magic = 0x31435344;  // "DSC1" until drawn
  // Move mode: session i walks MovePath(path_base + i); drawn at each start
  // too, so that two DummyClients moving in one room walk apart
  // (WorldCheckerOptions::path_base).
  uint32_t path_base = 0;
};

class LoadSession final : public servercore::PacketSession {
 public:
  LoadSession(const LoadConfig& config, LoadState& state, uint32_t index);

  // Sends the next numbered packet (C_ECHO, C_CHAT or C_MOVE). For echo and
  // chat `scheduled_ns`, when not 0, is the open-loop send time latency is
  // measured from; a move's latency counts from when it is queued.
  void SendNext(int64_t scheduled_ns = 0);
  // Sends C_PING if this session has sent nothing for --keepalive seconds.
  void KeepAlive(int64_t now_ns);
  // The run is over: checks what only the end can tell.
  void Finish();

  uint32_t index() const noexcept { return index_; }
  // Which of LoadConfig::hosts this session connects to.
  size_t host() const noexcept { return host_; }
  // Connected and in its room (its echo "ping" or its S_JOIN came back).
  bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }
  uint64_t sent() const noexcept {
    return sent_.load(std::memory_order_acquire);
  }
  // Own packets answered (echo replies, or own chats back): the closed-loop
  // window is sent() - acked().
  uint64_t acked() const noexcept {
    return acked_.load(std::memory_order_acquire);
  }
  // Chat: the next message expected from the sender with client index
  // `sender`; each one before it was received, or skipped (Skipped).
  uint64_t ReceivedFrom(uint32_t sender) const noexcept {
    const uint32_t slot = sender - chat_first_;
    return slot < received_from_.size()
               ? received_from_[slot].load(std::memory_order_acquire)
               : 0;
  }
  // Chat: messages never received though a later one of the same sender
  // was (a cluster drops what it cannot forward while its broker is away):
  // lost, not reordered.
  uint64_t Skipped() const noexcept {
    return skipped_.load(std::memory_order_relaxed);
  }
  // Move: moves sent and not yet shown back in a snapshot.
  size_t PendingMoves();
  // Move: the tick period this session measured (WorldChecker), if any.
  std::optional<int64_t> MeasuredTickNs();
  // C_PINGs sent and not answered yet.
  bool PingsOwed();
  // Echo: sends the fence, one last C_ECHO unlike any load packet. Answers
  // come in order, so once its echo is back every reply the server sent
  // before it has been read: with payloads too short for a sequence
  // number, a reply sent twice shows only as one reply too many, and
  // without the fence it could come after the run stopped reading.
  void SendFence();
  // The fence is sent and not answered yet.
  bool FenceOwed() const noexcept {
    return fence_owed_.load(std::memory_order_acquire) && IsConnected();
  }

  static int64_t NowNs() noexcept;

  // The server's typed packets, from pb::Dispatch (game.packets.h) on the
  // worker.
  void OnPong(const pb::S_PONG& pong);
  void OnSnapshot(const pb::S_SNAPSHOT& snapshot);
  void OnBye(const pb::S_BYE& bye);

 protected:
  void OnConnected() override;
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override;
  void OnDisconnected(servercore::DisconnectReason reason) override;

 private:
  // Counts one error in `counter` and against this session's host.
  void Error(std::atomic<uint64_t>& counter);
  // Charges this session's host with the world rules broken since the last
  // call (the WorldChecker counts them).
  void ChargeWorldErrors() SERVERCORE_REQUIRES(world_mu_);
  // Sends `packet` and notes the time for KeepAlive.
  bool SendNoted(servercore::SendBufferRef packet, int64_t now_ns);
  void SendMove();
  void OnTyped(uint16_t id, std::span<const std::byte> payload);
  void OnJoinReply(std::span<const std::byte> payload);
  bool IsOurChat(std::span<const std::byte> payload) const;
  void OnChat(std::span<const std::byte> payload);
  // Checks one load payload from the session of index `expected_index`;
  // returns its sequence, or -1 (counted) if bad. Payloads shorter than
  // kHeaderSize are checked against `due_seq`, the sequence due next, and
  // `sent_ns` (0: unknown), where they lack them.
  int64_t Check(std::span<const std::byte> body, uint32_t expected_index,
                uint64_t due_seq, int64_t sent_ns);
  // Short payloads: the send time of own packet `seq`, then forgotten; 0 if
  // `seq` is not owed an answer (answered already, or never sent). Those of
  // packets never answered stay (as many as were lost).
  int64_t TakeSentTime(uint64_t seq);
  // An own packet came back; it was sent (or scheduled) at `sent_ns`, 0 if
  // not known (no latency then).
  void OnOwnAnswer(int64_t sent_ns);

  const LoadConfig& config_;
  LoadState& state_;
  const uint32_t index_;
  const size_t host_;
  const uint32_t room_;
  const MovePath path_;
  servercore::Mutex send_mu_;
  // Payloads shorter than kHeaderSize: the sequence and send time of each
  // own packet not answered yet, oldest first.
  struct SentTime {
    uint64_t seq;
    int64_t sent_ns;
  };
  std::deque<SentTime> sent_times_ SERVERCORE_GUARDED_BY(send_mu_);
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> acked_{0};
  uint64_t echo_next_ = 0;  // the seq the next S_ECHO should carry (worker)
  std::atomic<bool> ready_{false};
  std::atomic<bool> fence_owed_{false};  // SendFence
  std::atomic<int64_t> last_send_ns_;
  // Chat: next sequence expected from each sender this session can hear
  // (the senders of its room: client indices chat_first_ and up), not from
  // every session: 20,000 sessions would hold 3 GB of these.
  uint32_t chat_first_ = 0;
  std::vector<std::atomic<uint64_t>> received_from_;
  // Worker only: chats skipped, [from, to) of the sender in `slot`, or echo
  // replies skipped (slot kEchoSlot), that may still come late (a reorder,
  // not a loss); at most kMaxGaps of them.
  struct Gap {
    uint32_t slot;
    uint64_t from;
    uint64_t to;
  };
  static constexpr size_t kMaxGaps = 256;
  static constexpr uint32_t kEchoSlot = ~uint32_t{0};
  std::vector<Gap> gaps_;
  // A chat below its sender's next expected, or an echo reply below the
  // next due: true (a chat no longer counted skipped) if it was skipped,
  // false if it came before (a duplicate).
  bool FillGap(uint32_t slot, uint64_t seq);
  std::atomic<uint64_t> skipped_{0};
  // Worker only: the size of the typed packet being dispatched; whether an
  // S_BYE came.
  size_t typed_bytes_ = 0;
  bool bye_seen_ = false;
  servercore::Mutex world_mu_;
  WorldChecker world_ SERVERCORE_GUARDED_BY(world_mu_);
  uint64_t world_errors_ SERVERCORE_GUARDED_BY(world_mu_) = 0;
  servercore::Mutex ping_mu_;
  // client_time_us of each C_PING not answered yet, oldest first.
  std::deque<uint64_t> pings_ SERVERCORE_GUARDED_BY(ping_mu_);
};

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_LOAD_SESSION_H_
