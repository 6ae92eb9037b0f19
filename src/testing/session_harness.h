// SessionHarness: real sessions with no socket, for fuzzers and tests. The
// harness plays a service with one worker: the calling thread runs that
// worker's loop (IoWorker::BeginInline), one round at a time, over a fake
// backend that has no descriptor. Bytes from a "peer" reach a session as a
// backend's completed read does (SocketState::Received: the receive tail,
// Session::Deliver, the liveness clocks, the receive limit); what the
// session writes is gathered from its socket state's msghdr, as sendmsg would
// take it, into a byte string per session. Everything between is the
// library's own code: Send, the send queue, flushes, closes with their drain
// and goodbye, the JobQueues of the application and their timers.
//
//   SessionHarness harness(ServiceOptions{...});
//   auto session = std::make_shared<MySession>(...);
//   harness.Add(session);            // as if accepted: OnCreated runs
//   harness.RunRound();              // it reaches the worker: OnConnected
//   harness.Receive(*session, bytes);
//   harness.RunUntilQuiet();         // jobs run, output is written
//   harness.Written(*session);       // the bytes the peer would read
//   harness.Advance(tick);           // timers due by then fire next round
//   harness.Stop();                  // as Service::Stop
//
// Timers fire on the harness's clock: the real clock plus what Advance added,
// so a test moves time on without sleeping, and a fuzzer's run does not
// depend on how fast it runs (for periods longer than the run itself).
//
// It costs real sessions next to nothing: the worker's loop is the same
// round either way, Session::SendNow's write is the one virtual call
// (IoBackend::WriteNow) the harness needs, and the harness is a library of
// its own (servercore_testing) that only tests and fuzzers link.
//
// Thread safety: one thread, the one that made the harness, which is the
// worker's thread until Stop (at most one harness per thread at a time).
// Ownership: holds a SessionRef to every session added; the sessions' own
// SessionRefs may outlive it (they are closed then).
#ifndef SERVERCORE_SRC_TESTING_SESSION_HARNESS_H_
#define SERVERCORE_SRC_TESTING_SESSION_HARNESS_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "servercore/disconnect_reason.h"
#include "servercore/service.h"
#include "servercore/session.h"

namespace servercore::testing {

class SessionHarness {
 public:
  // `options` as a service's (recv_buffer_size, max_pending_bytes,
  // max_memory, timeouts); worker_threads and backend are ignored.
  explicit SessionHarness(const ServiceOptions& options);
  ~SessionHarness();  // Stop, if not done
  SessionHarness(const SessionHarness&) = delete;
  SessionHarness& operator=(const SessionHarness&) = delete;

  // The most the fake socket takes per write (0: all it is offered). A
  // small value turns each flush into a run of partial writes.
  void SetMaxWrite(size_t bytes) noexcept;
  // With `on`, every other write made at once for Session::SendNow takes
  // nothing (-EAGAIN, as a full socket buffer), starting with the next:
  // all of it is then copied and written by the worker.
  void SetRefuseEveryOtherWriteNow(bool on) noexcept;

  // A session arrives, as if accepted: it is opened here (OnCreated runs)
  // and reaches the worker at the next round (OnConnected).
  void Add(SessionRef session);
  // Bytes from the peer, as one completed read per 64 KiB.
  // Returns the bytes taken: all of them, unless the session stopped
  // reading (not attached yet, or closing) before the end. A session that
  // paused reading (Session::PauseReading) takes them all, as the kernel's
  // socket buffer would: they wait, in order with what comes later, and
  // the rounds after its resumption deliver them.
  size_t Receive(Session& session, std::span<const std::byte> bytes);
  // The peer closed its side: a read of 0 bytes (after what waits).
  void PeerClose(Session& session);

  // One round of the worker's loop.
  void RunRound();
  // Rounds until one leaves nothing to do (no task, flush, closing session
  // or job queue waiting, no byte waiting for a paused session); false if
  // that took more than `max_rounds`.
  bool RunUntilQuiet(int max_rounds = 10'000);
  // Moves the timers' clock forward.
  void Advance(std::chrono::nanoseconds by) noexcept { skew_ += by; }

  // Every byte written to the session's socket so far.
  const std::vector<std::byte>& Written(const Session& session) const;
  // Sessions closed for `reason`, finalised (OnDisconnected ran).
  uint64_t Closed(DisconnectReason reason) const noexcept;
  // Bytes of an unfinished message the session holds between reads.
  size_t ReceiveHeld(Session& session) const;
  // What the service's memory budget counts now (ServiceOptions::max_memory).
  size_t MemoryUsed() const noexcept;

  // As Service::Stop: every open session closes (kServiceStopped, with its
  // goodbye), the jobs still queued run, the worker's timers are dropped.
  // What was written stays readable.
  void Stop();

 private:
  class Host;
  class FakeBackend;
  std::unique_ptr<Host> host_;
  FakeBackend* backend_ = nullptr;  // owned by the worker
  std::chrono::nanoseconds skew_{0};
  bool stopped_ = false;
  std::vector<std::byte> read_buffer_;  // the fake backend's read buffer
  // What a paused session's socket buffer holds, and whether its peer's
  // end of stream comes after it.
  struct Unread {
    SessionRef session;
    std::vector<std::byte> bytes;
    bool end = false;
  };
  std::vector<Unread> unread_;

  // Reads of `bytes` while the socket takes them: the bytes taken.
  size_t Feed(Session& session, std::span<const std::byte> bytes);
  Unread* UnreadOf(const Session& session);
  // Hands what waits to the sessions reading again; drops it for closed ones.
  void DeliverUnread();
};

}  // namespace servercore::testing

#endif  // SERVERCORE_SRC_TESTING_SESSION_HARNESS_H_
