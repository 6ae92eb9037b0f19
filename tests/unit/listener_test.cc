// Listener: the accept policy, against a fake backend that records what it
// is asked to do. The real accept path (EMFILE on a live socket, both
// backends) is tests/integration/accept_limit_test.cc.
#include "io/listener.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "io/worker_thread.h"

namespace servercore::internal {
namespace {

class FakeBackend final : public IoBackend {
 public:
  void Attach(SocketState&) override {}
  int64_t Write(SocketState&) override { return 0; }
  void StopRecv(SocketState&) override {}
  void ResumeRecv(SocketState&) override {}
  void ReadEnded(SocketState&) override {}
  void Unwatch(SocketState&) override {}
  void Detach(SocketState&) override {}
  void Listen(int fd) override {
    ++listens;
    listened_fd = fd;
  }
  void PauseAccept() override { ++pauses; }
  void ResumeAccept() override { ++resumes; }
  bool HasOwnOpsInFlight() const noexcept override { return false; }
  void Poll(int) override {}
  void Wake() noexcept override {}
  void Shutdown() noexcept override {}

  int listens = 0;
  int listened_fd = -1;
  int pauses = 0;
  int resumes = 0;
};

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// A descriptor for the listener to own (any will do: the fake never uses it).
int NewFd() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

using Clock = Listener::Clock;

TEST(ListenerTest, StartListensOnceOnItsSocket) {
  ActAsWorker as_worker;  // the test thread is the worker
  FakeBackend backend;
  const int fd = NewFd();
  Listener listener(backend, fd, 0);
  EXPECT_EQ(backend.listens, 0) << "nothing before Start";
  listener.Start();
  listener.Start();
  EXPECT_EQ(backend.listens, 1);
  EXPECT_EQ(backend.listened_fd, fd);
  EXPECT_FALSE(listener.ResumeAt().has_value());
}

TEST(ListenerTest, ClosesItsSocketWhenDestroyed) {
  ActAsWorker as_worker;  // the test thread is the worker
  FakeBackend backend;
  const int fd = NewFd();
  {
    Listener listener(backend, fd, 0);
    listener.Start();
    EXPECT_TRUE(IsOpen(fd));
  }
  EXPECT_FALSE(IsOpen(fd));
}

TEST(ListenerTest, EachResourceErrorPausesAcceptingForTheBackoff) {
  ActAsWorker as_worker;  // the test thread is the worker
  for (const int error : {EMFILE, ENFILE, ENOBUFS, ENOMEM}) {
    SCOPED_TRACE(error);
    FakeBackend backend;
    Listener listener(backend, NewFd(), 0);
    listener.Start();
    const auto before = Clock::now();
    listener.OnError(error);
    EXPECT_EQ(backend.pauses, 1);
    ASSERT_TRUE(listener.ResumeAt().has_value());
    EXPECT_GE(*listener.ResumeAt(), before + Listener::kBackoff);
    EXPECT_LE(*listener.ResumeAt(), Clock::now() + Listener::kBackoff);
  }
}

TEST(ListenerTest, OtherErrorsKeepAccepting) {
  ActAsWorker as_worker;  // the test thread is the worker
  FakeBackend backend;
  Listener listener(backend, NewFd(), 0);
  listener.Start();
  // A connection reset or aborted before it was taken concerns only it.
  // Each is still an accept failure: one line each (well within the log's
  // limit of 20 a second).
  ::testing::internal::CaptureStderr();
  for (const int error : {ECONNABORTED, EPROTO, EPERM, EINTR}) {
    listener.OnError(error);
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(backend.pauses, 0);
  EXPECT_FALSE(listener.ResumeAt().has_value());
  for (const int error : {ECONNABORTED, EPROTO, EPERM, EINTR}) {
    EXPECT_NE(log.find(std::string("accept: ") + std::strerror(error)),
              std::string::npos)
        << log;
  }
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 4) << log;
}

TEST(ListenerTest, ErrorsWhilePausedExtendTheBackoffWithoutPausingTwice) {
  ActAsWorker as_worker;  // the test thread is the worker
  FakeBackend backend;
  Listener listener(backend, NewFd(), 0);
  listener.Start();
  listener.OnError(EMFILE);
  const auto first = *listener.ResumeAt();
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  // An accept the backend had in flight fails too.
  listener.OnError(EMFILE);
  EXPECT_EQ(backend.pauses, 1);
  EXPECT_GT(*listener.ResumeAt(), first);
}

TEST(ListenerTest, ResumesOnlyOnceTheBackoffHasPassed) {
  ActAsWorker as_worker;  // the test thread is the worker
  FakeBackend backend;
  Listener listener(backend, NewFd(), 0);
  listener.Start();
  listener.OnError(ENFILE);
  const auto resume_at = *listener.ResumeAt();
  listener.MaybeResume(resume_at - std::chrono::milliseconds(1));
  EXPECT_EQ(backend.resumes, 0);
  listener.MaybeResume(resume_at);
  EXPECT_EQ(backend.resumes, 1);
  EXPECT_FALSE(listener.ResumeAt().has_value());
  listener.MaybeResume(resume_at + std::chrono::seconds(1));
  EXPECT_EQ(backend.resumes, 1) << "resumed while already accepting";
  // And it can back off again.
  listener.OnError(EMFILE);
  EXPECT_EQ(backend.pauses, 2);
}

TEST(ListenerTest, StopPausesOnceAndIsFinal) {
  ActAsWorker as_worker;  // the test thread is the worker
  FakeBackend backend;
  Listener listener(backend, NewFd(), 0);
  listener.Start();
  listener.Stop();
  EXPECT_EQ(backend.pauses, 1);
  listener.Stop();
  listener.OnError(EMFILE);
  listener.MaybeResume(Clock::now() + std::chrono::hours(1));
  listener.Start();
  EXPECT_EQ(backend.pauses, 1);
  EXPECT_EQ(backend.resumes, 0);
  EXPECT_EQ(backend.listens, 1);
  EXPECT_FALSE(listener.ResumeAt().has_value());
}

TEST(ListenerTest, StopWhileBackingOffNeverResumes) {
  ActAsWorker as_worker;  // the test thread is the worker
  FakeBackend backend;
  Listener listener(backend, NewFd(), 0);
  listener.Start();
  listener.OnError(EMFILE);
  listener.Stop();
  EXPECT_EQ(backend.pauses, 1) << "already paused";
  listener.MaybeResume(Clock::now() + std::chrono::hours(1));
  EXPECT_EQ(backend.resumes, 0);
}

TEST(ListenerTest, StopBeforeStartNeverListens) {
  ActAsWorker as_worker;  // the test thread is the worker
  FakeBackend backend;
  Listener listener(backend, NewFd(), 0);
  listener.Stop();
  listener.Start();
  EXPECT_EQ(backend.listens, 0);
  EXPECT_EQ(backend.pauses, 0) << "nothing was armed to pause";
}

}  // namespace
}  // namespace servercore::internal
