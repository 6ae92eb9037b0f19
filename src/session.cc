#include "servercore/session.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <utility>

#include "io/io_backend.h"
#include "io/io_worker.h"
#include "servercore/check.h"
#include "servercore/log.h"
#include "servercore/send_buffer_chunk.h"

namespace servercore {
namespace {

std::atomic<uint64_t> g_next_session_id{1};

constexpr size_t kIovMax = IOV_MAX;

DisconnectReason ReasonForErrno(int error) noexcept {
  switch (error) {
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
    case ETIMEDOUT:
    case ECANCELED:
      return DisconnectReason::kReset;
    default:
      return DisconnectReason::kIoError;
  }
}

bool IsRetry(int64_t result) noexcept {
  return result == -EAGAIN || result == -EWOULDBLOCK || result == -EINTR;
}

}  // namespace

Session::Session()
    : id_(g_next_session_id.fetch_add(1, std::memory_order_relaxed)) {}

Session::~Session() {
  // Normally the worker closed it; a session refused before attaching
  // (max_sessions) still owns its socket here.
  if (fd_ >= 0) ::close(fd_);
}

bool Session::Send(SendBufferRef buffer) {
  SERVERCORE_CHECK(buffer && buffer->IsClosed(),
                   "Session::Send needs a SendBuffer that was closed");
  if (state_.load(std::memory_order_acquire) != State::kOpen) return false;
  bool request_flush;
  {
    MutexLock lock(send_mu_);
    // Finalize marks the session closed before it empties the queue under
    // this lock: a buffer pushed after that would never be sent or freed.
    if (state_.load(std::memory_order_acquire) == State::kClosed) return false;
    const size_t size = buffer->WriteSize();
    const size_t charge = tail_pins_.Charge(*buffer);
    const size_t pending =
        pending_bytes_.fetch_add(size, std::memory_order_relaxed) + size;
    const size_t pinned =
        pinned_charge_.fetch_add(charge, std::memory_order_relaxed) + charge;
    if (pending > max_pending_bytes_ || pinned > PinnedChargeLimit()) {
      // Not queued; the trackers no longer agree, but the session is done.
      pending_bytes_.fetch_sub(size, std::memory_order_relaxed);
      pinned_charge_.fetch_sub(charge, std::memory_order_relaxed);
      request_flush = false;
    } else {
      send_queue_.push_back(std::move(buffer));
      request_flush = !std::exchange(flush_requested_, true);
    }
  }
  if (buffer) {  // refused: still ours
    Disconnect(DisconnectReason::kSlowReceiver);
    return false;
  }
  // Only the Send that found the queue drained involves the worker; the
  // others ride along in the same gather write.
  if (request_flush) worker_->RequestFlush(shared_from_this());
  return true;
}

size_t Session::PinTracker::Charge(const SendBuffer& buffer) noexcept {
  const SendBufferChunk* chunk = buffer.chunk();
  for (const SendBufferChunk* seen : recent_) {
    if (seen == chunk) return 0;
  }
  recent_[next_] = chunk;
  next_ = (next_ + 1) % kRecent;
  return chunk->AllocationSize();
}

void Session::Disconnect(DisconnectReason reason) {
  auto expected = State::kOpen;
  if (!state_.compare_exchange_strong(expected, State::kClosing,
                                      std::memory_order_acq_rel)) {
    return;  // already closing: the first reason stands
  }
  reason_.store(reason, std::memory_order_release);
  if (worker_ != nullptr) worker_->RequestClose(shared_from_this());
}

void Session::CountPacketsIn(size_t packets) noexcept {
  worker_->counters().packets_in.Add(packets);
}

// --- Worker thread ---------------------------------------------------------

void Session::HandleRecv(int64_t result) {
  if (!IsConnected()) return;
  internal::WorkerCounters& counters = worker_->counters();
  if (result > 0) {
    counters.recv_syscalls.Add();
    counters.bytes_in.Add(static_cast<uint64_t>(result));
    recv_buffer_.OnWrite(static_cast<size_t>(result));
    recv_buffer_.OnRead(OnRecv(recv_buffer_.Data()));
    recv_buffer_.Clean();
    if (recv_buffer_.FreeSize() == 0 && IsConnected()) {
      SERVERCORE_LOG_WARNING(
          "session %llu: protocol error: a message larger than the %zu-byte "
          "receive buffer",
          static_cast<unsigned long long>(id_), recv_buffer_.Capacity());
      Disconnect(DisconnectReason::kProtocolError);
    }
  } else if (result == 0) {
    counters.recv_syscalls.Add();
    Disconnect(DisconnectReason::kPeerClosed);
  } else if (!IsRetry(result)) {
    Disconnect(ReasonForErrno(static_cast<int>(-result)));
  }
  if (IsConnected()) worker_->backend().ResumeRecv(*this);
}

void Session::HandleWrite(int64_t result) {
  write_in_flight_ = false;
  if (CanWrite() && CompleteWrite(result)) WriteQueued();
}

void Session::WriteQueued() {
  while (!write_in_flight_ && CanWrite()) {
    {
      MutexLock lock(send_mu_);
      if (!send_queue_.empty()) {
        if (sending_head_ == sending_.size()) {
          sending_.clear();
          sending_head_ = 0;
          sending_.swap(send_queue_);  // capacities circulate: no allocation
        } else {
          // A partial write left buffers behind: drop the written prefix
          // before appending, so a session that never fully drains (a reader
          // as slow as its traffic) does not grow sending_ forever. No write
          // is in flight here and iov_ points at bytes, not at these slots.
          sending_.erase(
              sending_.begin(),
              sending_.begin() + static_cast<std::ptrdiff_t>(sending_head_));
          sending_head_ = 0;
          for (SendBufferRef& buffer : send_queue_) {
            sending_.push_back(std::move(buffer));
          }
          send_queue_.clear();
        }
      } else if (sending_head_ == sending_.size()) {
        // Everything written: the next Send asks for a flush again.
        flush_requested_ = false;
        sending_.clear();
        sending_head_ = 0;
        return;
      }
    }
    BuildIovecs();
    const int64_t result = worker_->backend().Write(*this);
    if (result == internal::kInFlight) {
      write_in_flight_ = true;
      write_since_ = std::chrono::steady_clock::now();
      return;
    }
    if (!CompleteWrite(result)) return;
  }
}

void Session::BuildIovecs() {
  const size_t count = std::min(sending_.size() - sending_head_, kIovMax);
  iov_.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const std::span<const std::byte> data = sending_[sending_head_ + i]->Data();
    iov_[i].iov_base = const_cast<std::byte*>(data.data());
    iov_[i].iov_len = data.size();
  }
  // Resume a partial write at the exact byte where it stopped.
  iov_[0].iov_base =
      static_cast<std::byte*>(iov_[0].iov_base) + sending_offset_;
  iov_[0].iov_len -= sending_offset_;
  msg_ = msghdr{};
  msg_.msg_iov = iov_.data();
  msg_.msg_iovlen = count;
}

