// SendQueue: a session's outgoing buffers between Session::Send (any thread)
// and its worker (which takes them for one gather write), with the session's
// backpressure accounting.
//
//   Send (any thread) --Push--> [ queued_ ] --TakeAll (worker)--> sending list
//                                                                  |
//   pending_bytes_ += size at Push          -= bytes at Wrote <----+
//
// Wake-ups: only the Push that finds the queue drained is told to wake the
// worker (kQueuedFirst); later Pushes ride along in the same write. The flag
// that says so is cleared by TakeAll (or EndClaim), under the same lock,
// when it finds nothing queued and nothing left to write: a Push that comes
// after that clear wakes the worker again, so no buffer can be stranded.
//
// Backpressure: a Push that would take the unsent bytes past the limit, or
// the chunk memory charged to queued buffers (ChunkPinTracker) past
// 8 * max(limit, 2 MiB), is refused (kOverLimit): the session is a slow
// receiver.
//
// Writing at once (Session::SendNow): the worker may Claim a drained queue,
// write bytes of its own straight to the socket, and EndClaim; Pushes that
// come meanwhile queue behind them, as behind a write in flight.
//
// Thread safety: Push, PushLast, pending_bytes and Close from any thread;
// TakeAll, Finished, Settle, Claim and EndClaim on the session's worker only.
// Ownership: holds a SendBufferRef to every queued buffer until TakeAll hands
// it over.
#ifndef SERVERCORE_SRC_SEND_QUEUE_H_
#define SERVERCORE_SRC_SEND_QUEUE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <utility>
#include <vector>

#include "chunk_pin_tracker.h"
#include "servercore/send_buffer.h"
#include "servercore/thread_annotations.h"
#include "spin_lock.h"

namespace servercore::internal {

class SendQueue {
 public:
  enum class PushResult {
    kQueuedFirst,  // queued; the queue was drained: wake the worker
    kQueued,       // queued behind others; the worker is already asked
    kOverLimit,    // refused: the session is a slow receiver
    kClosed,       // refused: closed, or the last buffer is queued
  };

  // Before first use.
  void SetLimit(size_t max_pending_bytes) noexcept {
    max_pending_bytes_ = max_pending_bytes;
  }

  // Any thread. Moves from `buffer` only when it is queued. `*grown` is set
  // to the bytes the queue's own storage grew by (0 unless it reallocated),
  // for the memory budget.
  PushResult Push(SendBufferRef& buffer, size_t* grown) {
    return Push(buffer, grown, /*last=*/false);
  }
  // Any thread: Push `buffer` as the last one (a goodbye): once it is
  // queued, every later Push is refused (kClosed) as after Close, while what
  // is queued, `buffer` at the end, is still taken and written.
  PushResult PushLast(SendBufferRef& buffer, size_t* grown) {
    return Push(buffer, grown, /*last=*/true);
  }
  // Any thread: bytes queued or being written, not yet taken by the kernel.
  size_t pending_bytes() const noexcept {
    return pending_bytes_.load(std::memory_order_relaxed);
  }
  // Worker thread. Appends everything queued to `sending` (by swapping when
  // `sending` is empty, so the two vectors' capacities circulate and steady
  // state allocates nothing). Returns false when there was nothing to take
  // and `sending` is empty: the queue is drained, and the next Push wakes the
  // worker again. `*grown`: as for Push, for `sending`.
  bool TakeAll(std::vector<SendBufferRef>& sending, size_t* grown);
  // Worker thread: the kernel took `bytes` more bytes; `done` is a buffer it
  // finished (called once per finished buffer, in queue order, before the
  // bytes are settled with Settle). The rest of a claim, which was never
  // pushed, is the first to finish after it: the trackers skip it.
  void Finished(const SendBuffer& done) noexcept {
    if (std::exchange(unpushed_next_, false)) return;
    released_charge_ += head_pins_.Charge(done);
  }
  void Settle(size_t bytes) noexcept {
    SpinLockGuard lock(mu_);
    SubPending(bytes);
    pinned_charge_ -= std::exchange(released_charge_, 0);
  }
  // Worker thread: claims an idle queue for `size` bytes the worker writes
  // itself, outside the queue (Session::SendNow). True when nothing is
  // queued or being written, the queue is open and `size` is within the
  // limit: then `size` counts as pending, and until EndClaim a Push queues
  // without waking the worker (kQueued), so whatever another thread sends
  // meanwhile goes out after these bytes. False changes nothing.
  bool Claim(size_t size);
  // Worker thread: ends a claim, of whose bytes the kernel took `written`.
  // `rest_kept`: the worker kept the rest, in a buffer of its own, to write
  // before anything queued (its Finished is then skipped). True when the worker
  // must be asked to flush: for that rest, or for what was pushed during the
  // claim; false when the queue is drained again (the next Push wakes it).
  bool EndClaim(size_t written, bool rest_kept);
  // Worker thread: frees the queue's storage if nothing is queued (a quiet
  // session keeps none). Returns the bytes freed (see Push's `grown`).
  size_t ReleaseIdle();
  // Any thread: drops everything queued; every later Push is refused.
  // Returns the bytes of storage that freed (see Push's `grown`).
  size_t Close();

