#include "io/io_worker.h"

#include <unistd.h>

#include <algorithm>
#include <future>
#include <utility>

#include "servercore/check.h"
#include "servercore/log.h"
#include "servercore/service.h"
#include "servercore/session.h"

namespace servercore::internal {
namespace {

thread_local IoWorker* t_current_worker = nullptr;

// The longest Poll waits, so timers (accept back-off) are checked.
constexpr int kMaxPollMs = 100;
// A stopping worker waits at most this long for in-flight I/O to complete.
constexpr auto kStopDeadline = std::chrono::seconds(5);
// A session closed with output still queued writes it for at most this long.
constexpr auto kDrainTimeout = std::chrono::seconds(2);

}  // namespace

IoWorker* CurrentWorker() noexcept { return t_current_worker; }

IoWorker::IoWorker(Service& service, size_t index)
    : service_(service), index_(index) {}

IoWorker::~IoWorker() {
  SERVERCORE_CHECK(!thread_.joinable(), "IoWorker destroyed while running");
  backend_.reset();
  listener_.reset();  // closes the listening socket, now the backend is gone
}

std::error_code IoWorker::Start(Backend kind, std::string* why) {
  std::promise<std::error_code> started;
  std::future<std::error_code> result = started.get_future();
  thread_ = std::thread([this, kind, why, &started] {
    std::error_code error;
    backend_ = kind == Backend::kUring ? CreateUringBackend(*this, &error, why)
                                       : CreateEpollBackend(*this, &error, why);
    started.set_value(error);
    if (!error) Run();
  });
  std::error_code error = result.get();
  if (error) thread_.join();
  return error;
}

void IoWorker::RequestStop() {
  Post(Task{.kind = Task::Kind::kStop, .session = nullptr});
}

void IoWorker::Join() {
  if (thread_.joinable()) thread_.join();
}

bool IoWorker::InWorkerThread() const noexcept {
  return t_current_worker == this;
}

void IoWorker::AssertInWorkerThread() const {
  SERVERCORE_CHECK(InWorkerThread(), "called off the session's worker thread");
}

void IoWorker::Post(Task task) {
  bool queued = false;
  bool was_empty = false;
  {
    MutexLock lock(inbox_mu_);
    if (!exited_) {
      was_empty = inbox_.empty();
      inbox_.push_back(std::move(task));
      queued = true;
    }
  }
  if (queued) {
    // Queued. One wake-up per batch: the worker swaps the whole inbox out
    // each round.
    if (was_empty) backend_->Wake();
  } else if (task.kind == Task::Kind::kAdopt) {
    // The loop has ended (a Connect raced with Stop): no worker will ever
    // attach this session, so close it here.
    task.session->reason_.store(DisconnectReason::kServiceStopped);
    Finalize(*task.session);
  } else if (task.kind == Task::Kind::kListen) {
    ::close(task.fd);
  }
}

void IoWorker::RequestFlush(SessionRef session) {
  if (InWorkerThread()) {
    ScheduleFlush(std::move(session));
  } else {
    Post(Task{.kind = Task::Kind::kFlush, .session = std::move(session)});
  }
}

void IoWorker::RequestClose(SessionRef session) {
  if (InWorkerThread()) {
    BeginClose(std::move(session));
  } else {
    Post(Task{.kind = Task::Kind::kClose, .session = std::move(session)});
  }
}

void IoWorker::Adopt(SessionRef session) {
  Post(Task{.kind = Task::Kind::kAdopt, .session = std::move(session)});
}

void IoWorker::ListenOn(int listen_fd) {
  Post(Task{.kind = Task::Kind::kListen, .session = nullptr, .fd = listen_fd});
}

void IoWorker::ScheduleFlush(SessionRef session) {
  AssertInWorkerThread();
  flush_list_.push_back(std::move(session));
}

void IoWorker::Run() {
  t_current_worker = this;
  std::chrono::steady_clock::time_point deadline{};
  for (;;) {
    backend_->Poll(PollTimeoutMs());
    RunTasks();
    FlushScheduled();
    FinalizeClosed();
    MaybeResumeAccept();
    KickStalledWriters();
    if (stopping_) {
      if (sessions_.empty() && closing_.empty() &&
          !backend_->HasOwnOpsInFlight()) {
        break;
      }
      const auto now = std::chrono::steady_clock::now();
      if (deadline == std::chrono::steady_clock::time_point{}) {
        deadline = now + kStopDeadline;
      } else if (now > deadline) {
        SERVERCORE_LOG_ERROR(
            "worker %zu: %zu sessions still had I/O in flight after %llds; "
            "exiting anyway",
            index_, closing_.size(),
            static_cast<long long>(kStopDeadline.count()));
        break;
      }
    }
  }
  DrainAfterExit();
  t_current_worker = nullptr;
}

void IoWorker::DrainAfterExit() {
  // Whatever is left (only after the deadline) goes with the backend's
  // operations. The backend object itself lives until the destructor: other
  // threads may still Post (and so Wake) after this loop has ended.
  backend_->Shutdown();
  backend_down_ = true;
  {
    MutexLock lock(inbox_mu_);
    exited_ = true;
    tasks_.swap(inbox_);
  }
  for (Task& task : tasks_) {
    if (task.kind == Task::Kind::kAdopt) {
      task.session->reason_.store(DisconnectReason::kServiceStopped);
      Finalize(*task.session);
    }
  }
  tasks_.clear();
  // Hooks may close more sessions while these finalise.
  while (!closing_.empty()) {
    finalizing_.swap(closing_);
    for (SessionRef& session : finalizing_) Finalize(*session);
    finalizing_.clear();
  }
  sessions_.clear();
  flush_list_.clear();
}

int IoWorker::PollTimeoutMs() const {
  // Work queued by our own thread this round must not wait for an event.
  if (!flush_list_.empty()) return 0;
  if (const auto resume_at = listener_ ? listener_->ResumeAt() : std::nullopt) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        *resume_at - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<int64_t>(left.count(), 0, kMaxPollMs));
  }
  return stopping_ ? 10 : kMaxPollMs;
}

