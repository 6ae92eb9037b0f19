// SocketState: everything the I/O layer keeps about one connected socket,
// after seastar's pollable_fd_state. The backends operate on it and never on
// the application's Session; the worker keeps its bookkeeping in it.
//
// Each Session embeds one (no allocation of its own). It holds:
//  - the descriptor, and the worker that owns it;
//  - the send queue (any thread pushes) and the write in progress: the
//    buffers being written, the iovecs and msghdr of the one gather write in
//    flight, and where a partial write stopped;
//  - the receive tail: the bytes of a message begun in one read and not yet
//    finished, and nothing else (the reads themselves land in the worker's
//    buffer, or in the kernel-provided buffers of io_uring, and are handed
//    to the session from there);
//  - the worker's bookkeeping: operations in flight, position in the
//    worker's session list, closing and draining state.
//
// The send path through it, in one direction:
//
//   Session::Send -> queue().Push --first--> IoWorker::RequestFlush
//   IoWorker::FlushScheduled -> WriteQueued -> TakeAll, BuildIovecs
//     -> IoBackend::Write(*this) -> sendmsg (epoll) / SQE (io_uring)
//   completion -> WriteDone -> CompleteWrite (buffers released, OnSend)
//     -> WriteQueued again if more was queued meanwhile
//
// and the shortcut, on the worker only:
//
//   Session::SendNow -> WriteNow -> queue().Claim (nothing pending)
//     -> IoBackend::WriteNow (one sendmsg from the caller's memory)
//     -> KeepUnwritten (the rest, copied,
//     first in sending_) -> queue().EndClaim --more--> IoWorker::RequestFlush
//
// Buffer contract with the backend: write_message() and the iovecs it points
// to stay valid and unchanged from IoBackend::Write until WriteDone is called
// for that write; so do the bytes (the SendBufferRefs in sending_ keep them).
// Exactly one write is in flight at a time.
//
// Thread safety: queue() from any thread; everything else on the owning
// worker's thread (SERVERCORE_ON_WORKER), except Bind, which runs on the
// creating thread before the session reaches its worker.
// Ownership: owns the descriptor until Close (or destruction).
#ifndef SERVERCORE_SRC_IO_SOCKET_STATE_H_
#define SERVERCORE_SRC_IO_SOCKET_STATE_H_

#include <sys/socket.h>
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "io/worker_thread.h"
#include "send_queue.h"
#include "servercore/disconnect_reason.h"
#include "servercore/send_buffer.h"
#include "servercore/service.h"
#include "servercore/session.h"

namespace servercore::internal {

class IoWorker;

// The bytes of `parts` after the first `skip`, `size` of them, copied into a
// closed send buffer (Session::SendNow's copy, and its rest).
SendBufferRef CopyParts(std::span<const iovec> parts, size_t skip, size_t size);

class SocketState {
 public:
  using Clock = std::chrono::steady_clock;

  explicit SocketState(Session& owner) noexcept : owner_(owner) {}
  // Closes the descriptor if the worker never did (a session refused before
  // it reached a worker).
  ~SocketState();
  SocketState(const SocketState&) = delete;
  SocketState& operator=(const SocketState&) = delete;

  // The creating thread, once: takes the connected socket `fd`; then lists
  // the session in the service's memory budget (until Close), with `limit`,
  // the most bytes of an unfinished message it may hold between reads.
  void Bind(int fd, IoWorker& worker, size_t max_pending_bytes);
  void SetRecvLimit(size_t limit);

  int fd() const noexcept { return fd_; }
  IoWorker& worker() const noexcept { return *worker_; }
  // For the worker; backends never touch the session.
  Session& owner() const noexcept { return owner_; }
  SendQueue& queue() noexcept { return queue_; }
  const SendQueue& queue() const noexcept { return queue_; }

  // Open and receiving: not closing, and the peer's stream has not ended.
  bool CanRead() const SERVERCORE_ON_WORKER {
    return owner_.IsConnected() && !read_ended;
  }
  // Open, or closing while it writes what was queued before the close.
  bool CanWrite() const SERVERCORE_ON_WORKER {
    return owner_.IsConnected() || draining_;
  }

