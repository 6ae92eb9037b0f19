#include "io/listener.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log_limiter.h"

namespace servercore::internal {
namespace {

bool IsResourceError(int error) noexcept {
  return error == EMFILE || error == ENFILE || error == ENOBUFS ||
         error == ENOMEM;
}

}  // namespace

Listener::~Listener() { ::close(fd_); }

void Listener::Start() {
  if (state_ != State::kIdle) return;
  backend_.Listen(fd_);
  state_ = State::kAccepting;
}

void Listener::Stop() {
  if (state_ == State::kAccepting) backend_.PauseAccept();
  state_ = State::kStopped;
}

void Listener::OnError(int error) {
  if (state_ == State::kStopped) return;
  // Anything else (a connection reset before it was taken, say) concerns
  // that one connection: the accept stays armed. One line each, as the
  // limiter allows.
  if (!IsResourceError(error)) {
    LogLimited(LogKind::kAcceptError,
               "worker %zu: accept: %s (that connection only)", worker_index_,
               std::strerror(error));
    return;
  }
  const Clock::time_point now = Clock::now();
  episode_error_ = error;
  if (episode_failures_++ == 0) {
    episode_since_ = now;
    episode_reminder_ = now + kEpisodeReminder;
    LogLimited(LogKind::kAcceptError,
               "worker %zu: accept: %s; pausing accepts, retrying every "
               "%lld ms (one line when accepting again)",
               worker_index_, std::strerror(error),
               static_cast<long long>(kBackoff.count()));
  } else if (now >= episode_reminder_) {
    episode_reminder_ = now + kEpisodeReminder;
    LogLimited(
        LogKind::kAcceptError,
        "worker %zu: accept: still %s after %lld s; %llu accepts "
        "failed so far",
        worker_index_, std::strerror(error),
        static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(
                                   now - episode_since_)
                                   .count()),
        static_cast<unsigned long long>(episode_failures_));
  }
  if (state_ == State::kAccepting) {
    backend_.PauseAccept();
    state_ = State::kBackingOff;
  }
  resume_at_ = now + kBackoff;
}

void Listener::EndEpisode() {
  const auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(
      Clock::now() - episode_since_);
  LogLimited(LogKind::kAcceptError,
             "worker %zu: accepting again after %.1f s of accept failures "
             "(%s); %llu accepts failed",
             worker_index_, static_cast<double>(lasted.count()) / 1000.0,
             std::strerror(episode_error_),
             static_cast<unsigned long long>(episode_failures_));
  episode_failures_ = 0;
}

void Listener::SetOverBudget(bool over) {
  if (over) {
    if (state_ == State::kAccepting) backend_.PauseAccept();
    if (state_ == State::kAccepting || state_ == State::kBackingOff) {
      state_ = State::kOverBudget;
    }
  } else if (state_ == State::kOverBudget) {
    backend_.ResumeAccept();
    state_ = State::kAccepting;
  }
}

void Listener::MaybeResume(Clock::time_point now) {
  if (state_ != State::kBackingOff || now < resume_at_) return;
  backend_.ResumeAccept();
  state_ = State::kAccepting;
}

std::optional<Listener::Clock::time_point> Listener::ResumeAt() const noexcept {
  if (state_ != State::kBackingOff) return std::nullopt;
  return resume_at_;
}

}  // namespace servercore::internal