void IoWorker::RunTasks() {
  {
    MutexLock lock(inbox_mu_);
    tasks_.swap(inbox_);
  }
  for (Task& task : tasks_) {
    switch (task.kind) {
      case Task::Kind::kFlush:
        ScheduleFlush(std::move(task.session));
        break;
      case Task::Kind::kClose:
        BeginClose(std::move(task.session));
        break;
      case Task::Kind::kAdopt:
        counters_.connected.Add();
        AttachSession(std::move(task.session));
        break;
      case Task::Kind::kListen:
        listener_.emplace(*backend_, task.fd, index_);
        if (!stopping_) listener_->Start();
        break;
      case Task::Kind::kStop:
        StopAll();
        break;
    }
  }
  tasks_.clear();
}

void IoWorker::FlushScheduled() {
  // A session may be listed more than once; WriteQueued is cheap when there
  // is nothing new or a write is already in flight.
  for (size_t i = 0; i < flush_list_.size(); ++i) {
    Session& session = *flush_list_[i];
    // Not attached yet (its kAdopt task is still on the way): the flush
    // request stands, and AttachSession flushes.
    if (session.attached_ &&
        session.state_.load(std::memory_order_acquire) ==
            Session::State::kOpen &&
        !session.write_in_flight_) {
      session.WriteQueued();
    }
  }
  flush_list_.clear();
}

void IoWorker::OnAccepted(int fd) {
  counters_.accepted.Add();
  if (stopping_) {
    ::close(fd);
    return;
  }
  IoWorker& owner = service_.NextWorker();
  SessionRef session = service_.CreateSession(fd, owner);
  if (session == nullptr) return;  // refused: max_sessions
  if (&owner == this) {
    AttachSession(std::move(session));
  } else {
    owner.Adopt(std::move(session));
  }
}

void IoWorker::OnAcceptError(int error) {
  counters_.accept_errors.Add();
  if (listener_) listener_->OnError(error);
}

void IoWorker::MaybeResumeAccept() {
  if (listener_) listener_->MaybeResume(std::chrono::steady_clock::now());
}

void IoWorker::KickStalledWriters() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_stall_check_) return;
  next_stall_check_ = now + std::chrono::seconds(1);
  const auto timeout = service_.options().send_stall_timeout;
  for (size_t i = 0; i < sessions_.size(); ++i) {
    Session& s = *sessions_[i];
    if (s.write_in_flight_ && now - s.write_since_ > timeout) {
      SERVERCORE_LOG_WARNING(
          "session %llu: no output taken for %lld ms; disconnecting",
          static_cast<unsigned long long>(s.id()),
          static_cast<long long>(timeout.count()));
      s.Disconnect(DisconnectReason::kSlowReceiver);
    }
  }
}

