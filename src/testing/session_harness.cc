#include "testing/session_harness.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "io/io_backend.h"
#include "io/io_key.h"
#include "io/io_worker.h"
#include "io/socket_state.h"
#include "memory_budget.h"
#include "servercore/check.h"

namespace servercore::testing {

using internal::IoKey;
using internal::SocketState;

// A backend with no kernel under it: reads are the harness's Receive calls;
// a write, the worker's or Session::SendNow's, takes the gather write's
// bytes (up to max_write_) into the session's byte string at once, so
// nothing is ever in flight; SendNow's every other time, if told to, takes
// none (-EAGAIN).
class SessionHarness::FakeBackend final : public internal::IoBackend {
 public:
  void Attach(SocketState& socket) override SERVERCORE_ON_WORKER {
    reading_[&socket] = true;
  }
  int64_t Write(SocketState& socket) override SERVERCORE_ON_WORKER {
    return Take(socket, socket.write_message());
  }
  int64_t WriteNow(SocketState& socket,
                   const msghdr& message) override SERVERCORE_ON_WORKER {
    if (refuse_every_other_) {
      const bool refuse = refuse_next_;
      refuse_next_ = !refuse;
      if (refuse) return -EAGAIN;
    }
    return Take(socket, message);
  }
  void StopRecv(SocketState& socket) override { reading_[&socket] = false; }
  void ResumeRecv(SocketState& socket) override { reading_[&socket] = true; }
  void ReadEnded(SocketState& socket) override { reading_[&socket] = false; }
  void Unwatch(SocketState&) override {}
  void Detach(SocketState& socket) override { reading_.erase(&socket); }
  void Listen(int) override {}
  void PauseAccept() override {}
  void ResumeAccept() override {}
  bool HasOwnOpsInFlight() const noexcept override { return false; }
  void Poll(int) override {}
  void Wake() noexcept override {}
  void Shutdown() noexcept override { reading_.clear(); }

  bool Reading(SocketState& socket) const {
    auto it = reading_.find(&socket);
    return it != reading_.end() && it->second;
  }
  const std::vector<std::byte>& Written(uint64_t session_id) {
    return written_[session_id];
  }
  void SetMaxWrite(size_t bytes) noexcept { max_write_ = bytes; }
  void SetRefuseEveryOtherWriteNow(bool on) noexcept {
    refuse_every_other_ = on;
    refuse_next_ = true;
  }

 private:
  // The bytes of `message`, up to max_write_, into the session's string.
  int64_t Take(SocketState& socket, const msghdr& message) {
    std::vector<std::byte>& out = written_[socket.owner().id()];
    size_t left = max_write_ == 0 ? SIZE_MAX : max_write_;
    int64_t total = 0;
    for (size_t i = 0; i < message.msg_iovlen && left > 0; ++i) {
      const iovec& v = message.msg_iov[i];
      const size_t n = std::min(v.iov_len, left);
      const auto* bytes = static_cast<const std::byte*>(v.iov_base);
      out.insert(out.end(), bytes, bytes + n);
      left -= n;
      total += static_cast<int64_t>(n);
    }
    return total;
  }

  std::unordered_map<const SocketState*, bool> reading_;
  std::unordered_map<uint64_t, std::vector<std::byte>> written_;
  size_t max_write_ = 0;
  bool refuse_every_other_ = false;
  bool refuse_next_ = true;  // with refuse_every_other_: flips each WriteNow
};

// The service's side: options, the memory budget, the one worker, and a
// Service that is never started, for Session::Open (a session's service()).
class SessionHarness::Host final : public internal::WorkerHost {
 public:
  explicit Host(const ServiceOptions& options)
      : options_(options),
        budget_(options.max_memory),
        service_(options, [] { return nullptr; }),
        worker_(*this, 0) {}

  const ServiceOptions& options() const noexcept override { return options_; }
  internal::IoWorker& NextWorker() noexcept override { return worker_; }
  SessionRef CreateSession(int fd, internal::IoWorker&) override {
    SERVERCORE_CHECK(fd < 0, "a SessionHarness accepts no socket");
    return nullptr;
  }
  void OnSessionClosed() noexcept override {}
  internal::MemoryBudget& budget() noexcept override { return budget_; }

  ServerService& service() noexcept { return service_; }
  internal::IoWorker& worker() noexcept { return worker_; }
  std::vector<SessionRef>& sessions() noexcept { return sessions_; }