 private:
  PushResult Push(SendBufferRef& buffer, size_t* grown, bool last);

  // The chunk-memory budget: what max_pending_bytes of the smallest packets
  // take in their chunks (a 4-byte packet behind its 24-byte SendBuffer:
  // 8 times its size), so a session is cut for its bytes, as the contract
  // says, unless its buffers are scattered over chunks it shares with
  // others. Never below 8 times 2 MiB, so a small max_pending_bytes does
  // not make every receiver of a busy room, whose queue spans a few chunks,
  // look slow. (At max_pending_bytes itself, a client pipelining 100,000
  // C_JOINs and echoes was cut with 1.2 MB unsent: each 12-byte reply takes
  // 36 bytes of chunk.)
  size_t PinnedChargeLimit() const noexcept {
    return kPinnedPerPendingByte *
           std::max<size_t>(max_pending_bytes_, size_t{2} << 20);
  }
  static constexpr size_t kPinnedPerPendingByte = 8;
  static_assert(kPinnedPerPendingByte * 4 >= sizeof(SendBuffer) + 4);

  // pending_bytes_ is written only under mu_, which Push holds anyway: a
  // plain load and store, not a locked read-modify-write, which costs as
  // much again as the lock itself on every member of a broadcast. Atomic
  // only for pending_bytes(), read from any thread without the lock; so
  // not GUARDED_BY, and every write goes through these two.
  void AddPending(size_t bytes) SERVERCORE_REQUIRES(mu_) {
    pending_bytes_.store(pending_bytes_.load(std::memory_order_relaxed) + bytes,
                         std::memory_order_relaxed);
  }
  void SubPending(size_t bytes) SERVERCORE_REQUIRES(mu_) {
    pending_bytes_.store(pending_bytes_.load(std::memory_order_relaxed) - bytes,
                         std::memory_order_relaxed);
  }

  size_t max_pending_bytes_ = 0;
  std::atomic<size_t> pending_bytes_{0};  // written under mu_ (AddPending)

  SpinLock mu_;  // one Push per Send: see spin_lock.h
  std::vector<SendBufferRef> queued_ SERVERCORE_GUARDED_BY(mu_);
  size_t pinned_charge_ SERVERCORE_GUARDED_BY(mu_) = 0;  // ChunkPinTracker
  // True from the Push that found the queue drained (or a Claim) until
  // TakeAll (or EndClaim) finds it drained again: while set, Push does not
  // wake the worker.
  bool flush_requested_ SERVERCORE_GUARDED_BY(mu_) = false;
  // Set by Close, and by PushLast once its buffer is queued.
  bool closed_ SERVERCORE_GUARDED_BY(mu_) = false;
  // Worker side (here, where it fills padding): the next buffer to finish
  // is a claim's rest (EndClaim).
  bool unpushed_next_ = false;
  ChunkPinTracker tail_pins_ SERVERCORE_GUARDED_BY(mu_);

  // Worker side.
  ChunkPinTracker head_pins_;
  size_t released_charge_ = 0;  // charges of buffers finished, not settled
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_SEND_QUEUE_H_
