// Session: one TCP connection, server or client side, owned by one worker
// thread of a Service. Subclass it and override the hooks.
//
// Sending. Send(buffer) may be called from any thread. It appends the buffer
// to the session's queue under a short lock; the first Send after the queue
// was drained asks the session's worker to flush, later ones only enqueue.
// The worker takes everything queued and writes it with one gather write
// (sendmsg with up to IOV_MAX iovecs), so a burst of sends costs one syscall.
// Exactly one write is in flight per session. Linux writes may be partial:
// the worker resumes at the exact byte, across buffer boundaries. Bytes reach
// the wire in the order Send was called (per calling thread; across threads,
// in the order the queue lock was taken), none lost, none twice.
//
// Buffer contract: the session holds a SendBufferRef to every queued buffer
// until the kernel has taken its last byte (or the session is closed), so a
// caller may drop its own reference right after Send.
//
// Backpressure: when unsent bytes (queued and in flight) would pass
// ServiceOptions::max_pending_bytes, Send refuses the buffer and disconnects
// the session with DisconnectReason::kSlowReceiver. So it does when the chunk
// memory those buffers keep alive would pass the larger of max_pending_bytes
// and 2 MiB: a queued buffer whose chunk is not among the last 16 distinct
// chunks queued is charged that chunk's whole size, so a peer cannot pin many
// chunks with a few small buffers.
//
// Closing: Disconnect(reason) from any thread, idempotent, first reason wins.
// For kLocal and kProtocolError, output queued before the call is still
// written (for up to two seconds) before the socket is shut down: a reply,
// or a goodbye, is not lost to the close. For other reasons it is dropped.
// OnDisconnected fires exactly once, on the worker, after the last I/O
// operation on the socket has completed; only then is the socket closed. The
// Service keeps the session alive while it has I/O in flight; the application
// may keep SessionRefs longer (Send then returns false).
//
// Thread safety: Send, Disconnect, IsConnected, PendingSendBytes and id may be
// called from any thread. The On* hooks run on the session's worker thread,
// one at a time. Ownership: the Service owns the socket.
#ifndef SERVERCORE_SESSION_H_
#define SERVERCORE_SESSION_H_

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "servercore/disconnect_reason.h"
#include "servercore/mutex.h"
#include "servercore/recv_buffer.h"
#include "servercore/send_buffer.h"
#include "servercore/thread_annotations.h"

namespace servercore {

class SendBufferChunk;
class Service;
namespace internal {
class IoWorker;
class EpollBackend;
class UringBackend;
}  // namespace internal

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session();
  virtual ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Unique for the process's lifetime, assigned at construction (from 1).
  uint64_t id() const noexcept { return id_; }
  // True from just before OnConnected until Disconnect begins.
  bool IsConnected() const noexcept {
    return state_.load(std::memory_order_acquire) == State::kOpen;
  }
  // Any thread. Queues a closed buffer; false when the session is closing or
  // closed, or was just disconnected as a slow receiver.
  bool Send(SendBufferRef buffer);
  // Any thread. Starts closing the session; the first reason is the one
  // reported.
  void Disconnect(DisconnectReason reason);
  // Any thread. Bytes queued or in flight, not yet taken by the kernel.
  size_t PendingSendBytes() const noexcept {
    return pending_bytes_.load(std::memory_order_relaxed);
  }
  // The service this session belongs to; null before it is attached.
  Service* service() const noexcept { return service_; }

 protected:
  // The thread that accepted the socket (or called Connect), right after the
  // session is set up and before it reaches its worker; accepted sessions see
  // it in accept order, one at a time. Send works from here on (the output
  // waits for the worker). For what must be in place before any connection
  // accepted later can be served, such as joining a default room.
  virtual void OnCreated() {}
  // Worker thread. The connection is up and receiving.
  virtual void OnConnected() {}
  // Worker thread. `data` is every received byte not yet consumed; return how
  // many were consumed (the rest is offered again, with more, next time).
  // Consuming nothing while the receive buffer is full is a protocol error.
  virtual size_t OnRecv(std::span<const std::byte> data) { return data.size(); }
  // Worker thread. The kernel took `bytes` more bytes of queued output.
  virtual void OnSend(size_t bytes) { (void)bytes; }
  // Worker thread, exactly once, after the socket's last I/O completed.
  virtual void OnDisconnected(DisconnectReason reason) { (void)reason; }
  // The receive buffer is made at least this large (a PacketSession needs
  // room for its largest packet).
  virtual size_t MinRecvBufferSize() const noexcept { return 0; }