  // --- Receive (worker) ---
  // The backend received `data` (not empty) into a buffer of its own, which
  // it reuses once this returns. The bytes go to the session: first those
  // that finish the message kept in the tail (only they are copied), then
  // the rest straight from `data`; what is left unconsumed becomes the tail.
  void Received(std::span<const std::byte> data) SERVERCORE_ON_WORKER;
  // A receive ended without data: 0 at end of stream, or -errno (a retry
  // code is ignored). At the end of a stream with no message begun the
  // session may stay open to send (Session::OnPeerClosed): then the backend
  // is told to stop receiving, and CanRead is false from here on.
  void RecvEnded(int64_t result) SERVERCORE_ON_WORKER;
  // For a session open but no longer reading (read_ended), which nothing
  // else watches for a reset: closes it when the socket is in error or
  // closed, or at once when `reported` (the backend saw it hung up). True
  // when it closed it.
  bool HungUp(bool reported) SERVERCORE_ON_WORKER;
  // Bytes of an unfinished message held (tests).
  size_t recv_tail_size() const SERVERCORE_ON_WORKER { return tail_size_; }
  // Session::PauseReading: the current delivery stops after what the
  // session consumes, the rest is kept in the tail, and the backend stops
  // receiving (what it received meanwhile is kept too).
  void PauseReading() SERVERCORE_ON_WORKER;
  // Session::ResumeReading, on the worker: delivers what was kept (the
  // session may pause again), then the backend receives again.
  void ResumeReading() SERVERCORE_ON_WORKER;
  bool recv_paused() const SERVERCORE_ON_WORKER { return recv_paused_; }
  // Paused with the stream's end received behind kept packets: nothing
  // more can be read (recv says "end" again), not even a reset.
  bool eof_kept() const SERVERCORE_ON_WORKER { return eof_kept_; }
  // Whether the backend reads at most kThrottledRead bytes at a time for
  // this socket: when the session has paused since it was last quiet, or
  // when the sessions' receive memory is past an eighth of the budget (and
  // io_uring's first read of a socket, for its multishot receive). A
  // pause keeps the rest of the read it came in: a thousand sessions
  // flooding their rooms would otherwise keep 64 KiB each, fill the budget
  // with input, and get the sessions that keep reading cut for it.
  static constexpr size_t kThrottledRead = 4096;
  bool SmallReads() const SERVERCORE_ON_WORKER;
  // The worker's sweep: a session that neither received nor wrote since the
  // previous sweep gives back its receive tail's storage (when it holds
  // nothing) and its write bookkeeping, so a quiet session keeps no memory
  // beyond itself; a busy one keeps them (no allocation per sweep).
  void ReleaseIdleMemory() SERVERCORE_ON_WORKER;

  // --- Write (worker) ---
  // Writes what is queued, one gather write at a time, until it is all
  // written or a write is in flight.
  void WriteQueued() SERVERCORE_ON_WORKER;
  // The write the backend reported in flight completed: bytes or -errno.
  void WriteDone(int64_t result) SERVERCORE_ON_WORKER;
  // Session::SendNow: when nothing is queued or being written
  // (SendQueue::Claim: the queue is open), writes the `size` bytes of
  // `parts` with one sendmsg from where they lie (IoBackend::WriteNow); what
  // the kernel does not take is copied into a send buffer that is written next,
  // before anything queued meanwhile. False, with nothing done, otherwise: the
  // caller queues a copy instead.
  bool WriteNow(std::span<const iovec> parts, size_t size) SERVERCORE_ON_WORKER;
  // The gather write for IoBackend::Write.
  msghdr& write_message() SERVERCORE_ON_WORKER { return msg_; }
  bool write_in_flight() const SERVERCORE_ON_WORKER { return write_in_flight_; }
  // Since when the write in flight has been waiting for the kernel.
  Clock::time_point write_since() const SERVERCORE_ON_WORKER {
    return write_since_;
  }

