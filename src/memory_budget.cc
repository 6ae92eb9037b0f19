#include "memory_budget.h"

#include <algorithm>
#include <limits>

#include "log_limiter.h"
#include "servercore/send_buffer_manager.h"

namespace servercore::internal {
namespace {

constexpr size_t kNoSlot = std::numeric_limits<size_t>::max();

}  // namespace

void MemoryBudget::Add(Session& session, size_t recv_bytes, size_t* slot) {
  recv_bytes_.fetch_add(recv_bytes, std::memory_order_relaxed);
  MutexLock lock(mu_);
  *slot = sessions_.size();
  sessions_.push_back(&session);
  slots_.push_back(slot);
}

void MemoryBudget::Remove(size_t recv_bytes, size_t* slot) noexcept {
  {
    MutexLock lock(mu_);
    if (*slot == kNoSlot) return;
    // Swap-remove: the last session takes the freed place.
    const size_t at = *slot;
    sessions_[at] = sessions_.back();
    slots_[at] = slots_.back();
    *slots_[at] = at;
    sessions_.pop_back();
    slots_.pop_back();
    *slot = kNoSlot;
  }
  recv_bytes_.fetch_sub(recv_bytes, std::memory_order_relaxed);
}

size_t MemoryBudget::Used() const noexcept {
  // One relaxed load each; the pool's counter moves once per chunk, not per
  // buffer.
  return recv_bytes_.load(std::memory_order_relaxed) +
         overhead_bytes_.load(std::memory_order_relaxed) +
         SendBufferManager::Instance().PinnedBytes();
}

bool MemoryBudget::AcceptAllowed() noexcept {
  const size_t used = Used();
  if (!accept_paused_.load(std::memory_order_relaxed)) {
    if (used <= max_bytes_ / 10 * 9) return true;
    accept_paused_.store(true, std::memory_order_relaxed);
    accept_pauses_.fetch_add(1, std::memory_order_relaxed);
    LogLimited(LogKind::kAcceptError,
               "memory budget: %zu of %zu bytes in use (past 90%%); not "
               "accepting until below 80%%",
               used, max_bytes_);
    return false;
  }
  if (used >= max_bytes_ / 10 * 8) return false;
  accept_paused_.store(false, std::memory_order_relaxed);
  return true;
}

void MemoryBudget::Shed() {
  const Clock::time_point now = Clock::now();
  if (now.time_since_epoch().count() <
      next_scan_.load(std::memory_order_relaxed)) {
    return;  // one scan per interval
  }
  if (scanning_.exchange(true, std::memory_order_acquire)) return;
  next_scan_.store((now + kShedInterval).time_since_epoch().count(),
                   std::memory_order_relaxed);
  // victims_ is ours while scanning_ is set.
  std::vector<SessionRef>& victims = victims_;
  size_t most = 0;
  {
    MutexLock lock(mu_);
    size_t most_closing = 0;  // already on its way out
    for (Session* session : sessions_) {
      const size_t pending = session->PendingSendBytes();
      if (session->IsConnected()) {
        most = std::max(most, pending);
      } else {
        most_closing = std::max(most_closing, pending);
      }
    }
    // While a session holding far more than any open one is still closing,
    // its memory is on its way back: cut nobody else yet (a reader that is
    // a little behind must not pay for it).
    if (most > 0 && most_closing <= 2 * most) {
      // The largest holder, with those holding at least 3/4 as much: the
      // sessions that stopped reading during one broadcast hold about the
      // same, in the same shared chunks, and that memory only comes back
      // when the last of them goes, so they go together. Listed sessions
      // are alive: they are removed before they are destroyed.
      for (Session* session : sessions_) {
        if (session->IsConnected() &&
            session->PendingSendBytes() >= most - most / 4) {
          if (SessionRef ref = session->weak_from_this().lock()) {
            victims.push_back(std::move(ref));
          }
        }
      }
    }
  }
  for (const SessionRef& victim : victims) {
    kicks_.fetch_add(1, std::memory_order_relaxed);
    LogLimited(LogKind::kDisconnect,
               "session %llu: over the memory budget (%zu of %zu bytes); "
               "disconnecting it, among the largest holders of unsent output "
               "(%zu bytes, the most %zu)",
               static_cast<unsigned long long>(victim->id()), Used(),
               max_bytes_, victim->PendingSendBytes(), most);
    victim->Disconnect(DisconnectReason::kSlowReceiver);
  }
  victims.clear();  // capacity kept: no allocation next time
  scanning_.store(false, std::memory_order_release);
}

}  // namespace servercore::internal
