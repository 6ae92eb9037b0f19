#include "send_queue.h"

#include <utility>

namespace servercore::internal {

SendQueue::PushResult SendQueue::Push(SendBufferRef& buffer, size_t* grown,
                                      bool last) {
  *grown = 0;
  const size_t size = buffer->WriteSize();
  SpinLockGuard lock(mu_);
  // Close empties the queue under this lock: a buffer pushed after it would
  // never be sent or freed.
  if (closed_) return PushResult::kClosed;
  const size_t charge = tail_pins_.Charge(*buffer);
  if (pending_bytes_.load(std::memory_order_relaxed) + size >
          max_pending_bytes_ ||
      pinned_charge_ + charge > PinnedChargeLimit()) {
    // Not queued; the trackers no longer agree, but the session is done.
    return PushResult::kOverLimit;
  }
  AddPending(size);
  pinned_charge_ += charge;
  const size_t capacity = queued_.capacity();
  queued_.push_back(std::move(buffer));
  *grown = (queued_.capacity() - capacity) * sizeof(SendBufferRef);
  if (last) closed_ = true;
  return std::exchange(flush_requested_, true) ? PushResult::kQueued
                                               : PushResult::kQueuedFirst;
}

bool SendQueue::TakeAll(std::vector<SendBufferRef>& sending, size_t* grown) {
  *grown = 0;
  SpinLockGuard lock(mu_);
  if (queued_.empty()) {
    // Cleared under the lock that Push takes: a Push after this wakes us.
    if (sending.empty()) flush_requested_ = false;
    return !sending.empty();
  }
  if (sending.empty()) {
    sending.swap(queued_);
  } else {
    const size_t capacity = sending.capacity();
    for (SendBufferRef& buffer : queued_) sending.push_back(std::move(buffer));
    queued_.clear();
    *grown = (sending.capacity() - capacity) * sizeof(SendBufferRef);
  }
  return true;
}

bool SendQueue::Claim(size_t size) {
  SpinLockGuard lock(mu_);
  // No flush requested: TakeAll found nothing queued and nothing left to
  // write, and no Push came since.
  if (closed_ || flush_requested_ || size > max_pending_bytes_) return false;
  AddPending(size);
  flush_requested_ = true;  // Pushes from here on only queue
  return true;
}

bool SendQueue::EndClaim(size_t written, bool rest_kept) {
  unpushed_next_ = rest_kept;
  SpinLockGuard lock(mu_);
  SubPending(written);
  if (rest_kept || !queued_.empty()) return true;  // the flag stays set
  flush_requested_ = false;
  return false;
}

size_t SendQueue::ReleaseIdle() {
  SpinLockGuard lock(mu_);
  if (!queued_.empty() || queued_.capacity() == 0) return 0;
  const size_t bytes = queued_.capacity() * sizeof(SendBufferRef);
  std::vector<SendBufferRef>().swap(queued_);
  return bytes;
}

size_t SendQueue::Close() {
  std::vector<SendBufferRef> dropped;
  {
    SpinLockGuard lock(mu_);
    closed_ = true;
    dropped.swap(queued_);
  }
  // Released outside the lock: a last reference returns a chunk to the pool.
  return dropped.capacity() * sizeof(SendBufferRef);
}

}  // namespace servercore::internal
