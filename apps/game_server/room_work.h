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

#include "servercore/check.h"
#include "servercore/service.h"

namespace game {

class RoomWork {
 public:
  // What a queued job costs, about: the job (its callable inline) and its
  // slot in the queue.
  static constexpr uint64_t kJobBytes = 256;
  // What a join not yet announced costs, about: the Room it may have made
  // (its object about 830 bytes by heaptrack; with what it allocates and
  // the allocator's share, RSS grew by about 3 KiB per pending join in a
  // flood of them), which lives until the session's stay there is over.
  static constexpr uint64_t kJoinBytes = 2048;

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

  // Before the service starts: from then on what is counted here is
  // charged to its memory budget too (Service::ChargeMemory, in steps of
  // kChargeStep), so the budget's count is the whole server's. Detach once
  // the service has stopped and before it goes (sessions it leaves to the
  // rooms may end later).
  void Attach(servercore::Service& service) noexcept {
    service_.store(&service, std::memory_order_relaxed);
  }
  void Detach() noexcept { service_.store(nullptr, std::memory_order_relaxed); }

  void JobPushed() noexcept {
    jobs_.fetch_add(1, std::memory_order_relaxed);
    Charge();
  }
  void JobsDone(uint64_t n = 1) noexcept {
    const uint64_t before = jobs_.fetch_sub(n, std::memory_order_relaxed);
    SERVERCORE_CHECK(before >= n, "RoomWork: %llu jobs done of %llu counted",
                     static_cast<unsigned long long>(n),
                     static_cast<unsigned long long>(before));
    Charge();
  }
  void JoinPushed() noexcept {
    joins_.fetch_add(1, std::memory_order_relaxed);
    Charge();
  }
  // A join is counted before any of its jobs is pushed: its room may
  // announce it before the push returns.
  void JoinsDone(uint64_t n = 1) noexcept {
    const uint64_t before = joins_.fetch_sub(n, std::memory_order_relaxed);
    SERVERCORE_CHECK(before >= n,
                     "RoomWork: %llu joins announced of %llu counted",
                     static_cast<unsigned long long>(n),
                     static_cast<unsigned long long>(before));
    Charge();
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
  // What the budget has been charged (within kChargeStep of bytes()).
  int64_t charged() const noexcept {
    return charged_.load(std::memory_order_relaxed);
  }

  static constexpr int64_t kChargeStep = 64 * 1024;

 private:
  // Brings the budget's charge to within a step of what is counted. Each
  // successful exchange charges the difference it made, so the budget holds
  // exactly charged_, whoever wins.
  void Charge() noexcept {
    servercore::Service* service = service_.load(std::memory_order_relaxed);
    if (service == nullptr) return;
    int64_t charged = charged_.load(std::memory_order_relaxed);
    for (;;) {
      // Read again after a lost exchange: a stale count would put back a
      // charge another thread has just taken off.
      const auto now = static_cast<int64_t>(bytes());
      // (Exactly when nothing is left: no crumbs after a flood.)
      if (now - charged < kChargeStep && charged - now < kChargeStep &&
          (now != 0 || charged == 0)) {
        return;
      }
      if (charged_.compare_exchange_weak(charged, now,
                                         std::memory_order_relaxed)) {
        service->ChargeMemory(now - charged);
        return;
      }
    }
  }

  const uint64_t cap_bytes_;
  std::atomic<servercore::Service*> service_{nullptr};
  std::atomic<int64_t> charged_{0};
  std::atomic<uint64_t> jobs_{0};
  std::atomic<uint64_t> joins_{0};
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_ROOM_WORK_H_