 private:
  const ServiceOptions options_;
  internal::MemoryBudget budget_;
  ServerService service_;
  internal::IoWorker worker_;
  std::vector<SessionRef> sessions_;
};

SessionHarness::SessionHarness(const ServiceOptions& options)
    : host_(std::make_unique<Host>(options)) {
  auto backend = std::make_unique<FakeBackend>();
  backend_ = backend.get();
  host_->worker().BeginInline(std::move(backend));
}

SessionHarness::~SessionHarness() { Stop(); }

void SessionHarness::SetMaxWrite(size_t bytes) noexcept {
  backend_->SetMaxWrite(bytes);
}

void SessionHarness::SetRefuseEveryOtherWriteNow(bool on) noexcept {
  backend_->SetRefuseEveryOtherWriteNow(on);
}

void SessionHarness::Add(SessionRef session) {
  SERVERCORE_CHECK(!stopped_, "SessionHarness::Add after Stop");
  internal::IoWorker& worker = host_->worker();
  // As Service::Impl::CreateSession, with no descriptor, then handed to the
  // worker as an accepted connection is.
  session->socket(IoKey{}).Bind(-1, worker, host_->options().max_pending_bytes);
  session->Open(IoKey{}, host_->service());
  host_->sessions().push_back(session);
  worker.Adopt(std::move(session));
}

size_t SessionHarness::Receive(Session& session,
                               std::span<const std::byte> bytes) {
  host_->worker().AssertInWorkerThread();
  if (Unread* unread = UnreadOf(session)) {  // behind what waits already
    if (unread->end) return 0;  // nothing comes after the end of a stream
    unread->bytes.insert(unread->bytes.end(), bytes.begin(), bytes.end());
    return bytes.size();
  }
  const size_t taken = Feed(session, bytes);
  SocketState& socket = session.socket(IoKey{});
  if (taken < bytes.size() && !stopped_ && socket.CanRead() &&
      socket.recv_paused()) {
    unread_.push_back(Unread{
        .session = session.shared_from_this(),
        .bytes = std::vector<std::byte>(
            bytes.begin() + static_cast<ptrdiff_t>(taken), bytes.end())});
    return bytes.size();
  }
  return taken;
}

SessionHarness::Unread* SessionHarness::UnreadOf(const Session& session) {
  for (Unread& unread : unread_) {
    if (unread.session.get() == &session) return &unread;
  }
  return nullptr;
}

void SessionHarness::DeliverUnread() {
  host_->worker().AssertInWorkerThread();
  for (size_t i = 0; i < unread_.size();) {
    Unread& unread = unread_[i];
    SocketState& socket = unread.session->socket(IoKey{});
    if (stopped_ || !socket.CanRead()) {  // closed: the kernel drops it
      unread_.erase(unread_.begin() + static_cast<ptrdiff_t>(i));
      continue;
    }
    if (!backend_->Reading(socket)) {
      ++i;
      continue;
    }
    const size_t taken = Feed(*unread.session, unread.bytes);
    unread.bytes.erase(unread.bytes.begin(),
                       unread.bytes.begin() + static_cast<ptrdiff_t>(taken));
    if (!unread.bytes.empty() && socket.CanRead()) {
      ++i;  // paused again
      continue;
    }
    const SessionRef session = std::move(unread.session);
    const bool end = unread.end;
    unread_.erase(unread_.begin() + static_cast<ptrdiff_t>(i));
    if (end) PeerClose(*session);
  }
}

size_t SessionHarness::Feed(Session& session,
                            std::span<const std::byte> bytes) {
  host_->worker().AssertInWorkerThread();
  SocketState& socket = session.socket(IoKey{});
  // As a backend's reads: at most kReadSize bytes each, from a buffer of its
  // own that is reused (and scribbled on) after each, so a session that
  // keeps a pointer into a read is caught.
  constexpr size_t kReadSize = 64 * 1024;
  size_t taken = 0;
  while (taken < bytes.size() && !stopped_ && backend_->Reading(socket) &&
         socket.CanRead()) {
    const size_t n = std::min(bytes.size() - taken, kReadSize);
    read_buffer_.assign(bytes.begin() + static_cast<ptrdiff_t>(taken),
                        bytes.begin() + static_cast<ptrdiff_t>(taken + n));
    taken += n;
    socket.Received(read_buffer_);
    std::fill(read_buffer_.begin(), read_buffer_.end(), std::byte{0xdd});
  }
  return taken;
}

size_t SessionHarness::ReceiveHeld(Session& session) const {
  host_->worker().AssertInWorkerThread();
  return session.socket(IoKey{}).recv_tail_size();
}

size_t SessionHarness::MemoryUsed() const noexcept {
  return host_->budget().Used();
}

void SessionHarness::PeerClose(Session& session) {
  internal::IoWorker& worker = host_->worker();
  worker.AssertInWorkerThread();
  SocketState& socket = session.socket(IoKey{});
  if (Unread* unread = UnreadOf(session)) {
    unread->end = true;  // after what waits
    return;
  }
  if (!stopped_ && socket.CanRead() && socket.recv_paused()) {
    unread_.push_back(Unread{
        .session = session.shared_from_this(), .bytes = {}, .end = true});
    return;
  }
  if (!stopped_ && backend_->Reading(socket)) socket.RecvEnded(0);
}

void SessionHarness::RunRound() {
  if (stopped_) return;
  internal::IoWorker& worker = host_->worker();
  worker.AssertInWorkerThread();
  worker.RunRound(skew_);
  DeliverUnread();
}

bool SessionHarness::RunUntilQuiet(int max_rounds) {
  if (stopped_) return true;
  internal::IoWorker& worker = host_->worker();
  worker.AssertInWorkerThread();
  for (int round = 0; round < max_rounds; ++round) {
    worker.RunRound(skew_);
    DeliverUnread();
    if (worker.Quiet() && unread_.empty()) return true;
  }
  return false;
}

const std::vector<std::byte>& SessionHarness::Written(
    const Session& session) const {
  return backend_->Written(session.id());
}

uint64_t SessionHarness::Closed(DisconnectReason reason) const noexcept {
  return host_->worker()
      .counters()
      .closed_by_reason[static_cast<size_t>(reason)]
      .Get();
}

void SessionHarness::Stop() {
  if (stopped_) return;
  internal::IoWorker& worker = host_->worker();
  worker.AssertInWorkerThread();
  worker.EndInline(skew_);
  stopped_ = true;
  unread_.clear();
  host_->sessions().clear();
}

}  // namespace servercore::testing
