// GameSession: one client of GameServer, speaking docs/PROTOCOL.md: echo, join
// a room, chat to the room, move in its world; typed packets (ids 1000 and
// up, game.proto) go to the generated Dispatch and the handlers in
// typed_handlers.cc. Every session starts in room 0.
//
// The session's room and its place in the world are its worker's: it pushes
// its joins, leaves, chats and moves to its room as jobs (room.h says how
// they keep PROTOCOL.md's ordering rules) and never waits on a room.
//
// Replies stay in request order. What the session answers itself (S_ECHO,
// S_PONG) and its close on a protocol error would overtake what its room
// jobs still have to send it (an S_JOIN, its own S_CHAT). So the session
// counts the jobs it pushed and the rooms count the ones that ran; while the
// two differ, or its latest join is not yet announced, a reply or the close
// goes through the current room as one more job (Room::Relay), behind the
// others. Settled, the worker sends directly: the usual case costs two
// atomic loads.
//
// Echoes are gathered. While settled, the C_ECHO packets of one delivery (one
// read's worth) are answered together when the delivery ends or before the
// session does anything else, so the order of replies is unchanged. Small
// ones are copied into one buffer (one queue entry instead of one per
// packet, as a hand-written echo server does); large ones (1 KiB and up on
// average) go out with Session::SendNow, their payloads written from where
// they were received, so the usual 4 KiB echo is never copied in user space.
//
// Flow control. A client may send faster than its rooms take its packets (a
// stream of C_JOINs to fresh rooms, chats into a crowded room): the jobs
// would wait in the rooms' queues, with what they hold, without bound. Past
// 1,024 jobs pushed and not run, or 64 joins not announced (each may hold a
// Room of its own), the session stops reading (PauseReading) until the rooms
// have caught up half way; the client waits in TCP's window, not in the
// server's memory, and loses nothing. With many such clients the limits
// shrink (RoomWork: to 16 and 4 when the server's queued jobs or its memory
// budget are past half their bounds, to one at a time past them), so the
// jobs of all of them stay bounded too.
//
// Thread safety: as PacketSession; the room fields are set in OnCreated on
// the accepting thread before the session reaches its worker (the hand-over
// orders it), and touched only on the session's worker thread after that
// (its packets, OnClosing and OnDisconnected run there).
#ifndef SERVERCORE_APPS_GAME_SERVER_GAME_SESSION_H_
#define SERVERCORE_APPS_GAME_SERVER_GAME_SESSION_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include "goodbye.h"
#include "room.h"
#include "room_directory.h"
#include "servercore/packet_session.h"

namespace game {

class GameSession final : public servercore::PacketSession {
 public:
  GameSession(RoomDirectory& rooms, size_t max_packet)
      : PacketSession(max_packet), rooms_(rooms) {}
  // Jobs that never said they were done (those that found the session gone
  // from its room) leave the server's count with it: no job can reach a
  // session once the rooms hold no reference to it.
  ~GameSession() override {
    rooms_.work().JobsDone(jobs_pushed_ -
                           jobs_done_.load(std::memory_order_acquire));
    rooms_.work().JoinsDone(join_serial_ -
                            announced_.load(std::memory_order_acquire));
  }

  // For the typed-packet handlers (typed_handlers.cc), which are free
  // functions called on this session's worker by the generated Dispatch.
  using PacketSession::ProtocolError;
  // A valid C_MOVE: the session's new position, and its entry into the
  // world if it is the first.
  void Move(float x, float y, uint32_t seq);
  // Worker thread: sends `packet` to this session after everything its room
  // jobs owe it (see above).
  void Reply(servercore::SendBufferRef packet);

  // Room jobs, any thread: a job this session pushed has run; its stay
  // `serial` in a room was announced (S_JOIN sent).
  void JobDone() noexcept {
    rooms_.work().JobsDone();
    jobs_done_.fetch_add(1, std::memory_order_seq_cst);
    if (wants_resume_.load(std::memory_order_seq_cst)) MaybeResume();
  }
  void Announced(uint32_t serial) noexcept {
    const uint32_t before =
        announced_.exchange(serial, std::memory_order_seq_cst);
    if (static_cast<int32_t>(serial - before) > 0) {
      rooms_.work().JoinsDone(serial - before);
    }
    if (wants_resume_.load(std::memory_order_seq_cst)) MaybeResume();
  }

 protected:
  void OnCreated() override;
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override;
  void OnDisconnected(servercore::DisconnectReason reason) override;
  void OnProtocolError(std::string_view why) override;
  // A bad header still says which packet it was: id >= 1000 earns S_BYE.
  void OnBadHeader(uint16_t size, uint16_t id) override;
  // So does the header of a packet begun and not finished (the client sent
  // that header, whether or not the rest ever comes).
  void OnBegunPacket(uint16_t size, uint16_t id) override;
  void OnReadComplete() override { FlushEchoes(); }
  // A client that closed its sending side still reads: what its room owes
  // it (an S_JOIN, its own S_CHAT) goes out before the close.
  bool OnPeerClosed() override;
  // The server closes the session: it leaves its room now, and says why to
  // a client that sent a packet of id 1000 or more (goodbye.h).
  servercore::SendBufferRef OnClosing(
      servercore::DisconnectReason reason) override;

 private:
  void HandleEcho(std::span<const std::byte> payload);
  // Sends the S_ECHO replies gathered during this delivery as one buffer.
  void FlushEchoes();
  void HandleJoin(std::span<const std::byte> payload);
  void HandleChat(std::span<const std::byte> payload);
  void HandleTyped(uint16_t id, std::span<const std::byte> payload);
  void RejectId(uint16_t id);
  // Out of its room for good (a job to the room); nothing once it is.
  void LeaveRoom();
  bool Settled() const noexcept;
  // Worker thread, after each packet that pushed a job: pauses reading when
  // the rooms are too far behind (flow control, above).
  void MaybePause();
  // Any thread: resumes reading once paused and the rooms caught up half way
  // (once per pause: whoever takes wants_resume_).
  void MaybeResume() noexcept;
  std::shared_ptr<GameSession> Self();
  // Pushes a job for this session to its room, and counts it.
  template <typename Method, typename... Args>
  void ToRoom(Method method, Args&&... args) {
    ++jobs_pushed_;
    rooms_.work().JobPushed();
    room_->DoAsync(method, std::forward<Args>(args)...);
  }

  RoomDirectory& rooms_;
  std::shared_ptr<Room> room_;  // null once closing
  uint32_t room_id_ = 0;
  uint32_t join_serial_ = 0;  // names this session's stays in rooms
  WorldPosition position_;
  uint64_t jobs_pushed_ = 0;
  std::atomic<uint64_t> jobs_done_{0};
  std::atomic<uint32_t> announced_{0};  // the latest join_serial_ announced
  // Flow control: set while paused until a room thread (or the worker)
  // takes it to resume; the counts to reach first, set before it.
  std::atomic<bool> wants_resume_{false};
  std::atomic<uint64_t> resume_jobs_at_{0};
  std::atomic<uint32_t> resume_joins_at_{0};
  bool sent_typed_ = false;  // a packet with id >= 1000 arrived (worker)
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_GAME_SESSION_H_
