#include "load_session.h"

#include <time.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#include "../common/protocol.h"
#include "game.packets.h"
#include "servercore/packet_framer.h"
#include "servercore/packet_writer.h"

namespace game {
namespace {

using servercore::kMaxPacketLimit;
using servercore::kPacketHeaderSize;
using servercore::LoadU32;
using servercore::LoadU64;
using servercore::MakePacket;
using servercore::MutexLock;
using servercore::PacketWriter;
using servercore::SendBufferRef;

constexpr size_t kFillerOffset = kHeaderSize;
constexpr std::byte kPing[4] = {std::byte{'p'}, std::byte{'i'}, std::byte{'n'},
                                std::byte{'g'}};
// The fence's payload (SendFence): "ping", or "fence" when the load's
// payloads are 4 bytes, so that its size tells it from every load reply.
constexpr std::byte kFence[5] = {std::byte{'f'}, std::byte{'e'}, std::byte{'n'},
                                 std::byte{'c'}, std::byte{'e'}};

std::span<const std::byte> FencePayload(int load_payload) {
  if (load_payload == static_cast<int>(sizeof(kPing))) return kFence;
  return kPing;
}
// S_BYE packets told on stderr; the rest are only counted.
constexpr uint64_t kByesShown = 5;

void Count(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}

int64_t NanosOf(double seconds) { return static_cast<int64_t>(seconds * 1e9); }

WorldCheckerOptions WorldOptions(const LoadConfig& config,
                                 const LoadState& state, uint32_t index) {
  const auto [first, count] = RoomMembers(config, index);
  return {.tick_ns = NanosOf(config.tick_ms / 1e3),  // 0: learn it
          .grace_ns = NanosOf(config.late_grace_ms / 1e3),
          .remote_grace_ns = NanosOf(config.remote_grace_ms / 1e3),
          .self_index = index,
          .room_first = first,
          .room_count = count,
          .moves = state.moves.get(),
          .path_base = state.path_base,
          .hosts = config.hosts.size()};
}

// pattern[i] == i & 0xFF: the filler of sequence s starts at pattern[s & 0xFF].
const std::array<std::byte, 65536 + 256>& Pattern() {
  static const auto pattern = [] {
    std::array<std::byte, 65536 + 256> p{};
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::byte>(i);
    return p;
  }();
  return pattern;
}

// Chat: how many senders session `index` hears, from the first of its room
// (config.senders counts from index 0).
size_t HeardSenders(const LoadConfig& config, uint32_t index) {
  if (config.mode != Mode::kChat) return 0;
  const auto [first, count] = RoomMembers(config, index);
  const auto senders = static_cast<uint32_t>(config.senders);
  return senders > first ? std::min(count, senders - first) : 0;
}

}  // namespace

LoadSession::LoadSession(const LoadConfig& config, LoadState& state,
                         uint32_t index)
    : PacketSession(kMaxPacketLimit),
      config_(config),
      state_(state),
      index_(index),
      host_(HostOf(index, config.hosts.size())),
      room_(RoomOf(config, index)),
      path_(state.path_base + index),
      last_send_ns_(NowNs()),
      chat_first_(RoomMembers(config, index).first),
      received_from_(HeardSenders(config, index)),
      world_(WorldOptions(config, state, index), path_, state.world,
             state.latency) {}

int64_t LoadSession::NowNs() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

void LoadSession::Error(std::atomic<uint64_t>& counter) {
  Count(counter);
  if (host_ < state_.per_host.size()) Count(state_.per_host[host_].errors);
}

void LoadSession::ChargeWorldErrors() {
  const uint64_t now = world_.violations();
  if (now > world_errors_ && host_ < state_.per_host.size()) {
    Count(state_.per_host[host_].errors, now - world_errors_);
  }
  world_errors_ = now;
}

bool LoadSession::SendNoted(SendBufferRef packet, int64_t now_ns) {
  last_send_ns_.store(now_ns, std::memory_order_relaxed);
  return Send(std::move(packet));
}

void LoadSession::OnConnected() {
  if (room_ != 0) {
    // Ready on the S_JOIN: the server has this session in its room by then.
    PacketWriter join(kCJoin, kJoinPayloadSize);
    join.WriteU32(room_);
    SendNoted(join.Finish(), NowNs());
    return;
  }
  // A ping: once its echo is back the server has this session in room 0, so
  // no chat sent after every ping returned can miss it.
  SendNoted(MakePacket(kCEcho, kPing), NowNs());
}

void LoadSession::SendNext(int64_t scheduled_ns) {
  if (config_.mode == Mode::kMove) {
    SendMove();
    return;
  }
  const auto payload = static_cast<size_t>(config_.payload);
  MutexLock lock(send_mu_);
  const uint64_t seq = sent_.load(std::memory_order_relaxed);
  const int64_t now = NowNs();
  const int64_t sent_ns = scheduled_ns != 0 ? scheduled_ns : now;
  PacketWriter packet(config_.mode == Mode::kEcho ? kCEcho : kCChat, payload);
  if (payload >= kHeaderSize) {
    packet.WriteU32(index_)
        .WriteU32(state_.magic)
        .WriteU64(seq)
        .WriteU64(static_cast<uint64_t>(sent_ns))
        .WriteBytes(
            std::span(Pattern()).subspan(seq & 0xFF, payload - kFillerOffset));
  } else {
    const auto header =
        LoadHeader(index_, state_.magic, seq, static_cast<uint64_t>(sent_ns));
    packet.WriteBytes(std::span(header).first(payload));
    sent_times_.push_back({seq, sent_ns});
  }
  if (SendNoted(packet.Finish(), now)) {
    sent_.store(seq + 1, std::memory_order_release);
    Count(state_.sent);
    Count(state_.bytes_sent, kPacketHeaderSize + payload);
  }
}

void LoadSession::SendMove() {
  MutexLock lock(send_mu_);
  const auto seq =
      static_cast<uint32_t>(sent_.load(std::memory_order_relaxed) + 1);
  const Position at = path_.At(seq);
  pb::C_MOVE move;
  move.set_x(at.x);
  move.set_y(at.y);
  move.set_seq(seq);
  SendBufferRef packet = pb::MakeSendBuffer(move);  // a few bytes: never null
  const size_t bytes = packet->WriteSize();
  const int64_t now = NowNs();
  {
    // Before the send: the snapshot that answers may come at once.
    MutexLock world_lock(world_mu_);
    world_.OnMoveSent(seq, now);
  }
  if (state_.moves) state_.moves->OnSent(index_, seq, now);
  if (SendNoted(std::move(packet), now)) {
    sent_.store(seq, std::memory_order_release);
    Count(state_.sent);
    Count(state_.bytes_sent, bytes);
  }
}

void LoadSession::KeepAlive(int64_t now_ns) {
  if (now_ns - last_send_ns_.load(std::memory_order_relaxed) <
          NanosOf(config_.keepalive) ||
      !IsConnected()) {
    return;
  }
  MutexLock lock(send_mu_);
  pb::C_PING ping;
  ping.set_client_time_us(static_cast<uint64_t>(now_ns / 1000));
  {
    MutexLock ping_lock(ping_mu_);
    pings_.push_back(ping.client_time_us());
  }
  if (SendNoted(pb::MakeSendBuffer(ping), now_ns)) Count(state_.pings);
}

void LoadSession::Finish() {
  {
    MutexLock lock(world_mu_);
    world_.Finish();
    ChargeWorldErrors();
  }
  // A C_PING gets its S_PONG (docs/PROTOCOL.md); the run waited for those
  // owed (main.cc). A session cut has been counted as such.
  MutexLock lock(ping_mu_);
  if (!IsConnected()) return;
  for (size_t i = 0; i < pings_.size(); ++i) Error(state_.bad_pong);
}

std::optional<int64_t> LoadSession::MeasuredTickNs() {
  MutexLock lock(world_mu_);
  return world_.tick_ns();
}

void LoadSession::SendFence() {
  MutexLock lock(send_mu_);
  fence_owed_.store(true, std::memory_order_release);
  if (!SendNoted(MakePacket(kCEcho, FencePayload(config_.payload)), NowNs())) {
    fence_owed_.store(false, std::memory_order_release);
  }
}

bool LoadSession::PingsOwed() {
  MutexLock lock(ping_mu_);
  return !pings_.empty() && IsConnected();
}

size_t LoadSession::PendingMoves() {
  MutexLock lock(world_mu_);
  return world_.pending_moves();
}

int64_t LoadSession::Check(std::span<const std::byte> body,
                           uint32_t expected_index, uint64_t due_seq,
                           int64_t sent_ns) {
  const auto payload = static_cast<size_t>(config_.payload);
  if (body.size() != payload) {
    Error(state_.corrupt);
    return -1;
  }
  if (payload < kHeaderSize) {
    // What the header keeps is compared; what it cut off was known.
    const uint64_t seq = SeqInPayload(body, due_seq);
    const auto header = LoadHeader(expected_index, state_.magic, seq,
                                   static_cast<uint64_t>(sent_ns));
    const size_t known = sent_ns != 0 ? payload : std::min<size_t>(payload, 16);
    if (std::memcmp(body.data(), header.data(), known) != 0) {
      Error(state_.corrupt);
      return -1;
    }
    return static_cast<int64_t>(seq);
  }
  if (LoadU32(body.data()) != expected_index ||
      LoadU32(body.data() + 4) != state_.magic) {
    Error(state_.corrupt);
    return -1;
  }
  const uint64_t seq = LoadU64(body.data() + 8);
  if (std::memcmp(body.data() + kFillerOffset, Pattern().data() + (seq & 0xFF),
                  payload - kFillerOffset) != 0) {
    Error(state_.corrupt);
    return -1;
  }
  return static_cast<int64_t>(seq);
}

int64_t LoadSession::TakeSentTime(uint64_t seq) {
  MutexLock lock(send_mu_);
  // Kept in order of seq; those skipped stay (they may still come, late),
  // so the one answered is usually the first, and found by halving if not.
  const auto it = std::lower_bound(
      sent_times_.begin(), sent_times_.end(), seq,
      [](const SentTime& sent, uint64_t s) { return sent.seq < s; });
  if (it == sent_times_.end() || it->seq != seq) return 0;
  const int64_t sent_ns = it->sent_ns;
  sent_times_.erase(it);
  return sent_ns;
}

void LoadSession::OnOwnAnswer(int64_t sent_ns) {
  if (sent_ns != 0) {
    const int64_t latency = NowNs() - sent_ns;
    state_.latency.Record(latency > 0 ? static_cast<uint64_t>(latency) : 0);
  }
  acked_.fetch_add(1, std::memory_order_release);
  // Closed loop: each answer lets one more packet go.
  if (config_.rate == 0 && state_.sending.load(std::memory_order_relaxed)) {
    SendNext();
  }
}

void LoadSession::OnRecvPacket(uint16_t id,
                               std::span<const std::byte> payload) {
  if (bye_seen_) {
    Error(state_.after_bye);
    return;
  }
  if (id == kSEcho && room_ == 0 && !ready() &&
      payload.size() == sizeof(kPing) &&
      std::memcmp(payload.data(), kPing, sizeof(kPing)) == 0) {
    ready_.store(true, std::memory_order_release);
    return;
  }
  if (id == kSEcho && fence_owed_.load(std::memory_order_acquire)) {
    const auto fence = FencePayload(config_.payload);
    if (std::equal(payload.begin(), payload.end(), fence.begin(),
                   fence.end())) {
      fence_owed_.store(false, std::memory_order_release);
      return;
    }
  }
  if (id == kSJoin) {
    OnJoinReply(payload);
    return;
  }
  if (id == kSChat && room_ != 0 && !ready()) {
    // Room 0's chat, queued before this session's C_JOIN took effect: the
    // room being left may still send before the S_JOIN (docs/PROTOCOL.md).
    return;
  }
  if (id == kSChat && !IsOurChat(payload)) {
    Count(state_.foreign_chats);
    return;
  }
  Count(state_.received);
  Count(state_.bytes_received, kPacketHeaderSize + payload.size());
  if (id >= kFirstTypedId) {
    OnTyped(id, payload);
  } else if (id == kSEcho && config_.mode == Mode::kEcho) {
    const bool whole = payload.size() >= kHeaderSize;
    int64_t sent_ns = 0;
    if (!whole) {
      // A short reply answers a packet still owed one, or none: twice (out
      // of order), or a number never sent (damaged). Under 9 bytes the
      // number is all assumed, and a duplicate shows as one reply too many
      // (it takes the next one's place; the last finds none owed).
      const uint64_t seq = SeqInPayload(payload, echo_next_);
      sent_ns = TakeSentTime(seq);
      if (sent_ns == 0) {
        MutexLock lock(send_mu_);
        const bool numbered = payload.size() > 8;
        Error(numbered && seq >= sent_.load(std::memory_order_relaxed)
                  ? state_.corrupt
                  : state_.out_of_order);
        return;
      }
    }
    const int64_t seq = Check(payload, index_, echo_next_, sent_ns);
    if (seq < 0) return;
    if (static_cast<uint64_t>(seq) != echo_next_) {
      // A sequence never sent is a damaged one (in a byte that the filler
      // does not depend on), not a jump that would make every later reply
      // look late. sent_ is stored under send_mu_ after the send.
      if (MutexLock lock(send_mu_);
          static_cast<uint64_t>(seq) >= sent_.load(std::memory_order_relaxed)) {
        Error(state_.corrupt);
        return;
      }
      // One error per break in the order (two for a swap), not one for
      // every reply after it: a dropped reply is one, and lost.
      Error(state_.out_of_order);
      if (static_cast<uint64_t>(seq) > echo_next_) {
        if (gaps_.size() < kMaxGaps) {
          gaps_.push_back({kEchoSlot, echo_next_, static_cast<uint64_t>(seq)});
        }
      } else if (!FillGap(kEchoSlot, static_cast<uint64_t>(seq))) {
        return;  // twice: it answers nothing (else it would hide a loss)
      }
    }
    echo_next_ = std::max(echo_next_, static_cast<uint64_t>(seq) + 1);
    OnOwnAnswer(whole ? static_cast<int64_t>(LoadU64(payload.data() + 16))
                      : sent_ns);
  } else if (id == kSChat && config_.mode == Mode::kChat) {
    OnChat(payload);
  } else {
    Error(state_.unexpected);
  }
}

// One of this run's chats (chat mode): its body starts with a sender index
// and this run's magic. A chat of ours whose magic was damaged shows as a gap
// in its sender's sequence, that is as lost.
bool LoadSession::IsOurChat(std::span<const std::byte> payload) const {
  return config_.mode == Mode::kChat && payload.size() >= kChatSenderSize + 8 &&
         LoadU32(payload.data() + kChatSenderSize + 4) == state_.magic;
}

void LoadSession::OnJoinReply(std::span<const std::byte> payload) {
  if (room_ == 0 || ready()) {
    Error(state_.unexpected);  // never asked for
    return;
  }
  if (payload.size() != kJoinReplyPayloadSize ||
      LoadU32(payload.data()) != room_ || LoadU32(payload.data() + 4) < 1) {
    Error(state_.bad_join);
    return;
  }
  {
    MutexLock lock(world_mu_);
    world_.OnJoined(room_);
  }
  ready_.store(true, std::memory_order_release);
}

void LoadSession::OnChat(std::span<const std::byte> payload) {
  // IsOurChat saw the sender's index and the magic.
  const std::span<const std::byte> body = payload.subspan(kChatSenderSize);
  const uint32_t sender = LoadU32(body.data());
  if (sender >= static_cast<uint32_t>(config_.sessions)) {
    Error(state_.corrupt);
    return;
  }
  if (RoomOf(config_, sender) != room_) {
    Error(state_.chat_wrong_room);
    return;
  }
  const uint32_t slot = sender - chat_first_;
  if (slot >= received_from_.size()) {
    Error(state_.corrupt);  // a session of ours that never sends
    return;
  }
  const bool whole = body.size() >= kHeaderSize;
  const uint64_t due = received_from_[slot].load(std::memory_order_relaxed);
  // Another sender's send time is not known here, and not compared.
  const int64_t sent_ns =
      whole || sender != index_ ? 0 : TakeSentTime(SeqInPayload(body, due));
  const int64_t seq = Check(body, sender, due, sent_ns);
  if (seq < 0) return;
  if (state_.chat_sender_ids) {
    // One id per sender, cluster-wide: a node that relabels the chats it
    // forwards shows here.
    const uint64_t id = LoadU64(payload.data());
    uint64_t first = 0;
    if (!state_.chat_sender_ids[sender].compare_exchange_strong(
            first, id, std::memory_order_relaxed) &&
        first != id) {
      Error(state_.chat_sender_id);
    }
  }
  std::atomic<uint64_t>& next = received_from_[slot];
  const uint64_t expected = next.load(std::memory_order_relaxed);
  if (static_cast<uint64_t>(seq) < expected) {
    // After a later one (out of order, no longer lost), or twice (out of
    // order, and no answer): the expected one stays expected.
    Error(state_.out_of_order);
    if (!FillGap(slot, static_cast<uint64_t>(seq))) return;
  } else {
    if (static_cast<uint64_t>(seq) > expected) {
      skipped_.fetch_add(static_cast<uint64_t>(seq) - expected,
                         std::memory_order_relaxed);
      if (gaps_.size() < kMaxGaps) {
        gaps_.push_back({slot, expected, static_cast<uint64_t>(seq)});
      }
    }
    next.store(static_cast<uint64_t>(seq) + 1, std::memory_order_release);
  }
  if (sender == index_) {
    OnOwnAnswer(whole ? static_cast<int64_t>(LoadU64(body.data() + 16))
                      : sent_ns);
  }
}

bool LoadSession::FillGap(uint32_t slot, uint64_t seq) {
  const auto gap = std::find_if(gaps_.begin(), gaps_.end(), [&](const Gap& g) {
    return g.slot == slot && g.from <= seq && seq < g.to;
  });
  if (gap == gaps_.end()) return false;
  if (slot != kEchoSlot) skipped_.fetch_sub(1, std::memory_order_relaxed);
  if (seq == gap->from) {
    ++gap->from;
  } else if (seq + 1 == gap->to) {
    --gap->to;
  } else {
    // Split; when the list is full the upper part is no longer tracked, and
    // a chat of it that comes late counts as a duplicate.
    const Gap upper{slot, seq + 1, gap->to};
    gap->to = seq;
    if (gaps_.size() < kMaxGaps) gaps_.push_back(upper);
    return true;
  }
  if (gap->from == gap->to) gaps_.erase(gap);
  return true;
}

void LoadSession::OnTyped(uint16_t id, std::span<const std::byte> payload) {
  {
    MutexLock lock(world_mu_);
    if (!world_.AcceptTyped(id)) {
      ChargeWorldErrors();
      return;  // counted
    }
  }
  typed_bytes_ = kPacketHeaderSize + payload.size();
  switch (pb::Dispatch(*this, id, payload)) {
    case servercore::DispatchResult::kHandled:
      break;
    case servercore::DispatchResult::kUnknownId:
      Error(state_.unexpected);
      break;
    case servercore::DispatchResult::kParseError:
      Error(state_.corrupt);
      break;
  }
}

void LoadSession::OnPong(const pb::S_PONG& pong) {
  Count(state_.pongs);
  MutexLock lock(ping_mu_);
  const auto it =
      std::find(pings_.begin(), pings_.end(), pong.client_time_us());
  if (it == pings_.end()) {
    Error(state_.bad_pong);  // never pinged, or the time not echoed
    return;
  }
  // Pongs come in the order of the pings: those before this one never will.
  for (auto skipped = pings_.begin(); skipped != it; ++skipped) {
    Error(state_.bad_pong);
  }
  pings_.erase(pings_.begin(), it + 1);
}

void LoadSession::OnSnapshot(const pb::S_SNAPSHOT& snapshot) {
  // Only after a C_MOVE (OnTyped): never in echo or chat mode.
  MutexLock lock(world_mu_);
  world_.OnSnapshot(snapshot, typed_bytes_, NowNs());
  ChargeWorldErrors();
}

void LoadSession::OnBye(const pb::S_BYE& bye) {
  bye_seen_ = true;
  if (state_.byes.fetch_add(1, std::memory_order_relaxed) < kByesShown) {
    std::fprintf(stderr, "DummyClient: session %u got S_BYE reason %u: %s\n",
                 index_, bye.reason(), bye.detail().c_str());
  }
}

void LoadSession::OnDisconnected(servercore::DisconnectReason) {
  if (!state_.stopping.load(std::memory_order_acquire)) {
    Count(state_.disconnected);
    if (host_ < state_.per_host.size()) {
      Count(state_.per_host[host_].disconnected);
    }
  }
}

}  // namespace game

// The handlers pb::Dispatch calls for the server's typed packets.
namespace game::pb {

void Handle_S_PONG(LoadSession& session, const S_PONG& message) {
  session.OnPong(message);
}

void Handle_S_SNAPSHOT(LoadSession& session, const S_SNAPSHOT& message) {
  session.OnSnapshot(message);
}

void Handle_S_BYE(LoadSession& session, const S_BYE& message) {
  session.OnBye(message);
}

}  // namespace game::pb