  // Worker thread: adds whole packets received to the service's stats.
  void CountPacketsIn(size_t packets) noexcept;

 private:
  friend class Service;
  friend class internal::IoWorker;
  friend class internal::EpollBackend;
  friend class internal::UringBackend;

  enum class State : uint8_t { kNew, kOpen, kClosing, kClosed };

  // The chunk-memory charge of each buffer in a FIFO: a chunk's whole size
  // when it is not among the last kRecent distinct chunks seen, else 0. The
  // answers depend only on the sequence of buffers, so one tracker at the
  // queue's tail (Send) and one at its head (written buffers) agree, and the
  // charges added at the tail come off at the head exactly.
  class PinTracker {
   public:
    size_t Charge(const SendBuffer& buffer) noexcept;
    void Reset() noexcept { recent_ = {}; }

   private:
    static constexpr size_t kRecent = 16;  // one per worker, up to 16
    std::array<const SendBufferChunk*, kRecent> recent_{};
    size_t next_ = 0;
  };

  // --- Worker-thread side (see io_worker.cc) ---
  void HandleRecv(int64_t result);
  void HandleWrite(int64_t result);
  void WriteQueued();
  bool CompleteWrite(int64_t result);
  void BuildIovecs();
  // Output may still be written: open, or closing with a drain.
  bool CanWrite() const noexcept { return IsConnected() || draining_; }
  // The chunk-memory budget: never below 2 MiB (64 default chunks), so a
  // small max_pending_bytes does not make every receiver of a busy room,
  // whose queue spans a few chunks, look slow.
  size_t PinnedChargeLimit() const noexcept {
    return std::max<size_t>(max_pending_bytes_, size_t{2} << 20);
  }

  const uint64_t id_;
  std::atomic<State> state_{State::kNew};
  std::atomic<DisconnectReason> reason_{DisconnectReason::kLocal};
  std::atomic<size_t> pending_bytes_{0};
  // Chunk memory charged to queued buffers (see PinTracker).
  std::atomic<size_t> pinned_charge_{0};

  // Fixed once attached.
  int fd_ = -1;
  Service* service_ = nullptr;
  internal::IoWorker* worker_ = nullptr;
  size_t max_pending_bytes_ = 0;

  // Send queue: any thread appends; the worker takes.
  Mutex send_mu_;
  std::vector<SendBufferRef> send_queue_ SERVERCORE_GUARDED_BY(send_mu_);
  // True from the Send that found the queue drained until the worker drains
  // it again: while set, Send only enqueues.
  bool flush_requested_ SERVERCORE_GUARDED_BY(send_mu_) = false;
  PinTracker tail_pins_ SERVERCORE_GUARDED_BY(send_mu_);

  // Worker thread only: the write in progress.
  std::vector<SendBufferRef> sending_;
  size_t sending_head_ = 0;    // first buffer in sending_ not fully written
  size_t sending_offset_ = 0;  // bytes of sending_[sending_head_] written
  std::vector<iovec> iov_;     // what the current write covers
  PinTracker head_pins_;       // charges of buffers as they are written
  msghdr msg_{};
  bool write_in_flight_ = false;
  // Closing, but still writing what was queued before Disconnect.
  bool draining_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
  // When the write in flight was started: a write pending for longer than
  // ServiceOptions::send_stall_timeout means the peer stopped reading.
  std::chrono::steady_clock::time_point write_since_{};
  int ops_in_flight_ = 0;  // io_uring operations not yet completed
  bool in_close_list_ = false;
  bool attached_ = false;    // in its worker's session list
  size_t worker_index_ = 0;  // position in the worker's session list
  RecvBuffer recv_buffer_{0};
};

using SessionRef = std::shared_ptr<Session>;

}  // namespace servercore

#endif  // SERVERCORE_SESSION_H_