void IoWorker::AttachSession(SessionRef session) {
  AssertInWorkerThread();
  Session& s = *session;
  s.attached_ = true;
  s.worker_index_ = sessions_.size();
  sessions_.push_back(session);
  if (stopping_) {
    auto expected = Session::State::kOpen;
    if (s.state_.compare_exchange_strong(expected, Session::State::kClosing)) {
      s.reason_.store(DisconnectReason::kServiceStopped);
    }
  }
  if (s.in_close_list_ ||
      s.state_.load(std::memory_order_acquire) != Session::State::kOpen) {
    // Disconnected (or the service stopped) before it reached its worker:
    // nothing was started on the socket, so it can be finalised at once.
    s.in_close_list_ = true;
    closing_.push_back(std::move(session));
    return;
  }
  backend_->Attach(s);
  s.OnConnected();
  // Output queued since OnCreated (a broadcast to the session's room, say)
  // waited for this.
  ScheduleFlush(std::move(session));
}

void IoWorker::BeginClose(SessionRef session) {
  AssertInWorkerThread();
  Session& s = *session;
  if (s.in_close_list_ || s.worker_ != this) return;
  s.in_close_list_ = true;
  // Closed before its kAdopt task ran: AttachSession sees the mark and
  // finalises it then (it is not in sessions_ yet).
  if (!s.attached_) return;
  const DisconnectReason reason = s.reason_.load(std::memory_order_acquire);
  if (!backend_down_ && !stopping_ &&
      (reason == DisconnectReason::kLocal ||
       reason == DisconnectReason::kProtocolError)) {
    // Write what was queued before the close (say, the replies to the
    // packets before a bad one), then shut down; FinalizeClosed waits.
    s.draining_ = true;
    s.drain_deadline_ = std::chrono::steady_clock::now() + kDrainTimeout;
    backend_->StopRecv(s);
    if (!s.write_in_flight_) s.WriteQueued();
    if (!s.write_in_flight_) s.draining_ = false;
  }
  if (!s.draining_ && !backend_down_) backend_->Detach(s);
  closing_.push_back(std::move(session));
}

void IoWorker::FinalizeClosed() {
  // Swapped out first: OnDisconnected hooks may close more sessions, which
  // land in closing_ for the next round.
  finalizing_.swap(closing_);
  const auto now = std::chrono::steady_clock::now();
  for (SessionRef& session : finalizing_) {
    if (session->draining_) {
      if (session->write_in_flight_ && now < session->drain_deadline_) {
        closing_.push_back(std::move(session));
        continue;
      }
      session->draining_ = false;  // drained, or out of time
      backend_->Detach(*session);
    }
    if (session->ops_in_flight_ == 0) {
      Finalize(*session);
    } else {
      closing_.push_back(std::move(session));
    }
  }
  finalizing_.clear();
}

void IoWorker::Finalize(Session& session) {
  session.state_.store(Session::State::kClosed, std::memory_order_release);
  if (session.fd_ >= 0) ::close(std::exchange(session.fd_, -1));
  {
    MutexLock lock(session.send_mu_);
    session.send_queue_.clear();
    session.flush_requested_ = true;  // no more flush requests
  }
  session.sending_.clear();
  session.sending_head_ = 0;
  session.sending_offset_ = 0;
  const DisconnectReason reason =
      session.reason_.load(std::memory_order_acquire);
  counters_.closed_by_reason[static_cast<size_t>(reason)].Add();
  session.OnDisconnected(reason);
  service_.OnSessionClosed();
  if (!session.attached_) return;

  // Swap-remove from sessions_ (last, since `session` may live only there).
  session.attached_ = false;
  const size_t index = session.worker_index_;
  SessionRef keep = std::move(sessions_[index]);
  if (index + 1 != sessions_.size()) {
    sessions_[index] = std::move(sessions_.back());
    sessions_[index]->worker_index_ = index;
  }
  sessions_.pop_back();
}

void IoWorker::StopAll() {
  stopping_ = true;
  if (listener_) listener_->Stop();
  for (size_t i = 0; i < sessions_.size(); ++i) {
    sessions_[i]->Disconnect(DisconnectReason::kServiceStopped);
  }
}

}  // namespace servercore::internal
