#include "io/io_worker.h"

#include <unistd.h>

#include <algorithm>
#include <future>
#include <optional>
#include <string_view>
#include <utility>

#include "global_job_queue.h"
#include "io/io_key.h"
#include "io/socket_state.h"
#include "log_limiter.h"
#include "memory_budget.h"
#include "memory_reclaimer.h"
#include "servercore/check.h"
#include "servercore/log.h"
#include "timers.h"

namespace servercore::internal {
namespace {

thread_local IoWorker* t_current_worker = nullptr;

// The longest Poll waits, so timers (accept back-off) are checked.
constexpr int kMaxPollMs = 100;
// How often lingering sessions ask the kernel whether their peer has
// acknowledged their last output (SocketState::Lingers): each asks with two
// system calls, so not every round.
constexpr auto kLingerAsk = std::chrono::milliseconds(20);
// A stopping worker waits at most this long for in-flight I/O to complete.
constexpr auto kStopDeadline = std::chrono::seconds(5);
// A stopping worker runs the global job queue at most this long.
constexpr auto kStopJobDrain = std::chrono::seconds(1);

}  // namespace

IoWorker* CurrentWorker() noexcept { return t_current_worker; }

namespace {

// A few sweeps per shortest timeout, so a session is closed within about a
// quarter of its timeout late; at least 10 ms apart, and once a second when
// no timeout is shorter (or none is set: a session whose peer's stream ended
// still gets SocketState::kOwedRepliesTime).
std::chrono::milliseconds SweepPeriod(const ServiceOptions& options) {
  std::chrono::milliseconds shortest = std::chrono::seconds(4);
  for (const auto timeout : {options.idle_timeout, options.packet_timeout,
                             options.send_stall_timeout}) {
    if (timeout.count() > 0) shortest = std::min(shortest, timeout);
  }
  return std::clamp(shortest / 4, std::chrono::milliseconds(10),
                    std::chrono::milliseconds(1000));
}

}  // namespace

IoWorker::IoWorker(WorkerHost& host, size_t index)
    : host_(host),
      budget_(host.budget()),
      index_(index),
      sweep_period_(SweepPeriod(host.options())) {}

IoWorker::~IoWorker() {
  SERVERCORE_CHECK(!thread_.joinable(), "IoWorker destroyed while running");
  backend_.reset();
  // Closes the listening socket, now the backend is gone. The thread has
  // ended: nothing else touches the listener.
  [this]() SERVERCORE_NO_THREAD_SAFETY_ANALYSIS { listener_.reset(); }();
}

std::error_code IoWorker::Start(Backend kind, std::string* why) {
  std::promise<std::error_code> started;
  std::future<std::error_code> result = started.get_future();
  thread_ = std::thread([this, kind, why, &started] {
    t_current_worker = this;
    std::error_code error;
    backend_ = CreateBackend(kind, *this, &error, why);
    started.set_value(error);
    if (!error) {
      AssertInWorkerThread();
      Run();
    }
    t_current_worker = nullptr;
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
  } else if (task.kind == Task::Kind::kAdopt ||
             task.kind == Task::Kind::kConnect) {
    // The loop has ended (a Connect raced with Stop): no worker will ever
    // attach this session, so close it here.
    AssertInWorkerThread();
    Finalize(*task.session);
  } else if (task.kind == Task::Kind::kListen) {
    ::close(task.fd);
  }
}

void IoWorker::RequestFlush(SessionRef session) {
  if (InWorkerThread()) {
    AssertInWorkerThread();
    ScheduleFlush(std::move(session));
  } else {
    Post(Task{.kind = Task::Kind::kFlush, .session = std::move(session)});
  }
}

void IoWorker::RequestResume(SessionRef session) {
  Post(Task{.kind = Task::Kind::kResume, .session = std::move(session)});
}

void IoWorker::RequestClose(SessionRef session) {
  if (InWorkerThread()) {
    AssertInWorkerThread();
    BeginClose(std::move(session));
  } else {
    Post(Task{.kind = Task::Kind::kClose, .session = std::move(session)});
  }
}

void IoWorker::Adopt(SessionRef session) {
  Post(Task{.kind = Task::Kind::kAdopt, .session = std::move(session)});
}

void IoWorker::AdoptConnected(SessionRef session) {
  Post(Task{.kind = Task::Kind::kConnect, .session = std::move(session)});
}

void IoWorker::ListenOn(int listen_fd) {
  Post(Task{.kind = Task::Kind::kListen, .session = nullptr, .fd = listen_fd});
}

void IoWorker::ScheduleFlush(SessionRef session) {
  AssertInWorkerThread();
  flush_list_.push_back(std::move(session));
}

void IoWorker::Run() {
  ReadClock();
  Register();
  std::chrono::steady_clock::time_point deadline{};
  for (;;) {
    backend_->Poll(PollTimeoutMs());  // reads the clock when its wait returns
    Round(now_);
    if (stopping_) {
      if (Stopped()) {
        DrainJobsForStop();
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
}

void IoWorker::Register() {
  AssertInWorkerThread();
  GlobalJobQueue::Instance().Register(*this);
  timer_slot_ = &TimerRegistry::Instance().Register(*this);
}

void IoWorker::Round(std::chrono::steady_clock::time_point timer_now) {
  AssertInWorkerThread();
  RunTasks();
  // Their jobs land in their queues, which may run right here.
  timer_slot_->FireDue(timer_now);
  // Before the flush, so what the jobs Send goes out this round.
  GlobalJobQueue::Instance().RunFor(JobQueue::TimeSlice());
  FlushScheduled();
  FinalizeClosed();
  // What this round's writes finished, the Poll's included, before the
  // budget is asked.
  releases_.Flush();
  if (listener_) {
    listener_->SetOverBudget(!budget_.AcceptAllowed());
    listener_->MaybeResume(now_);
    if (!parked_.empty()) [[unlikely]] {
      TakeParked();
    }
  }
  SweepSessions();
  releases_.Flush();  // the drains the sweep's closes wrote
}

bool IoWorker::Stopped() const {
  AssertInWorkerThread();
  return sessions_.empty() && closing_.empty() &&
         !backend_->HasOwnOpsInFlight();
}

// --- Run inline, by a test harness ------------------------------------------

void IoWorker::BeginInline(std::unique_ptr<IoBackend> backend) {
  SERVERCORE_CHECK(
      !thread_.joinable() && backend_ == nullptr && t_current_worker == nullptr,
      "IoWorker::BeginInline on a worker that runs, or on a "
      "thread that is one");
  backend_ = std::move(backend);
  t_current_worker = this;
  AssertInWorkerThread();
  ReadClock();
  Register();
}

void IoWorker::RunRound(std::chrono::nanoseconds timer_skew) {
  AssertInWorkerThread();
  ReadClock();
  Round(now_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                   timer_skew));
}

bool IoWorker::Quiet() {
  AssertInWorkerThread();
  MutexLock lock(inbox_mu_);
  return inbox_.empty() && flush_list_.empty() && closing_.empty() &&
         GlobalJobQueue::Instance().empty();
}

void IoWorker::EndInline(std::chrono::nanoseconds timer_skew) {
  AssertInWorkerThread();
  StopAll();
  // As Run's end, without its deadline: an inline backend has nothing in
  // flight that could keep a session from finishing.
  for (int round = 0; !Stopped(); ++round) {
    SERVERCORE_CHECK(round < 100'000, "worker %zu: an inline stop never ends",
                     index_);
    RunRound(timer_skew);
  }
  DrainJobsForStop();
  DrainAfterExit();
  t_current_worker = nullptr;
}

void IoWorker::DrainJobsForStop() {
  AssertInWorkerThread();
  // Jobs handed off before Stop run, and what they push; a queue that stays
  // busy (say, a job that pushes itself forever) is left for later workers.
  GlobalJobQueue& jobs = GlobalJobQueue::Instance();
  const auto until = std::chrono::steady_clock::now() + kStopJobDrain;
  while (!jobs.empty()) {
    if (std::chrono::steady_clock::now() >= until) {
      SERVERCORE_LOG_WARNING(
          "worker %zu: the global job queue still had %zu queues after %llds "
          "of stopping; leaving them",
          index_, jobs.size(), static_cast<long long>(kStopJobDrain.count()));
      return;
    }
    jobs.RunFor(JobQueue::TimeSlice());
  }
  // Sessions closed by those jobs are gone already: Send and Disconnect on a
  // closed session do nothing.
}

void IoWorker::DrainAfterExit() {
  AssertInWorkerThread();
  // No hand-off wakes us once the backend is shut down, and no new timer.
  // Our timers end here (jobs they pushed stay in their queues).
  GlobalJobQueue::Instance().Unregister(*this);
  TimerRegistry::Instance().Unregister(*timer_slot_);
  timer_slot_ = nullptr;
  // Whatever is left (only after the deadline) goes with the backend's
  // operations. The backend object itself lives until the destructor: other
  // threads may still Post (and so Wake) after this loop has ended.
  backend_->Shutdown();
  backend_down_ = true;
  {
    MutexLock lock(inbox_mu_);
    // Before exited_: a Post that finds the loop gone finalises on its own
    // thread, which AssertInWorkerThread must then allow.
    loop_ended_.store(true, std::memory_order_release);
    exited_ = true;
    tasks_.swap(inbox_);
  }
  for (Task& task : tasks_) {
    if (task.kind == Task::Kind::kAdopt || task.kind == Task::Kind::kConnect) {
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
  releases_.Flush();
}

int IoWorker::PollTimeoutMs() const {
  // Work queued by our own thread this round must not wait for an event, nor
  // queues awaiting an executor (a hand-off from another thread wakes us,
  // one from ours is seen here).
  if (!flush_list_.empty() || !GlobalJobQueue::Instance().empty()) return 0;
  int timeout = stopping_ ? 10 : kMaxPollMs;
  // Sessions closing may linger: they are asked every kLingerAsk.
  if (!closing_.empty()) {
    timeout = std::min(timeout, static_cast<int>(kLingerAsk.count()));
  }
  const auto resume_at = listener_ ? listener_->ResumeAt() : std::nullopt;
  const auto due = timer_slot_ ? timer_slot_->NextDue() : std::nullopt;
  if (!resume_at && !due) return timeout;  // no clock read
  const auto now = std::chrono::steady_clock::now();
  if (resume_at) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(*resume_at - now);
    timeout = static_cast<int>(std::clamp<int64_t>(left.count(), 0, timeout));
  }
  if (due) {
    // Rounded up: waking before the due time would only poll again.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*due - now);
    timeout = static_cast<int>(std::clamp<int64_t>(left.count(), 0, timeout));
  }
  return timeout;
}

void IoWorker::RunTasks() {
  AssertInWorkerThread();
  {
    MutexLock lock(inbox_mu_);
    tasks_.swap(inbox_);
  }
  for (Task& task : tasks_) {
    switch (task.kind) {
      case Task::Kind::kFlush:
        ScheduleFlush(std::move(task.session));
        break;
      case Task::Kind::kResume:
        task.session->socket(IoKey{}).ResumeReading();
        break;
      case Task::Kind::kClose:
        BeginClose(std::move(task.session));
        break;
      case Task::Kind::kConnect:
        counters_.connected.Add();
        AttachSession(std::move(task.session));
        break;
      case Task::Kind::kAdopt:
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
  AssertInWorkerThread();
  // A session may be listed more than once; WriteQueued is cheap when there
  // is nothing new or a write is already in flight.
  for (size_t i = 0; i < flush_list_.size(); ++i) {
    Session& session = *flush_list_[i];
    SocketState& socket = session.socket(IoKey{});
    // Not attached yet (its kAdopt task is still on the way): the flush
    // request stands, and AttachSession flushes.
    if (socket.attached && session.IsConnected()) socket.WriteQueued();
  }
  flush_list_.clear();
}

void IoWorker::OnAccepted(int fd) {
  AssertInWorkerThread();
  counters_.accepted.Add();
  if (listener_) listener_->OnAccepted();
  if (stopping_) {
    ::close(fd);
    return;
  }
  if (!parked_.empty() || !MayAccept()) [[unlikely]] {
    parked_.push_back(fd);
    return;
  }
  TakeConnection(fd);
}

void IoWorker::TakeParked() {
  AssertInWorkerThread();
  size_t taken = 0;
  while (taken < parked_.size() && MayAccept()) {
    TakeConnection(parked_[taken++]);
  }
  parked_.erase(parked_.begin(),
                parked_.begin() + static_cast<std::ptrdiff_t>(taken));
}

void IoWorker::TakeConnection(int fd) {
  AssertInWorkerThread();
  IoWorker& owner = host_.NextWorker();
  SessionRef session = host_.CreateSession(fd, owner);
  if (session == nullptr) return;  // refused: max_sessions
  if (&owner == this) {
    AttachSession(std::move(session));
  } else {
    owner.Adopt(std::move(session));
  }
}

bool IoWorker::MayAccept() {
  AssertInWorkerThread();
  if (!listener_) return false;
  listener_->SetOverBudget(!budget_.AcceptAllowed());
  return listener_->accepting();
}

void IoWorker::OnAcceptError(int error) {
  AssertInWorkerThread();
  counters_.accept_errors.Add();
  if (listener_) listener_->OnError(error);
}

void IoWorker::SweepSessions() {
  AssertInWorkerThread();
  if (now_ < next_sweep_) return;
  next_sweep_ = now_ + sweep_period_;
  // Process-wide chores, about once a second whichever worker gets there.
  FlushSuppressedLogs(now_);
  MemoryReclaimer::Instance().MaybeReclaim(now_);
  if (now_ >= next_idle_release_) {
    next_idle_release_ = now_ + std::chrono::seconds(1);
    backend_->ReleaseIdleMemory();
  }
  const ServiceOptions& options = host_.options();
  for (const SessionRef& session : sessions_) {
    SocketState& socket = session->socket(IoKey{});
    socket.ReleaseIdleMemory();
    // One that is closing (draining, lingering) was disconnected already:
    // its timeout would only be logged again.
    if (!session->IsConnected()) continue;
    // Open only to send what it owes since its peer's stream ended: no
    // receive is armed to notice a reset (io_uring's polls cannot wait for
    // one on a half-closed socket), so ask.
    if (socket.read_ended && socket.HungUp(/*reported=*/false)) continue;
    if (const std::optional<DisconnectReason> why =
            socket.Overdue(now_, options)) {
      // The peer's own close, finished for it: not the server's doing.
      if (*why == DisconnectReason::kPeerClosed) {
        session->Disconnect(*why);
        continue;
      }
      const std::string_view what =
          *why == DisconnectReason::kSlowReceiver
              ? "no output taken within the send stall timeout"
              : ToString(*why);
      LogLimited(LogKind::kDisconnect, "session %llu: %.*s; disconnecting",
                 static_cast<unsigned long long>(session->id()),
                 static_cast<int>(what.size()), what.data());
      session->Disconnect(*why);
    }
  }
}

void IoWorker::AttachSession(SessionRef session) {
  AssertInWorkerThread();
  SocketState& socket = session->socket(IoKey{});
  socket.attached = true;
  socket.worker_index = sessions_.size();
  socket.StartLiveness(now_);
  sessions_.push_back(session);
  if (!session->Attach(IoKey{}, stopping_)) {
    // Disconnected (or the service stopped) before it reached its worker:
    // nothing was started on the socket, so it can be finalised at once.
    socket.in_close_list = true;
    closing_.push_back(std::move(session));
    return;
  }
  // Output queued since OnCreated (a broadcast to the session's room, say)
  // waited for this.
  ScheduleFlush(std::move(session));
}

void IoWorker::BeginClose(SessionRef session) {
  AssertInWorkerThread();
  SocketState& socket = session->socket(IoKey{});
  if (socket.in_close_list || &socket.worker() != this) return;
  socket.in_close_list = true;
  // Closed before its kAdopt task ran: AttachSession sees the mark and
  // finalises it then (it is not in sessions_ yet).
  if (!socket.attached) return;
  if (!backend_down_) session->StartClosing(IoKey{}, stopping_);
  closing_.push_back(std::move(session));
}

void IoWorker::FinalizeClosed() {
  AssertInWorkerThread();
  // Swapped out first: OnDisconnected hooks may close more sessions, which
  // land in closing_ for the next round.
  finalizing_.swap(closing_);
  const bool ask = now_ >= next_linger_ask_;
  if (ask) next_linger_ask_ = now_ + kLingerAsk;
  for (SessionRef& session : finalizing_) {
    SocketState& socket = session->socket(IoKey{});
    if (socket.draining()) {
      if (socket.KeepDraining(now_, ask)) {
        closing_.push_back(std::move(session));
        continue;
      }
      backend_->Detach(socket);  // drained, or out of time
    }
    if (socket.ops_in_flight == 0) {
      Finalize(*session);
    } else {
      closing_.push_back(std::move(session));
    }
  }
  finalizing_.clear();
}

void IoWorker::Finalize(Session& session) {
  AssertInWorkerThread();
  session.Finalize(IoKey{});
  host_.OnSessionClosed();
  MemoryReclaimer::Instance().NoteSessionClosed();
  SocketState& socket = session.socket(IoKey{});
  if (!socket.attached) return;

  // Swap-remove from sessions_ (last, since `session` may live only there).
  socket.attached = false;
  const size_t index = socket.worker_index;
  SessionRef keep = std::move(sessions_[index]);
  if (index + 1 != sessions_.size()) {
    sessions_[index] = std::move(sessions_.back());
    sessions_[index]->socket(IoKey{}).worker_index = index;
  }
  sessions_.pop_back();
}

void IoWorker::StopAll() {
  AssertInWorkerThread();
  stopping_ = true;
  if (listener_) listener_->Stop();
  for (int fd : parked_) ::close(fd);
  parked_.clear();
  for (const SessionRef& session : sessions_) {
    session->Disconnect(DisconnectReason::kServiceStopped);
  }
}

}  // namespace servercore::internal
