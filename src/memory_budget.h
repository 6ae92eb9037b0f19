// MemoryBudget: ServiceOptions::max_memory, the whole service's budget for
// the memory held for its sessions (docs/PROTOCOL.md "Slow receivers").
//
// What it counts, from counters that already exist or change once per
// connection (nothing is added to the per-packet path):
//   - receive memory: each session's receive tail (the storage holding an
//     unfinished message between reads, from its first byte until the
//     worker's sweep finds it empty); the reads themselves land in
//     per-worker buffers, not counted: 64 KiB per epoll worker, and on
//     io_uring at most an eighth of the budget for all workers together
//     (worker_read_bytes);
//   - unsent output and the chunks it pins: SendBufferManager's bytes_pinned,
//     the chunks in use and the dedicated buffers. This is the real memory,
//     a buffer shared by a whole room counted once. The pool is
//     process-wide, so a process with several services charges each of
//     them with all of it;
//   - the sessions' queues themselves (a reference per queued buffer, and
//     the iovecs of a write), counted when their storage reallocates: for a
//     broadcast to many sessions that stop reading they outweigh the data.
//
// What it does:
//   - Accept: past 90% of the budget the listener stops accepting (new
//     connections wait in the kernel's backlog, as under EMFILE) until use is
//     back below 80% (AcceptAllowed, asked by the accepting worker each
//     round and at each accept, IoWorker::MayAccept).
//   - Send: a Send that would take use past 100% sheds load: the session
//     holding the most unsent output is disconnected as a slow receiver
//     (ShedFor), together with any holding at least 3/4 as much. Those are
//     typically the sessions that stopped reading during one broadcast: they
//     hold the same buffers, in the same shared chunks, so that memory comes
//     back only when the last of them goes; one by one, 15,000 of them would
//     take seconds while the flood goes on. Finding them is a scan of the
//     service's sessions (two relaxed loads each), done only when over the
//     budget, by one thread at a time and at most once per kShedInterval; a
//     Send that finds a scan running or recent goes through, so readers lose
//     nothing. While a session holding more than twice what any open one
//     holds is still closing, nobody else is cut: its memory is on its way
//     back (a reader a little behind must not pay for it).
//   - Receive: a session's receive tail that would take the receive tails
//     past half the budget is not made: that session is disconnected as a
//     slow receiver (TryAddRecv). Sessions accepted below 90% may all begin
//     large messages at once. The other half is the output's: were the tails
//     allowed the whole budget, every Send would then shed the largest
//     holder of output, however little it holds.
//
// Thread safety: every member may be called from any thread. Ownership:
// holds raw pointers to the sessions it lists; a session is listed from its
// creation until its socket is closed (SocketState removes it), so every
// pointer is to a live session.
#ifndef SERVERCORE_SRC_MEMORY_BUDGET_H_
#define SERVERCORE_SRC_MEMORY_BUDGET_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "servercore/mutex.h"
#include "servercore/session.h"
#include "servercore/thread_annotations.h"

namespace servercore::internal {

class MemoryBudget {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kShedInterval = std::chrono::milliseconds(1);

  explicit MemoryBudget(size_t max_bytes) noexcept : max_bytes_(max_bytes) {}

  // A session and its receive buffer's capacity; `*slot` is where the budget
  // keeps its place (the caller stores it, the budget changes it).
  void Add(Session& session, size_t recv_bytes, size_t* slot);
  // Idempotent: `*slot` is SIZE_MAX once removed.
  void Remove(size_t recv_bytes, size_t* slot) noexcept;

  // A session's receive tail is to grow by `bytes`: counts them and
  // returns true, or returns false (counting a kick; the session is to be
  // disconnected) when the sessions' receive memory would pass recv_limit().
  // Accepting pauses at 90%, but sessions accepted earlier may all begin
  // large messages at once: without this their tails would hold memory
  // without bound. Unsent output past the budget is not a reader's doing:
  // the Sends shed it (ShedFor), and a reading session never loses its tail
  // for it. A compare-and-swap, so workers growing tails at once cannot
  // pass the bound together.
  bool TryAddRecv(size_t bytes) noexcept {
    size_t recv = recv_bytes_.load(std::memory_order_relaxed);
    do {
      if (recv + bytes > recv_limit()) [[unlikely]] {
        kicks_.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    } while (!recv_bytes_.compare_exchange_weak(recv, recv + bytes,
                                                std::memory_order_relaxed));
    return true;
  }
  // A session's receive tail shrank (SocketState).
  void RemoveRecv(size_t bytes) noexcept {
    recv_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }

  // The sessions' own bookkeeping of unsent output (their queues' storage:
  // one reference per queued buffer, which for a buffer broadcast to a room
  // costs more than the buffer), counted when it reallocates.
  void AddOverhead(size_t bytes) noexcept {
    overhead_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  void RemoveOverhead(size_t bytes) noexcept {
    overhead_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }

  size_t max_bytes() const noexcept { return max_bytes_; }
  // The service's worker count, set once by Service::Start before the
  // workers start.
  void set_workers(size_t workers) noexcept {
    workers_ = std::max<size_t>(workers, 1);
  }
  // What one worker's own read buffers may hold at most (io_uring's provided
  // buffers): an eighth of the budget, shared by the workers. They are not
  // counted in Used() (they are the worker's, not a session's), so this
  // bounds them instead: without it eight workers' 2 MiB each came to half
  // of a 32 MiB budget on top of it.
  size_t worker_read_bytes() const noexcept {
    return max_bytes_ / 8 / workers_;
  }
  // What the receive tails may hold together: half the budget, so that
  // they never leave the output less than the other half.
  size_t recv_limit() const noexcept { return max_bytes_ / 2; }
  // The sessions' receive tails, of Used().
  size_t recv_bytes() const noexcept {
    return recv_bytes_.load(std::memory_order_relaxed);
  }
  size_t Used() const noexcept;
  // The accepting worker, each round and each accept: false past 90% until
  // below 80%.
  bool AcceptAllowed() noexcept;
  bool accept_paused() const noexcept {
    return accept_paused_.load(std::memory_order_relaxed);
  }
  // A Send of `bytes`: when it would take use past the budget, disconnects
  // the largest holder of unsent output (rate-limited, see above).
  void ShedFor(size_t bytes) {
    if (Used() + bytes > max_bytes_) [[unlikely]] {
      Shed();
    }
  }

  uint64_t accept_pauses() const noexcept {
    return accept_pauses_.load(std::memory_order_relaxed);
  }
  uint64_t kicks() const noexcept {
    return kicks_.load(std::memory_order_relaxed);
  }

 private:
  void Shed();

  const size_t max_bytes_;
  size_t workers_ = 1;
  std::atomic<size_t> recv_bytes_{0};
  std::atomic<size_t> overhead_bytes_{0};
  std::atomic<bool> accept_paused_{false};
  std::atomic<bool> scanning_{false};
  std::atomic<int64_t> next_scan_{0};  // Clock ticks
  std::atomic<uint64_t> accept_pauses_{0};
  std::atomic<uint64_t> kicks_{0};
  // The sessions one scan disconnects; used only by the scanning thread.
  std::vector<SessionRef> victims_;

  Mutex mu_;
  // Each session's slot (SocketState::budget_slot_) is its index here.
  std::vector<Session*> sessions_ SERVERCORE_GUARDED_BY(mu_);
  std::vector<size_t*> slots_ SERVERCORE_GUARDED_BY(mu_);
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_MEMORY_BUDGET_H_
