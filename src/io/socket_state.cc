#include "io/socket_state.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "io/io_backend.h"
#include "io/io_key.h"
#include "io/io_worker.h"
#include "log_limiter.h"
#include "memory_budget.h"
#include "page_pool.h"
#include "servercore/send_buffer_manager.h"
#include "servercore/session.h"

namespace servercore::internal {
namespace {

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

SocketState::~SocketState() {
  if (fd_ < 0) return;  // closed: Close took it off the budget's list
  ::close(fd_);
  // Bound and never closed (a session dropped before it reached a worker,
  // while its service still runs): off the budget's list too.
  if (worker_ != nullptr) {
    worker_->budget().Remove(tail_capacity(), &budget_slot_);
    worker_->budget().RemoveOverhead(
        queue_.Close() + sending_.capacity() * sizeof(SendBufferRef) +
        iov_.capacity() * sizeof(iovec));
  }
}

void SocketState::Bind(int fd, IoWorker& worker, size_t max_pending_bytes) {
  fd_ = fd;
  worker_ = &worker;
  queue_.SetLimit(max_pending_bytes);
}

void SocketState::SetRecvLimit(size_t limit) {
  recv_limit_ = limit;
  worker_->budget().Add(owner_, 0, &budget_slot_);
}

// --- Receive ---------------------------------------------------------------

void SocketState::Received(std::span<const std::byte> data) {
  worker_->AssertInWorkerThread();
  if (!CanRead()) return;
  active_ = true;
  WorkerCounters& counters = worker_->counters();
  counters.recv_syscalls.Add();
  counters.bytes_in.Add(data.size());
  bool progress = false;
  // Finish the message begun in an earlier read, copying only its bytes
  // (all that fit, for a session that cannot tell a message's size).
  while (tail_size_ > 0 && !data.empty() && CanRead() && !recv_paused_) {
    const size_t kept = tail_size_;
    const size_t want =
        owner_.MessageSize(IoKey{}, std::span(tail_.get(), kept));
    const size_t goal = std::min(want == 0 ? recv_limit_ : want, recv_limit_);
    const size_t take = goal > kept ? std::min(goal - kept, data.size()) : 0;
    if (!AppendTail(data.first(take), goal)) return;
    data = data.subspan(take);
    // A message of known size still short: `data` is used up, wait.
    if (want != 0 && tail_size_ < goal) break;
    const size_t consumed =
        owner_.Deliver(IoKey{}, std::span(tail_.get(), tail_size_));
    if (consumed >= kept) {
      // The message begun earlier is done. What is left of the tail came
      // from `data`: deliver it from there, uncopied, with the rest.
      progress |= consumed > 0;
      const size_t back = tail_size_ - consumed;
      data = std::span(data.data() - back, data.size() + back);
      tail_size_ = 0;
      break;
    }
    ConsumeTail(consumed);
    if (consumed > 0) {
      progress = true;
    } else if (take == 0) {
      // Nothing added and nothing taken: the message cannot fit the limit.
      if (CanRead()) TooLarge();
      return;
    }
  }
  // Then straight from the backend's buffer.
  if (tail_size_ == 0 && !data.empty() && CanRead() && !recv_paused_) {
    const size_t consumed = owner_.Deliver(IoKey{}, data);
    if (consumed > 0) progress = true;
    data = data.subspan(consumed);
    if (!data.empty() && CanRead() && !recv_paused_) {
      if (data.size() >= recv_limit_) {
        TooLarge();
        return;
      }
      if (!AppendTail(data, owner_.MessageSize(IoKey{}, data))) return;
    }
  }
  // Paused (now, or before this read): the rest waits, whole packets and all.
  if (recv_paused_ && !data.empty() && CanRead() && !Keep(data)) return;
  NoteDelivery(progress);
}

void SocketState::NoteDelivery(bool progress) {
  // Liveness, on the worker's clock of this round (no clock read here).
  const Clock::time_point now = worker_->now();
  if (progress) last_progress_ = now;
  if (tail_size_ == 0) {
    partial_since_ = {};
  } else if (progress || partial_since_ == Clock::time_point{}) {
    partial_since_ = now;  // what is left is a message begun now
  }
}

bool SocketState::SmallReads() const {
  if (recv_throttled_) return true;
  const MemoryBudget& budget = worker_->budget();
  return budget.recv_bytes() > budget.max_bytes() / 8;
}

void SocketState::PauseReading() {
  worker_->AssertInWorkerThread();
  if (recv_paused_ || !CanRead()) return;
  recv_paused_ = true;
  recv_throttled_ = true;
  worker_->backend().StopRecv(*this);
}

void SocketState::ResumeReading() {
  worker_->AssertInWorkerThread();
  if (!recv_paused_) return;
  recv_paused_ = false;
  if (!CanRead()) return;
  active_ = true;
  // What was kept: whole packets first, maybe a message begun after them.
  bool progress = false;
  while (tail_size_ > 0 && CanRead() && !recv_paused_) {
    const size_t consumed =
        owner_.Deliver(IoKey{}, std::span(tail_.get(), tail_size_));
    if (consumed == 0) break;  // a message begun: the next read finishes it
    progress = true;
    ConsumeTail(consumed);
  }
  if (!CanRead()) return;
  // What the pause grew the tail to for the rest of its read goes back
  // (reads are small from now on, recv_throttled_): a session that keeps
  // sending is never quiet long enough for the sweep to free it.
  if (tail_capacity() > 2 * std::max(tail_size_, kThrottledRead)) {
    ResizeTailStorage(tail_size_ == 0 ? 0
                                      : std::max(tail_size_, kThrottledRead));
  }
  // The clocks start again from here: the wait was the server's.
  last_progress_ = worker_->now();
  partial_since_ = {};
  NoteDelivery(progress);
  if (recv_paused_) return;
  if (std::exchange(eof_kept_, false)) {
    RecvEnded(0);  // the stream's end, after all it carried
    return;
  }
  worker_->backend().ResumeRecv(*this);
}

void SocketState::RecvEnded(int64_t result) {
  worker_->AssertInWorkerThread();
  if (!CanRead()) return;
  if (result == 0) {
    worker_->counters().recv_syscalls.Add();
    // Paused with packets kept: the end comes after them (ResumeReading).
    if (recv_paused_ && tail_size_ > 0) {
      eof_kept_ = true;
      return;
    }
    // A message cut short can never be finished: only between two may the
    // session stay to send what it owes.
    if (tail_size_ == 0 && !owner_.PeerClosed(IoKey{})) {
      if (!owner_.IsConnected()) return;  // the hook closed it after all
      read_ended = true;
      last_progress_ = worker_->now();  // Overdue: kOwedRepliesTime from here
      worker_->backend().ReadEnded(*this);
      return;
    }
    owner_.Disconnect(DisconnectReason::kPeerClosed);
  } else if (!IsRetry(result)) {
    owner_.Disconnect(ReasonForErrno(static_cast<int>(-result)));
  }
}

bool SocketState::HungUp(bool reported) {
  worker_->AssertInWorkerThread();
  // (A test harness's sessions have no descriptor.)
  if (!read_ended || !owner_.IsConnected() || fd_ < 0) return false;
  int error = 0;
  socklen_t size = sizeof(error);
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &size) != 0) {
    error = errno;
  }
  if (error == 0) {
    tcp_info info{};
    socklen_t info_size = sizeof(info);
    const bool closed =
        ::getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &info, &info_size) == 0 &&
        info.tcpi_state == TCP_CLOSE;
    if (!closed && !reported) return false;
    error = ECONNRESET;  // gone, with no error left to say how
  }
  owner_.Disconnect(ReasonForErrno(error));
  return true;
}

