#include "servercore/session.h"

#include <algorithm>
#include <chrono>
#include <new>
#include <utility>

#include "io/io_backend.h"
#include "io/io_key.h"
#include "io/io_worker.h"
#include "io/socket_state.h"
#include "log_limiter.h"
#include "memory_budget.h"
#include "servercore/check.h"
#include "servercore/service.h"

namespace servercore {
namespace {

std::atomic<uint64_t> g_next_session_id{1};
std::atomic<uint64_t> g_session_id_base{0};

// A session closed with kLocal, kProtocolError or kPeerClosed, or saying
// goodbye, writes what it had queued for at most this long; while the
// service stops, less.
constexpr auto kDrainTimeout = std::chrono::seconds(2);
constexpr auto kStopDrainTimeout = std::chrono::seconds(1);

// The reasons of the server's own: the peer may still be reading.
bool MaySayGoodbye(DisconnectReason reason) noexcept {
  switch (reason) {
    case DisconnectReason::kLocal:
    case DisconnectReason::kProtocolError:
    case DisconnectReason::kIdleTimeout:
    case DisconnectReason::kPacketTimeout:
    case DisconnectReason::kMemoryBudget:
    case DisconnectReason::kServiceStopped:
      return true;
    default:
      return false;
  }
}

}  // namespace

using internal::IoKey;
using internal::SocketState;

Session::Session()
    : id_(g_session_id_base.load(std::memory_order_relaxed) |
          g_next_session_id.fetch_add(1, std::memory_order_relaxed)) {
  static_assert(sizeof(SocketState) <= kSocketStateSize,
                "Session::kSocketStateSize is too small for SocketState");
  static_assert(alignof(SocketState) <= 16);
  new (socket_storage_) SocketState(*this);
}

Session::~Session() { socket().~SocketState(); }

void Session::SetIdBase(uint64_t base) noexcept {
  g_session_id_base.store(base, std::memory_order_relaxed);
}

SocketState& Session::socket() noexcept {
  return *std::launder(reinterpret_cast<SocketState*>(socket_storage_));
}

const SocketState& Session::socket() const noexcept {
  return *std::launder(reinterpret_cast<const SocketState*>(socket_storage_));
}

SocketState& Session::socket(const IoKey&) noexcept { return socket(); }

size_t Session::PendingSendBytes() const noexcept {
  return socket().queue().pending_bytes();
}

double Session::MemoryUse() const noexcept {
  const internal::MemoryBudget& budget = socket().worker().budget();
  return static_cast<double>(budget.Used()) /
         static_cast<double>(std::max<size_t>(budget.max_bytes(), 1));
}

bool Session::Send(SendBufferRef buffer) {
  SERVERCORE_CHECK(buffer && buffer->IsClosed(),
                   "Session::Send needs a SendBuffer that was closed");
  if (!IsConnected()) return false;
  // Over the service's memory budget, the largest holder of unsent output
  // goes (rate-limited; it may be this session).
  internal::MemoryBudget& budget = socket().worker().budget();
  budget.ShedFor(buffer->WriteSize());
  if (!IsConnected()) [[unlikely]] {
    return false;
  }
  return Enqueue(std::move(buffer));
}

bool Session::SendNow(std::span<const iovec> parts) {
  if (!IsConnected()) return false;
  size_t size = 0;
  for (const iovec& part : parts) {
    size += part.iov_len;
    // One send buffer must be able to hold any of it.
    SERVERCORE_CHECK(size >= part.iov_len && size <= UINT32_MAX,
                     "Session::SendNow: more than 4 GiB at once");
  }
  SocketState& s = socket();
  internal::IoWorker& worker = s.worker();
  worker.budget().ShedFor(size);  // as Send: the rest may need a buffer
  if (!IsConnected()) [[unlikely]] {
    return false;
  }
  if (worker.InWorkerThread()) {
    worker.AssertInWorkerThread();
    if (s.WriteNow(parts, size)) return true;
  }
  return Enqueue(internal::CopyParts(parts, 0, size));
}

bool Session::Enqueue(SendBufferRef buffer) {
  internal::MemoryBudget& budget = socket().worker().budget();
  size_t grown = 0;
  const internal::SendQueue::PushResult result =
      socket().queue().Push(buffer, &grown);
  if (grown > 0) budget.AddOverhead(grown);  // rare: the queue reallocated
  switch (result) {
    case internal::SendQueue::PushResult::kQueuedFirst:
      // Only the Send that found the queue drained involves the worker; the
      // others ride along in the same gather write.
      socket().worker().RequestFlush(shared_from_this());
      return true;
    case internal::SendQueue::PushResult::kQueued:
      return true;
    case internal::SendQueue::PushResult::kOverLimit:
      if (IsConnected()) {
        internal::LogLimited(internal::LogKind::kDisconnect,
                             "session %llu: slow receiver: %zu bytes unsent; "
                             "disconnecting",
                             static_cast<unsigned long long>(id()),
                             PendingSendBytes());
      }
      Disconnect(DisconnectReason::kSlowReceiver);
      return false;
    case internal::SendQueue::PushResult::kClosed:
      return false;
  }
  return false;
}

bool Session::MarkClosing(DisconnectReason reason) noexcept {
  auto expected = State::kOpen;
  if (!state_.compare_exchange_strong(expected, State::kClosing,
                                      std::memory_order_acq_rel)) {
    return false;  // already closing: the first reason stands
  }
  reason_.store(reason, std::memory_order_release);
  return true;
}

void Session::PauseReading() {
  SocketState& s = socket();
  s.worker().AssertInWorkerThread();
  s.PauseReading();
}

void Session::ResumeReading() {
  socket().worker().RequestResume(shared_from_this());
}

bool Session::ReadingPaused() const {
  const SocketState& s = socket();
  s.worker().AssertInWorkerThread();
  return s.recv_paused();
}

void Session::Disconnect(DisconnectReason reason) {
  // Open implies bound: the socket state knows its worker.
  if (MarkClosing(reason)) socket().worker().RequestClose(shared_from_this());
}

void Session::CountPacketsIn(size_t packets) noexcept {
  socket().worker().counters().packets_in.Add(packets);
}

// --- The library's side ----------------------------------------------------

void Session::Open(const IoKey&, Service& service) {
  service_ = &service;
  socket().SetRecvLimit(
      std::max(service.options().recv_buffer_size, MinRecvBufferSize()));
  state_.store(State::kOpen, std::memory_order_release);
  OnCreated();
}

bool Session::Attach(const IoKey&, bool stopping) {
  SocketState& s = socket();
  s.worker().AssertInWorkerThread();
  if (stopping) MarkClosing(DisconnectReason::kServiceStopped);
  if (s.in_close_list || !IsConnected()) return false;
  s.worker().backend().Attach(s);
  OnConnected();
  return true;
}

void Session::StartClosing(const IoKey&, bool stopping) {
  SocketState& s = socket();
  internal::IoWorker& worker = s.worker();
  worker.AssertInWorkerThread();
  const DisconnectReason reason = reason_.load(std::memory_order_acquire);
  // A peer that closed may have closed only its sending side (shutdown
  // SHUT_WR, as `nc -N` does) and still read: the replies to what it sent
  // before are queued, and go out as they would have without the close.
  bool drain = !stopping && (reason == DisconnectReason::kLocal ||
                             reason == DisconnectReason::kProtocolError ||
                             reason == DisconnectReason::kPeerClosed);
  if (MaySayGoodbye(reason)) {
    if (SendBufferRef last = OnClosing(reason)) {
      SERVERCORE_CHECK(last->IsClosed(),
                       "Session::OnClosing must return a closed SendBuffer");
      // Behind what is queued, and last: a Send from another thread that
      // found the session still open is refused from here on, not written
      // after the goodbye. The drain below writes it (no flush request
      // needed). Refused only past max_pending_bytes: then it is dropped.
      using Result = internal::SendQueue::PushResult;
      size_t grown = 0;
      const Result result = s.queue().PushLast(last, &grown);
      if (grown > 0) worker.budget().AddOverhead(grown);
      drain |= result == Result::kQueuedFirst || result == Result::kQueued;
    }
  }
  if (drain) {
    // Write what was queued before the close (say, the replies to the
    // packets before a bad one, and the goodbye), then shut down; the
    // worker waits, for a bounded time.
    worker.backend().StopRecv(s);
    const auto limit = stopping ? kStopDrainTimeout : kDrainTimeout;
    if (s.StartDrain(SocketState::Clock::now() + limit)) return;
  }
  worker.backend().Detach(s);
}

size_t Session::Deliver(const IoKey&, std::span<const std::byte> data) {
  return OnRecv(data);
}

void Session::Wrote(const IoKey&, size_t bytes) { OnSend(bytes); }

void Session::Finalize(const IoKey&) {
  SocketState& s = socket();
  internal::IoWorker& worker = s.worker();
  worker.AssertInWorkerThread();
  MarkClosing(DisconnectReason::kServiceStopped);  // if it never got going
  state_.store(State::kClosed, std::memory_order_release);
  s.Close();
  const DisconnectReason reason = reason_.load(std::memory_order_acquire);
  worker.counters().closed_by_reason[static_cast<size_t>(reason)].Add();
  OnDisconnected(reason);
}

}  // namespace servercore