  // --- Liveness (worker) ---
  // Starts the clocks when the socket reaches its worker.
  void StartLiveness(Clock::time_point now) SERVERCORE_ON_WORKER {
    last_progress_ = now;
  }
  // How long a session stays open after its peer's stream ended, for the
  // application to send what it owes (Session::OnPeerClosed).
  static constexpr std::chrono::seconds kOwedRepliesTime{2};
  // Why the session must be closed at `now` under `options` (idle, a packet
  // begun too long ago, a write the peer stopped taking, the owed replies'
  // time over), if it must.
  std::optional<DisconnectReason> Overdue(Clock::time_point now,
                                          const ServiceOptions& options) const
      SERVERCORE_ON_WORKER;

  // --- Closing (worker) ---
  // Keeps writing what was queued until `deadline`, then shuts down the
  // sending side and waits, until then too, for the peer to acknowledge it
  // all (Lingers): true if the drain goes on (else it is over already).
  bool StartDrain(Clock::time_point deadline) SERVERCORE_ON_WORKER;
  // While draining: true if the drain goes on (a write in flight, or the
  // peer yet to acknowledge, and time left); otherwise ends it and returns
  // false. Whether the peer acknowledged is asked of the kernel only when
  // `ask` (the worker asks every kLingerAsk, not every round).
  bool KeepDraining(Clock::time_point now, bool ask) SERVERCORE_ON_WORKER;
  bool draining() const SERVERCORE_ON_WORKER { return draining_; }
  // Closes the descriptor and drops every buffer queued or being written.
  void Close() SERVERCORE_ON_WORKER;

  // --- The worker's and backend's bookkeeping (worker) ---
  // Backend operations started on the socket and not yet completed; the
  // descriptor is closed only when this is 0.
  // (8 bits: a receive, a write and a cancel or two at most; the bytes
  // saved hold recv_paused_, eof_kept_ and recv_throttled_ in this word.)
  uint8_t ops_in_flight SERVERCORE_GUARDED_BY(kWorkerThread) = 0;
  // io_uring: a (multishot) receive is in flight.
  bool recv_armed SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  bool attached SERVERCORE_GUARDED_BY(kWorkerThread) = false;  // listed
  bool in_close_list SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  // The peer's stream ended and the session stays open to send (RecvEnded):
  // CanRead is false, and nothing is to be read again. Overdue closes it
  // kOwedRepliesTime later if the application has not.
  bool read_ended SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  // Between PauseReading and ResumeReading; and the stream's end, received
  // while paused behind kept bytes, to be handled after them.
  bool recv_paused_ SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  bool eof_kept_ SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  // Paused at least once since the session was last quiet for a sweep: it
  // reads at most kThrottledRead bytes at a time, so what a pause keeps
  // (the rest of the read it came in) stays small (SmallReads()).
  bool recv_throttled_ SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  size_t worker_index SERVERCORE_GUARDED_BY(kWorkerThread) = 0;  // position

 private:
  // Copies `bytes` to the end of the tail, growing its storage to `want`
  // bytes in all (capped at the receive limit) when it must. False when
  // that growth would pass the memory budget: then the session is closed
  // (as a slow receiver, the budget's one way out) and nothing is copied.
  [[nodiscard]] bool AppendTail(std::span<const std::byte> bytes,
                                size_t want) SERVERCORE_ON_WORKER;
  void ConsumeTail(size_t n) SERVERCORE_ON_WORKER;
  // Grows the tail's storage to `capacity` (counted in the budget first):
  // false, the session closed as a slow receiver, when the budget refuses
  // (`what` needs it, says the log line).
  [[nodiscard]] bool GrowTail(size_t capacity,
                              const char* what) SERVERCORE_ON_WORKER;
  // While paused: `bytes` go to the end of the tail, whole packets or not
  // (AppendTail without the receive limit).
  [[nodiscard]] bool Keep(std::span<const std::byte> bytes)
      SERVERCORE_ON_WORKER;
  // The liveness clocks after a delivery (`progress`: something consumed).
  void NoteDelivery(bool progress) SERVERCORE_ON_WORKER;
  // A growth must have been counted in the budget already (AppendTail).
  void ResizeTailStorage(size_t capacity) SERVERCORE_ON_WORKER;
  // Closes the session: an unfinished message that cannot fit the limit.
  void TooLarge() SERVERCORE_ON_WORKER;
  void BuildIovecs() SERVERCORE_ON_WORKER;
  // WriteNow's rest: the bytes of `parts` after the first `skip`, copied into
  // a buffer that becomes the first of sending_.
  void KeepUnwritten(std::span<const iovec> parts, size_t skip,
                     size_t rest) SERVERCORE_ON_WORKER;
  // Accounts for a finished write; false when the session can write no more.
  bool CompleteWrite(int64_t result) SERVERCORE_ON_WORKER;
  // All written: shuts down the sending side once (the end of the stream
  // follows what was written) and says whether the peer has yet to
  // acknowledge any of it, asking the kernel when `ask` (else: still
  // waiting, unless it was acknowledged already).
  bool Lingers(bool ask) SERVERCORE_ON_WORKER;

