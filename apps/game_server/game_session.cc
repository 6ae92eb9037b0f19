#include "game_session.h"

#include <sys/uio.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <vector>

#include "../common/protocol.h"
#include "game.packets.h"
#include "servercore/packet_framer.h"
#include "servercore/packet_writer.h"
#include "servercore/send_buffer_manager.h"

namespace game {

using servercore::kMaxPacketLimit;
using servercore::kPacketHeaderSize;
using servercore::LoadU32;
using servercore::MakePacket;
using servercore::PacketWriter;
using servercore::SendBufferRef;

void GameSession::OnCreated() {
  // At accept, in accept order: a client whose connect returned is in room 0
  // before any connection made after it can chat.
  room_ = rooms_.Acquire(0);
  room_id_ = 0;
  ToRoom(&Room::Join, Self(), join_serial_, position_, JoinKind::kInitial);
}

servercore::SendBufferRef GameSession::OnClosing(
    servercore::DisconnectReason reason) {
  // Now, not at OnDisconnected: the socket's last I/O may complete up to two
  // seconds later, while what is queued drains and the client acknowledges
  // it, and a member the server has closed is no longer in the room (S_JOIN
  // counts, snapshots). Its room's later sends are refused from here on
  // anyway (IsConnected is false), and no packet of it is handled again.
  LeaveRoom();
  return sent_typed_ ? MakeGoodbye(reason) : nullptr;
}

void GameSession::OnDisconnected(servercore::DisconnectReason) { LeaveRoom(); }

void GameSession::LeaveRoom() {
  if (room_ == nullptr) return;
  ToRoom(&Room::Leave, id(), join_serial_, std::shared_ptr<Room>(),
         uint32_t{0});
  rooms_.Release(room_id_);
  room_.reset();
}

void GameSession::OnRecvPacket(uint16_t id,
                               std::span<const std::byte> payload) {
  if (id == kCEcho) {
    HandleEcho(payload);  // (a job only when not settled: Reply pauses)
    return;
  }
  FlushEchoes();                                // the replies so far go first
  if (id >= kFirstTypedId) sent_typed_ = true;  // valid or not: S_BYE later
  switch (id) {
    case kCJoin:
      HandleJoin(payload);
      break;
    case kCChat:
      HandleChat(payload);
      break;
    default:
      if (id >= kFirstTypedId) {
        HandleTyped(id, payload);
      } else {
        RejectId(id);
      }
  }
  MaybePause();
}

void GameSession::MaybePause() {
  const uint64_t jobs =
      jobs_pushed_ - jobs_done_.load(std::memory_order_relaxed);
  const uint32_t joins =
      join_serial_ - announced_.load(std::memory_order_relaxed);
  if (jobs < RoomWork::kFull.jobs && joins < RoomWork::kFull.joins) return;
  const RoomWork::Limits limits = rooms_.work().Now(MemoryUse());
  if (jobs < limits.jobs && joins < limits.joins) return;
  if (!IsConnected() || ReadingPaused()) return;
  PauseReading();
  resume_jobs_at_.store(jobs_pushed_ - limits.jobs / 2,
                        std::memory_order_relaxed);
  resume_joins_at_.store(join_serial_ - limits.joins / 2,
                         std::memory_order_relaxed);
  // Then look again: a room that finished meanwhile did not see the flag.
  wants_resume_.store(true, std::memory_order_seq_cst);
  MaybeResume();
}

void GameSession::MaybeResume() noexcept {
  const uint64_t done = jobs_done_.load(std::memory_order_seq_cst);
  const uint32_t announced = announced_.load(std::memory_order_seq_cst);
  // Differences, not comparisons: a threshold set early in a session's life
  // lies "below 0", wrapped (it was a hang: a pause before 512 jobs waited
  // for a count past 2^64).
  if (static_cast<int64_t>(
          done - resume_jobs_at_.load(std::memory_order_relaxed)) < 0 ||
      static_cast<int32_t>(
          announced - resume_joins_at_.load(std::memory_order_relaxed)) < 0) {
    return;
  }
  if (wants_resume_.exchange(false, std::memory_order_seq_cst)) {
    ResumeReading();
  }
}

void GameSession::HandleTyped(uint16_t id, std::span<const std::byte> payload) {
  switch (pb::Dispatch(*this, id, payload)) {
    case servercore::DispatchResult::kHandled:
      break;
    case servercore::DispatchResult::kUnknownId:  // S_* ids among them
      RejectId(id);
      break;
    case servercore::DispatchResult::kParseError: {
      char why[64];
      std::snprintf(why, sizeof(why), "packet id %u: payload does not parse",
                    unsigned{id});
      ProtocolError(why);
      break;
    }
  }
}

void GameSession::RejectId(uint16_t id) {
  char why[48];
  std::snprintf(why, sizeof(why), "packet id %u not accepted", unsigned{id});
  ProtocolError(why);
}

namespace {

// The payloads of the C_ECHO packets gathered on this thread: spans into the
// delivery being handled, which stay valid until its OnReadComplete. One
// session's delivery at a time runs on a thread, and it ends flushed.
struct EchoBatch {
  // At most this many replies in a batch: two iovecs each when written from
  // where they were received, far within IOV_MAX.
  static constexpr size_t kMaxReplies = 256;
  // Replies whose payloads average at least this many bytes are written
  // from the receive memory (Session::SendNow), each header from headers,
  // when the session has nothing pending; smaller ones are copied, since
  // for them one copy costs less than the kernel's work per iovec.
  static constexpr size_t kMinDirectPayload = 1024;
  // A copy goes in buffers of at most this much (unless one reply is
  // larger): far below a send-buffer chunk, so a batch never costs a
  // dedicated allocation.
  static constexpr size_t kMaxCopyBytes = 8 * 1024;
  std::vector<std::span<const std::byte>> payloads;
  size_t bytes = 0;  // the replies' size, headers included
  // For the direct write.
  std::vector<std::array<std::byte, kPacketHeaderSize>> headers;
  std::vector<iovec> iovecs;
};
thread_local EchoBatch t_echoes;

}  // namespace

void GameSession::HandleEcho(std::span<const std::byte> payload) {
  if (!Settled()) {
    FlushEchoes();
    Reply(MakePacket(kSEcho, payload));
    return;
  }
  if (t_echoes.payloads.size() == EchoBatch::kMaxReplies) FlushEchoes();
  t_echoes.payloads.push_back(payload);
  t_echoes.bytes += kPacketHeaderSize + payload.size();
}

void GameSession::FlushEchoes() {
  EchoBatch& batch = t_echoes;
  if (batch.payloads.empty()) return;
  const size_t count = batch.payloads.size();
  // Direct only when nothing is pending: otherwise SendNow would copy the
  // whole batch into one buffer, larger than a chunk.
  if (batch.bytes >=
          count * (kPacketHeaderSize + EchoBatch::kMinDirectPayload) &&
      PendingSendBytes() == 0) {
    batch.headers.resize(count);
    batch.iovecs.resize(2 * count);
    for (size_t i = 0; i < count; ++i) {
      const std::span<const std::byte> payload = batch.payloads[i];
      servercore::WritePacketHeader(
          batch.headers[i].data(),
          static_cast<uint16_t>(kPacketHeaderSize + payload.size()), kSEcho);
      batch.iovecs[2 * i] = {batch.headers[i].data(), kPacketHeaderSize};
      // sendmsg only reads it.
      batch.iovecs[2 * i + 1] = {const_cast<std::byte*>(payload.data()),
                                 payload.size()};
    }
    SendNow(batch.iovecs);  // gathered only while settled
  } else {
    // As many replies per buffer as fit kMaxCopyBytes, at least one.
    size_t next = 0;
    while (next < count) {
      size_t end = next;
      size_t bytes = 0;
      do {
        bytes += kPacketHeaderSize + batch.payloads[end].size();
        ++end;
      } while (end < count &&
               bytes + kPacketHeaderSize + batch.payloads[end].size() <=
                   EchoBatch::kMaxCopyBytes);
      SendBufferRef buffer = servercore::SendBufferManager::Instance().Open(
          static_cast<uint32_t>(bytes));
      std::byte* at = buffer->Buffer();
      for (; next < end; ++next) {
        const std::span<const std::byte> payload = batch.payloads[next];
        const size_t size = kPacketHeaderSize + payload.size();
        servercore::WritePacketHeader(at, static_cast<uint16_t>(size), kSEcho);
        if (!payload.empty()) {
          std::memcpy(at + kPacketHeaderSize, payload.data(), payload.size());
        }
        at += size;
      }
      buffer->Close(static_cast<uint32_t>(bytes));
      Send(std::move(buffer));  // gathered only while settled
    }
  }
  batch.payloads.clear();
  batch.bytes = 0;
}

void GameSession::HandleJoin(std::span<const std::byte> payload) {
  if (payload.size() != kJoinPayloadSize) {
    ProtocolError("C_JOIN payload is not 4 bytes");
    return;
  }
  const uint32_t room = LoadU32(payload.data());
  // The hand-over of room.h: Leave to the old room, which confirms to the
  // new one once this session is out; the new one sends S_JOIN then.
  std::shared_ptr<Room> next = rooms_.Acquire(room);
  const uint32_t serial = join_serial_ + 1;
  // Counted before any job can announce it (the new room may run the Join
  // right here, and the count must never go below zero).
  rooms_.work().JoinPushed();
  ToRoom(&Room::Leave, id(), join_serial_, next, serial);
  rooms_.Release(room_id_);
  room_ = std::move(next);
  ToRoom(&Room::Join, Self(), serial, position_, JoinKind::kAnnounced);
  room_id_ = room;
  join_serial_ = serial;
}

void GameSession::HandleChat(std::span<const std::byte> payload) {
  const size_t chat_payload = kChatSenderSize + payload.size();
  if (kPacketHeaderSize + chat_payload > kMaxPacketLimit) {
    ProtocolError("C_CHAT too long: S_CHAT would exceed 65535 bytes");
    return;
  }
  // Built once; the same buffer is queued to every member of the room.
  PacketWriter chat(kSChat, chat_payload);
  chat.WriteU64(id()).WriteBytes(payload);
  ToRoom(&Room::Chat, id(), chat.Finish());
}

void GameSession::Move(float x, float y, uint32_t seq) {
  position_ = WorldPosition{.in_world = true, .x = x, .y = y, .seq = seq};
  ToRoom(&Room::Move, id(), position_);
}

bool GameSession::Settled() const noexcept {
  return announced_.load(std::memory_order_acquire) == join_serial_ &&
         jobs_done_.load(std::memory_order_acquire) == jobs_pushed_;
}

void GameSession::Reply(SendBufferRef packet) {
  if (Settled()) {
    Send(std::move(packet));
  } else {
    ToRoom(&Room::Relay, id(), std::move(packet), RelayAfter::kNothing);
    MaybePause();  // (the settled path, every echo's, costs nothing more)
  }
}

void GameSession::OnBadHeader(uint16_t, uint16_t id) {
  if (id >= kFirstTypedId) sent_typed_ = true;
}

void GameSession::OnBegunPacket(uint16_t, uint16_t id) {
  if (id >= kFirstTypedId) sent_typed_ = true;
}

void GameSession::OnProtocolError(std::string_view) {
  FlushEchoes();  // the replies to the packets before the bad one
  if (Settled() || room_ == nullptr) {
    Disconnect(servercore::DisconnectReason::kProtocolError);
  } else {
    ToRoom(&Room::Relay, id(), SendBufferRef(), RelayAfter::kProtocolError);
  }
}

bool GameSession::OnPeerClosed() {
  if (Settled() || room_ == nullptr) return true;
  ToRoom(&Room::Relay, id(), SendBufferRef(), RelayAfter::kPeerClosed);
  return false;
}

std::shared_ptr<GameSession> GameSession::Self() {
  return std::static_pointer_cast<GameSession>(shared_from_this());
}

}  // namespace game