bool Session::CompleteWrite(int64_t result) {
  if (result < 0) {
    if (IsRetry(result)) return true;
    Disconnect(ReasonForErrno(static_cast<int>(-result)));
    return false;
  }
  internal::WorkerCounters& counters = worker_->counters();
  size_t offered = 0;
  for (const iovec& v : iov_) offered += v.iov_len;
  const auto written = static_cast<size_t>(result);
  counters.write_syscalls.Add();
  counters.iovecs_written.Add(iov_.size());
  counters.bytes_out.Add(written);
  if (written < offered) counters.partial_writes.Add();

  size_t left = written;
  size_t released = 0;
  while (sending_head_ < sending_.size()) {
    SendBufferRef& buffer = sending_[sending_head_];
    const size_t remaining = buffer->WriteSize() - sending_offset_;
    if (left < remaining) {
      sending_offset_ += left;
      break;
    }
    left -= remaining;
    released += head_pins_.Charge(*buffer);
    buffer.reset();  // written: its chunk may be reused now
    ++sending_head_;
    sending_offset_ = 0;
    counters.packets_out.Add();
  }
  pending_bytes_.fetch_sub(written, std::memory_order_relaxed);
  pinned_charge_.fetch_sub(released, std::memory_order_relaxed);
  if (written > 0) OnSend(written);
  return CanWrite();
}

}  // namespace servercore