bool SocketState::AppendTail(std::span<const std::byte> bytes, size_t want) {
  const size_t needed = tail_size_ + bytes.size();
  if (needed > tail_capacity() &&
      !GrowTail(std::clamp(want, needed, std::max(needed, recv_limit_)),
                "a message begun")) {
    return false;
  }
  if (!bytes.empty()) {
    std::memcpy(tail_.get() + tail_size_, bytes.data(), bytes.size());
  }
  tail_size_ = needed;
  return true;
}

bool SocketState::Keep(std::span<const std::byte> bytes) {
  const size_t needed = tail_size_ + bytes.size();
  if (needed > tail_capacity() &&
      !GrowTail(std::max(needed, tail_capacity() + tail_capacity() / 2),
                "input kept while paused")) {
    return false;
  }
  std::memcpy(tail_.get() + tail_size_, bytes.data(), bytes.size());
  tail_size_ = needed;
  return true;
}

bool SocketState::GrowTail(size_t capacity, const char* what) {
  MemoryBudget& budget = worker_->budget();
  if (!budget.TryAddRecv(capacity - tail_capacity())) {
    LogLimited(LogKind::kDisconnect,
               "session %llu: memory budget: %s needs %zu bytes, and receive "
               "tails hold %zu of the %zu they may (half the budget); "
               "disconnecting",
               static_cast<unsigned long long>(owner_.id()), what, capacity,
               budget.recv_bytes(), budget.recv_limit());
    owner_.Disconnect(DisconnectReason::kMemoryBudget);
    return false;
  }
  ResizeTailStorage(capacity);
  return true;
}

