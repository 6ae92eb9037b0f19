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
// SendNow(parts) sends bytes the caller holds, without copying them when the
// session's worker calls it with nothing queued or being written: they go
// out at once in one gather write, as muduo's TcpConnection::send does when
// its output buffer is empty, and only what the kernel did not take is
// copied and written next. Elsewhere it copies them and queues the copy.
//
// Buffer contract: the session holds a SendBufferRef to every queued buffer
// until the kernel has taken its last byte (or the session is closed), so a
// caller may drop its own reference right after Send.
//
// Backpressure: when unsent bytes (queued and in flight) would pass
// ServiceOptions::max_pending_bytes, Send refuses the buffer and disconnects
// the session with DisconnectReason::kSlowReceiver. So it does when the chunk
// memory those buffers keep alive would pass 8 times the larger of
// max_pending_bytes and 2 MiB (what max_pending_bytes of the smallest
// packets take in their chunks): a queued buffer whose chunk is not among
// the last 8 distinct chunks queued is charged that chunk's whole size, so a
// peer cannot pin many chunks with a few small buffers.
//
// Closing: Disconnect(reason) from any thread, idempotent, first reason wins.
// For kLocal, kProtocolError and kPeerClosed (a peer that closed only its
// sending side still reads), output queued before the call is still written
// (for up to two seconds) before the socket is shut down: a reply, or a
// goodbye, is not lost to the close. For other reasons it is dropped.
//
// End of stream: when the peer's stream ends between two messages, the
// library asks OnPeerClosed. By default the session closes as kPeerClosed
// (what is queued still goes out, as above). An application whose replies
// are made elsewhere, later (a room's jobs), may keep it open to send them:
// the library then reads no more, and the application calls
// Disconnect(kPeerClosed) once it has sent what it owes. If it has not two
// seconds later, the library does. Meanwhile the session can still close
// for the other reasons (a reset, noticed at once on epoll and within a
// second on io_uring; a stalled write; the service stopping), and a Send
// after that returns false.
//
// Goodbye: when the server closes a session for a reason of its own
// (kProtocolError, kIdleTimeout, kPacketTimeout, kMemoryBudget,
// kServiceStopped, or the application's kLocal), OnClosing runs first, on the
// worker, and may return one last packet (say, why). The library queues it
// behind what is already queued and writes it all before shutting the socket
// down, for at most two seconds (one while the service is stopping): a peer
// that does not read cannot hold the close. OnClosing is not called when the
// session is closed as a slow receiver (its output is full), when the peer
// closed or reset first, or on a socket error: then nothing more can or should
// be written. OnDisconnected fires exactly once, on the worker, after the last
// I/O operation on the socket has completed; only then is the socket closed.
// The Service keeps the session alive while it has I/O in flight; the
// application may keep SessionRefs longer (Send then returns false).
//
// Thread safety: Send, Disconnect, IsConnected, PendingSendBytes and id may be
// called from any thread. The On* hooks run on the session's worker thread,
// one at a time. Ownership: the Service owns the socket; the session embeds
// its I/O state (the queue, the write in progress, the receive buffer), so it
// costs no allocation beyond the object itself.
#ifndef SERVERCORE_SESSION_H_
#define SERVERCORE_SESSION_H_

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "servercore/disconnect_reason.h"
#include "servercore/send_buffer.h"

namespace servercore {

class Service;
namespace internal {
class IoKey;
class SocketState;
}  // namespace internal

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session();
  virtual ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Unique for the process's lifetime, assigned at construction (from 1),
  // or'ed with the base set by SetIdBase.
  uint64_t id() const noexcept { return id_; }
  // Any thread, before the first session is made: ids become `base | n`
  // (n from 1), so that processes with distinct bases never share an id (a
  // cluster of servers: base = node id << 48). Default 0.
  static void SetIdBase(uint64_t base) noexcept;
  // True from just before OnCreated until Disconnect begins.
  bool IsConnected() const noexcept {
    return state_.load(std::memory_order_acquire) == State::kOpen;
  }
  // Any thread. Queues a closed buffer; false when the session is closing or
  // closed, or was just disconnected as a slow receiver.
  bool Send(SendBufferRef buffer);
  // Any thread. Sends the bytes of `parts`, in order, as Send would send one
  // buffer holding them, but copies them only when it must: called on the
  // session's worker (in one of its hooks, say OnRecv) with nothing queued
  // or being written, it writes them at once with one gather write from
  // where they lie, and copies into a send buffer only what the kernel did
  // not take, to be written next, before anything sent meanwhile. Anywhere
  // else, or with output pending, they are copied and queued. The bytes
  // need to stay valid only during the call. Meant for large payloads sent
  // from memory the application holds anyway (an echo's payload where it
  // was received): for many small parts, one copy costs less than the
  // kernel's work per part. Bytes written at once are not reported to
  // OnSend. Returns what Send would; not while this thread has a SendBuffer
  // open.
  bool SendNow(std::span<const iovec> parts);
  // Any thread. Starts closing the session; the first reason is the one
  // reported.
  void Disconnect(DisconnectReason reason);
  // Receive back-pressure. Worker thread, inside OnRecv (a PacketSession's
  // OnRecvPacket): nothing more is delivered past what this OnRecv consumes
  // until ResumeReading. What was read already is kept in the session's
  // receive memory (counted in ServiceOptions::max_memory) and the socket
  // is not read meanwhile, so TCP's window slows the peer to the
  // application's pace: for work a session hands to other threads that must
  // not pile up behind a fast peer. The idle and packet timeouts wait while
  // the session is paused (what it sent is the server's to handle).
  void PauseReading();
  // Any thread: delivers again, first what was kept, then reads. Always
  // later, on the worker (never inside the caller, who may be in OnRecv).
  // Nothing happens when not paused, or closed.
  void ResumeReading();
  // Worker thread: between PauseReading and the resumption.
  bool ReadingPaused() const;
  // Any thread. Bytes queued or in flight, not yet taken by the kernel.
  size_t PendingSendBytes() const noexcept;
  // Any thread: how much of the service's memory budget (max_memory) is in
  // use, 0 to 1 and past 1 when over it (three relaxed loads). Applications
  // that hold work of their own for a session (queued jobs, say) can hold
  // less while it is high, before the budget must shed readers' output.
  double MemoryUse() const noexcept;
  // The service this session belongs to; null before it is set up.
  Service* service() const noexcept { return service_; }