  // A drain's linger: none yet, waiting for the peer, acknowledged.
  enum class Linger : uint8_t { kNone, kWaiting, kAcknowledged };

  Session& owner_;
  int fd_ = -1;
  // (Beside fd_, where they fill what would be padding.)
  bool write_in_flight_ SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  bool draining_ SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  // Acknowledged: Close lets the peer read it all (DiscardUnreadInput).
  Linger linger_ SERVERCORE_GUARDED_BY(kWorkerThread) = Linger::kNone;
  // Received or wrote since the last sweep (ReleaseIdleMemory).
  bool active_ SERVERCORE_GUARDED_BY(kWorkerThread) = false;
  IoWorker* worker_ = nullptr;
  SendQueue queue_;
  // Frees a receive tail's storage: from the PagePool at kPagedTailBytes
  // and more (whole pages, given back to the kernel past the pool's
  // reserve, so a flood of large messages leaves no freed megabytes in
  // malloc's arenas), from malloc below.
  static constexpr size_t kPagedTailBytes = size_t{16} << 10;
  struct TailDeleter {
    size_t capacity;  // (no initializer: default-constructible in here)
    void operator()(std::byte* storage) const noexcept;
  };
  // The receive tail: tail_size_ bytes of an unfinished message at the
  // front of tail_ (tail_capacity() bytes, counted in the memory budget;
  // its deleter keeps the capacity).
  std::unique_ptr<std::byte[], TailDeleter> tail_
      SERVERCORE_GUARDED_BY(kWorkerThread);
  size_t tail_capacity() const noexcept SERVERCORE_ON_WORKER {
    return tail_.get_deleter().capacity;
  }
  size_t tail_size_ SERVERCORE_GUARDED_BY(kWorkerThread) = 0;
  size_t recv_limit_ = 0;
  // The memory budget's index of this session (its mutex guards it); SIZE_MAX
  // when not listed.
  size_t budget_slot_ = SIZE_MAX;

  // The write in progress.
  std::vector<SendBufferRef> sending_ SERVERCORE_GUARDED_BY(kWorkerThread);
  // Bytes of sending_.front() already written (a partial write stopped).
  size_t sending_offset_ SERVERCORE_GUARDED_BY(kWorkerThread) = 0;
  // Buffers of sending_ the last write finished: dropped before the next.
  size_t sending_done_ SERVERCORE_GUARDED_BY(kWorkerThread) = 0;
  std::vector<iovec> iov_ SERVERCORE_GUARDED_BY(kWorkerThread);
  msghdr msg_ SERVERCORE_GUARDED_BY(kWorkerThread){};
  Clock::time_point write_since_ SERVERCORE_GUARDED_BY(kWorkerThread){};
  Clock::time_point drain_deadline_ SERVERCORE_GUARDED_BY(kWorkerThread){};
  // When OnRecv last consumed bytes (or the socket reached its worker).
  Clock::time_point last_progress_ SERVERCORE_GUARDED_BY(kWorkerThread){};
  // Since when received bytes have waited unconsumed (a packet begun); the
  // epoch when none wait.
  Clock::time_point partial_since_ SERVERCORE_GUARDED_BY(kWorkerThread){};
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_IO_SOCKET_STATE_H_