void SocketState::ConsumeTail(size_t n) {
  tail_size_ -= n;
  if (tail_size_ > 0 && n > 0) {
    std::memmove(tail_.get(), tail_.get() + n, tail_size_);
  }
}

void SocketState::TailDeleter::operator()(std::byte* storage) const noexcept {
  if (capacity >= kPagedTailBytes) {
    PagePool::Instance().Give(storage, capacity);
  } else {
    delete[] storage;
  }
}

void SocketState::ResizeTailStorage(size_t capacity) {
  std::unique_ptr<std::byte[], TailDeleter> storage(nullptr,
                                                    TailDeleter{capacity});
  if (capacity > 0) {
    storage.reset(capacity >= kPagedTailBytes
                      ? PagePool::Instance().Take(capacity)
                      : new std::byte[capacity]);
    if (tail_size_ > 0) std::memcpy(storage.get(), tail_.get(), tail_size_);
  }
  // A growth is counted by AppendTail (TryAddRecv), before it is made.
  if (capacity < tail_capacity()) {
    worker_->budget().RemoveRecv(tail_capacity() - capacity);
  }
  tail_ = std::move(storage);  // and its capacity
}

void SocketState::ReleaseIdleMemory() {
  worker_->AssertInWorkerThread();
  if (std::exchange(active_, false)) return;   // busy: keep what it uses
  if (!recv_paused_) recv_throttled_ = false;  // quiet: reads whole again
  if (tail_size_ == 0 && tail_capacity() > 0) ResizeTailStorage(0);
  // The write bookkeeping too, when no write is under way: the vectors are
  // made again by the next write (a few small allocations per quiet spell).
  if (write_in_flight_ || draining_ || sending_done_ != sending_.size()) {
    return;
  }
  size_t freed = queue_.ReleaseIdle();
  if (sending_.capacity() > 0 || iov_.capacity() > 0) {
    freed += sending_.capacity() * sizeof(SendBufferRef) +
             iov_.capacity() * sizeof(iovec);
    std::vector<SendBufferRef>().swap(sending_);
    std::vector<iovec>().swap(iov_);
    sending_done_ = 0;
    sending_offset_ = 0;
  }
  if (freed > 0) worker_->budget().RemoveOverhead(freed);
}

void SocketState::TooLarge() {
  LogLimited(LogKind::kProtocolError,
             "session %llu: protocol error: a message larger than the "
             "%zu-byte receive limit",
             static_cast<unsigned long long>(owner_.id()), recv_limit_);
  owner_.Disconnect(DisconnectReason::kProtocolError);
}

// --- Write -----------------------------------------------------------------

void SocketState::WriteQueued() {
  worker_->AssertInWorkerThread();
  while (!write_in_flight_ && CanWrite()) {
    // Drop what the last write finished before taking more, so a session
    // that never fully drains (a reader as slow as its traffic) does not
    // grow sending_ forever. No write is in flight: nothing points at these.
    if (sending_done_ == sending_.size()) {
      sending_.clear();
    } else if (sending_done_ > 0) {
      sending_.erase(sending_.begin(),
                     sending_.begin() + static_cast<ptrdiff_t>(sending_done_));
    }
    sending_done_ = 0;
    size_t grown = 0;
    const bool more = queue_.TakeAll(sending_, &grown);
    if (grown > 0) worker_->budget().AddOverhead(grown);
    if (!more) return;  // all written
    active_ = true;
    BuildIovecs();
    const int64_t result = worker_->backend().Write(*this);
    if (result == kInFlight) {
      write_in_flight_ = true;
      write_since_ = worker_->now();
      return;
    }
    if (!CompleteWrite(result)) return;
  }
}

void SocketState::WriteDone(int64_t result) {
  worker_->AssertInWorkerThread();
  write_in_flight_ = false;
  // What the kernel took is accounted for even when the session was marked
  // closing meanwhile (by another thread, say) and its drain has not begun:
  // the drain would otherwise write those bytes a second time.
  if (CompleteWrite(result) && CanWrite()) WriteQueued();
}