  // --- The library's side ---------------------------------------------
  // The worker and the Service drive a session through these. Each takes an
  // internal::IoKey, which only the library can make, so applications cannot
  // call them. Each runs on the session's worker thread unless it says so.

  // Any thread: the session's I/O state.
  internal::SocketState& socket(const internal::IoKey&) noexcept;
  // The creating thread, once the socket is bound: sizes the receive buffer,
  // and the session is open (OnCreated runs).
  void Open(const internal::IoKey&, Service& service);
  // The session reached its worker: starts receiving and runs OnConnected.
  // False, with nothing started, when it was closed before it got there (or
  // `stopping`: the service is stopping, and it is closed now).
  [[nodiscard]] bool Attach(const internal::IoKey&, bool stopping);
  // Begins closing on the worker: runs OnClosing where it applies; for
  // kLocal, kProtocolError and kPeerClosed, or when OnClosing gave a last
  // packet, the output queued is written first (for a shorter time when
  // `stopping`: the service is stopping, and then only a last packet starts
  // a drain); otherwise all I/O on the socket is ended at once.
  void StartClosing(const internal::IoKey&, bool stopping);
  // The hooks, for the socket state: bytes received, bytes written.
  size_t Deliver(const internal::IoKey&, std::span<const std::byte> data);
  // The peer's stream ended between two messages: true to close now.
  bool PeerClosed(const internal::IoKey&) { return OnPeerClosed(); }
  size_t MessageSize(const internal::IoKey&,
                     std::span<const std::byte> begun) const noexcept {
    return BegunMessageSize(begun);
  }
  void Wrote(const internal::IoKey&, size_t bytes);
  // The last operation on the socket has completed: closes it, drops what
  // was queued and runs OnDisconnected. A session still open (it never
  // reached its worker before the service stopped) is closed with
  // kServiceStopped.
  void Finalize(const internal::IoKey&);

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
  // Worker thread. The kernel took `bytes` more bytes of queued output. Not
  // called for what SendNow wrote at once (only for a rest it queued): an
  // application pacing its output by OnSend should use Send.
  virtual void OnSend(size_t bytes) { (void)bytes; }
  // Worker thread, at most once: the peer ended its stream with no message
  // begun (see "End of stream" above). True closes the session as
  // kPeerClosed; false keeps it open for sending, reading no more, until
  // the application calls Disconnect (at most two seconds).
  virtual bool OnPeerClosed() { return true; }
  // Worker thread, at most once: the server is closing the session for a
  // reason of its own (see "Goodbye" above; IsConnected is already false).
  // Return a closed buffer to be the last packet the peer receives, or null.
  // May run inside another hook of this session (OnRecv calling Disconnect).
  virtual SendBufferRef OnClosing(DisconnectReason reason) {
    (void)reason;
    return nullptr;
  }
  // Worker thread, exactly once, after the socket's last I/O completed.
  virtual void OnDisconnected(DisconnectReason reason) { (void)reason; }
  // The most bytes of an unfinished message the session may hold between
  // reads is made at least this large (a PacketSession: its largest packet).
  virtual size_t MinRecvBufferSize() const noexcept { return 0; }
  // Any thread, pure: the size in bytes of the whole message that `begun`
  // (bytes OnRecv left unconsumed) starts, as far as those bytes tell: a
  // PacketSession says 4 until the header is there, then the header's size.
  // 0 means "cannot tell". The receive path uses it to copy, of the next
  // read, only the bytes that finish the message; with 0 it offers OnRecv
  // the unconsumed bytes joined with as much of the next read as the limit
  // allows.
  virtual size_t BegunMessageSize(
      std::span<const std::byte> begun) const noexcept {
    (void)begun;
    return 0;
  }

  // Worker thread: adds whole packets received to the service's stats.
  void CountPacketsIn(size_t packets) noexcept;

 private:
  enum class State : uint8_t { kNew, kOpen, kClosing, kClosed };

  // Open -> closing with `reason`, without telling the worker; false when
  // the session was no longer open.
  bool MarkClosing(DisconnectReason reason) noexcept;
  // Send, once the memory budget has been seen to.
  bool Enqueue(SendBufferRef buffer);
  internal::SocketState& socket() noexcept;
  const internal::SocketState& socket() const noexcept;

  const uint64_t id_;
  std::atomic<State> state_{State::kNew};
  std::atomic<DisconnectReason> reason_{DisconnectReason::kLocal};
  Service* service_ = nullptr;

  // The internal::SocketState, built in place: its type stays out of this
  // header, and the session needs no second allocation. session.cc checks
  // that it fits. Kept tight: it is most of what an idle connection costs
  // (docs/BENCHMARKS.md, S6 and S6t).
  static constexpr size_t kSocketStateSize = 448;
  alignas(16) std::byte socket_storage_[kSocketStateSize];
};

using SessionRef = std::shared_ptr<Session>;

}  // namespace servercore

#endif  // SERVERCORE_SESSION_H_
