// RoomWork: the jobs GameServer's sessions have pushed to rooms and the rooms
// have not run yet, counted across the server, and the flow control's
// thresholds that follow from it (GameSession, "Flow control").
//
// Each session already stops reading past kRoomy.jobs of its own jobs
// queued. That bounds one session, not a thousand: clients pipelining chats
// into a room busy on another worker queue 1,024 jobs each, outside the
// memory budget (ten of them: 10,240 in RoomWorkTest), so a thousand would
// hold about 100 MiB. So the jobs are counted here too, against a cap (a
// quarter of --max-memory at kJobBytes each), and so are joins not yet
// announced, each of which may hold a Room (kJoinBytes; 500 clients
// pipelining joins to fresh rooms held 32,000 rooms, 32 MB, by heaptrack),
// and past half of it sessions stop at a few jobs each, past it at one. The
// same goes while the service's own budget is past half (Session::MemoryUse):
// queued chats pin their packets there, and a budget full of them would be shed
// from the readers' output (ten flooders of 2 KiB chats: 5.2 times a 4 MiB
// budget).
//
// Thread safety: every member may be called from any thread.
#ifndef SERVERCORE_APPS_GAME_SERVER_ROOM_WORK_H_
#define SERVERCORE_APPS_GAME_SERVER_ROOM_WORK_H_

#include <atomic>
#include <cstdint>

namespace game {

class RoomWork {
 public:
  // What a queued job costs, about: the job (its callable inline) and its
  // slot in the queue.
  static constexpr uint64_t kJobBytes = 256;
  // What a join not yet announced costs, about: the Room it may have made
  // (about 830 bytes, heaptrack), which lives until the session's stay
  // there is over, and its share of the directory.
  static constexpr uint64_t kJoinBytes = 1024;

  // How far one session may run ahead of its rooms: jobs pushed and not
  // run, and joins not announced.
  struct Limits {
    uint64_t jobs;
    uint32_t joins;
  };
  static constexpr Limits kRoomy{1024, 64};  // the usual
  static constexpr Limits kTight{16, 4};     // past half the cap
  static constexpr Limits kFull{1, 1};       // past the cap: one at a time

  // `max_memory`: the server's --max-memory, a quarter of which the jobs
  // and joins may take.
  explicit RoomWork(uint64_t max_memory) : cap_bytes_(max_memory / 4) {}

  void JobPushed() noexcept { jobs_.fetch_add(1, std::memory_order_relaxed); }
  void JobsDone(uint64_t n = 1) noexcept {
    jobs_.fetch_sub(n, std::memory_order_relaxed);
  }
  void JoinPushed() noexcept { joins_.fetch_add(1, std::memory_order_relaxed); }
  void JoinsDone(uint64_t n = 1) noexcept {
    joins_.fetch_sub(n, std::memory_order_relaxed);
  }

  // The limits as the work and `memory_use` (the service's budget in use, 0
  // to 1) stand.
  Limits Now(double memory_use) const noexcept {
    const uint64_t bytes = this->bytes();
    if (bytes > cap_bytes_ || memory_use > 0.75) return kFull;
    if (bytes > cap_bytes_ / 2 || memory_use > 0.5) return kTight;
    return kRoomy;
  }

  uint64_t jobs() const noexcept {
    return jobs_.load(std::memory_order_relaxed);
  }
  uint64_t joins() const noexcept {
    return joins_.load(std::memory_order_relaxed);
  }
  uint64_t bytes() const noexcept {
    return jobs() * kJobBytes + joins() * kJoinBytes;
  }
  uint64_t cap_bytes() const noexcept { return cap_bytes_; }

 private:
  const uint64_t cap_bytes_;
  std::atomic<uint64_t> jobs_{0};
  std::atomic<uint64_t> joins_{0};
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_ROOM_WORK_H_