bool SocketState::WriteNow(std::span<const iovec> parts, size_t size) {
  worker_->AssertInWorkerThread();
  if (parts.size() > kIovMax || !queue_.Claim(size)) return false;
  // Nothing is queued or being written, and until EndClaim whatever another
  // thread sends only queues: these bytes go out first.
  SERVERCORE_DCHECK(!write_in_flight_ && sending_done_ == sending_.size(),
                    "session %llu: a claimed queue with a write unfinished",
                    static_cast<unsigned long long>(owner_.id()));
  active_ = true;
  msghdr message{};
  // sendmsg only reads the iovecs.
  message.msg_iov = const_cast<iovec*>(parts.data());
  message.msg_iovlen = parts.size();
  const int64_t n = worker_->backend().WriteNow(*this, message);
  // A full socket buffer, or an error: all of it is kept, and the worker's
  // own write meets the error again and closes the session for it.
  const size_t written = n > 0 ? static_cast<size_t>(n) : 0;
  WorkerCounters& counters = worker_->counters();
  counters.write_syscalls.Add();
  counters.iovecs_written.Add(parts.size());
  counters.bytes_out.Add(written);
  const bool rest = written < size;
  if (rest) {
    if (written > 0) counters.partial_writes.Add();
    KeepUnwritten(parts, written, size - written);
  } else {
    counters.packets_out.Add();  // as for a buffer the worker wrote
  }
  if (queue_.EndClaim(written, rest)) {
    worker_->RequestFlush(owner_.shared_from_this());
  }
  return true;
}

SendBufferRef CopyParts(std::span<const iovec> parts, size_t skip,
                        size_t size) {
  SendBufferRef buffer =
      SendBufferManager::Instance().Open(static_cast<uint32_t>(size));
  std::byte* at = buffer->Buffer();
  for (const iovec& part : parts) {
    size_t length = part.iov_len;
    if (skip >= length) {
      skip -= length;
      continue;
    }
    length -= skip;
    std::memcpy(at, static_cast<const std::byte*>(part.iov_base) + skip,
                length);
    at += length;
    skip = 0;
  }
  buffer->Close(static_cast<uint32_t>(size));
  return buffer;
}

void SocketState::KeepUnwritten(std::span<const iovec> parts, size_t skip,
                                size_t rest) {
  SendBufferRef buffer = CopyParts(parts, skip, rest);
  // The claim says every buffer of sending_ is finished (and released):
  // the rest is the only one left, and the next write starts with it.
  const size_t capacity = sending_.capacity();
  sending_.clear();
  sending_.push_back(std::move(buffer));
  if (sending_.capacity() != capacity) {
    worker_->budget().AddOverhead((sending_.capacity() - capacity) *
                                  sizeof(SendBufferRef));
  }
  sending_done_ = 0;
  sending_offset_ = 0;
}

void SocketState::BuildIovecs() {
  const size_t count = std::min(sending_.size(), kIovMax);
  const size_t capacity = iov_.capacity();
  iov_.resize(count);
  if (iov_.capacity() != capacity) {
    worker_->budget().AddOverhead((iov_.capacity() - capacity) * sizeof(iovec));
  }
  for (size_t i = 0; i < count; ++i) {
    const std::span<const std::byte> data = sending_[i]->Data();
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

bool SocketState::CompleteWrite(int64_t result) {
  if (result < 0) {
    if (IsRetry(result)) return true;
    owner_.Disconnect(ReasonForErrno(static_cast<int>(-result)));
    return false;
  }
  WorkerCounters& counters = worker_->counters();
  size_t offered = 0;
  for (const iovec& v : iov_) offered += v.iov_len;
  const auto written = static_cast<size_t>(result);
  counters.write_syscalls.Add();
  counters.iovecs_written.Add(iov_.size());
  counters.bytes_out.Add(written);
  if (written < offered) counters.partial_writes.Add();

  size_t left = written;
  while (sending_done_ < sending_.size()) {
    SendBufferRef& buffer = sending_[sending_done_];
    const size_t remaining = buffer->WriteSize() - sending_offset_;
    if (left < remaining) {
      sending_offset_ += left;
      break;
    }
    left -= remaining;
    queue_.Finished(*buffer);
    // Written: given back at the end of the round, with the other
    // references to it this round's writes finished (a broadcast's).
    worker_->releases().Add(buffer);
    ++sending_done_;
    sending_offset_ = 0;
    counters.packets_out.Add();
  }
  queue_.Settle(written);
  if (written > 0) owner_.Wrote(IoKey{}, written);
  return CanWrite();
}

// --- Liveness --------------------------------------------------------------

std::optional<DisconnectReason> SocketState::Overdue(
    Clock::time_point now, const ServiceOptions& options) const {
  using std::chrono::milliseconds;
  // Kept open after the peer's stream ended, for what the application owes
  // it: that has had its time.
  if (read_ended && now - last_progress_ > kOwedRepliesTime) {
    return DisconnectReason::kPeerClosed;
  }
  // Paused, what the peer sent waits on the server: no timeout of the
  // peer's runs (ResumeReading starts the clocks again).
  if (options.idle_timeout > milliseconds::zero() && !recv_paused_ &&
      now - last_progress_ > options.idle_timeout) {
    return DisconnectReason::kIdleTimeout;
  }
  if (options.packet_timeout > milliseconds::zero() && !recv_paused_ &&
      partial_since_ != Clock::time_point{} &&
      now - partial_since_ > options.packet_timeout) {
    return DisconnectReason::kPacketTimeout;
  }
  if (options.send_stall_timeout > milliseconds::zero() && write_in_flight_ &&
      now - write_since_ > options.send_stall_timeout) {
    return DisconnectReason::kSlowReceiver;
  }
  return std::nullopt;
}

// --- Closing ---------------------------------------------------------------

namespace {

// What the peer sent since the session stopped reading (after a bad packet,
// say), thrown away. A socket closed with unread input is reset rather than
// closed in order, and a reset throws away whatever of a drain's output (the
// replies and the goodbye the peer was meant to get) is still unsent; so the
// drain lingers until the peer has acknowledged it all (Lingers), keeping
// the socket open meanwhile, and then its input goes before the close.
// Bounded: a peer that keeps sending is reset after all. TCP only (elsewhere
// MSG_TRUNC without a buffer fails, and the close is as it always was).
void DiscardUnreadInput(int fd) {
  for (int i = 0; i < 16; ++i) {
    // MSG_TRUNC on TCP: drop the bytes without copying them (tcp(7)).
    if (::recv(fd, nullptr, 1 << 20, MSG_DONTWAIT | MSG_TRUNC) <= 0) return;
  }
}

}  // namespace

bool SocketState::StartDrain(Clock::time_point deadline) {
  worker_->AssertInWorkerThread();
  draining_ = true;
  drain_deadline_ = deadline;
  if (!write_in_flight_) WriteQueued();
  if (!write_in_flight_ && !Lingers(/*ask=*/true)) draining_ = false;
  return draining_;
}

bool SocketState::KeepDraining(Clock::time_point now, bool ask) {
  worker_->AssertInWorkerThread();
  if (draining_ && now < drain_deadline_ &&
      (write_in_flight_ || Lingers(ask))) {
    return true;
  }
  draining_ = false;  // written and acknowledged, or out of time
  return false;
}

bool SocketState::Lingers(bool ask) {
  if (linger_ == Linger::kNone) {
    linger_ = Linger::kWaiting;
    // No more events (the worker asks the kernel instead), and the end of
    // the stream after what was written. Not shut down for reading: on a
    // socket shut down both ways, new data is answered with a reset.
    worker_->backend().Unwatch(*this);
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
    ask = true;
  }
  if (linger_ == Linger::kAcknowledged) return false;
  if (!ask) return true;
  // Reset by the peer (or not TCP): nothing to wait for, nor to keep.
  tcp_info info{};
  socklen_t size = sizeof(info);
  if (fd_ < 0 || ::getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &info, &size) != 0 ||
      info.tcpi_state == TCP_CLOSE) {
    return false;
  }
  // Written but not yet acknowledged, the end of the stream included.
  int unacknowledged = 0;
  if (::ioctl(fd_, SIOCOUTQ, &unacknowledged) != 0) return false;
  if (unacknowledged > 0) return true;
  linger_ = Linger::kAcknowledged;
  return false;
}

void SocketState::Close() {
  if (fd_ >= 0) {
    // Out of time, the close is as it always was: a peer that does not read
    // is not left a socket full of output to hold in the kernel.
    if (linger_ == Linger::kAcknowledged) DiscardUnreadInput(fd_);
    ::close(std::exchange(fd_, -1));
  }
  // The buffers queued and the queue's own storage go now, not when the
  // application lets go of its last SessionRef; and before the session
  // leaves the budget's list: while listed, a closing session's unsent
  // output holds back further shedding (memory_budget.h).
  MemoryBudget& budget = worker_->budget();
  budget.RemoveOverhead(queue_.Close() +
                        sending_.capacity() * sizeof(SendBufferRef) +
                        iov_.capacity() * sizeof(iovec));
  std::vector<SendBufferRef>().swap(sending_);
  std::vector<iovec>().swap(iov_);
  // The receive tail goes too: nothing reads into it now.
  budget.Remove(tail_capacity(), &budget_slot_);
  tail_ = {nullptr, TailDeleter{0}};
  tail_size_ = 0;
  sending_done_ = 0;
  sending_offset_ = 0;
}

}  // namespace servercore::internal
