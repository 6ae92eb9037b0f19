// JobQueues with a running Service: the workers drain the global queue (a
// hand-off from an application thread wakes one), a busy queue starves
// neither I/O nor other queues, rooms broadcast through jobs, and Stop runs
// what was handed off before it, in bounded time even with a queue that
// never empties. On both backends.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "global_job_queue.h"
#include "servercore/job_queue.h"
#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

class JobQueueServiceTest : public BackendTest {};

// Runs the global queue on this thread until it is empty: cleans up after a
// test whose queues outlived the workers.
void DrainGlobalQueue() {
  internal::GlobalJobQueue& global = internal::GlobalJobQueue::Instance();
  while (!global.empty()) global.RunFor(std::chrono::seconds(1));
}

// Pushes `job` to `target` from inside a job of a fresh queue, so `target`
// (if idle) is handed to the global queue instead of running here.
void HandOff(const std::shared_ptr<JobQueue>& target,
             std::function<void()> job) {
  auto outer = std::make_shared<JobQueue>();
  outer->DoAsync([&target, &job] { target->DoAsync(std::move(job)); });
}

// A job that pushes itself to its queue until told to stop.
class Spinner {
 public:
  Spinner() : queue_(std::make_shared<JobQueue>()) {}
  void Start() {
    queue_->DoAsync([this] { Spin(); });
  }
  void Stop() { stop_.store(true); }
  uint64_t spins() const { return spins_.load(std::memory_order_relaxed); }
  const std::shared_ptr<JobQueue>& queue() const { return queue_; }

 private:
  void Spin() {
    spins_.fetch_add(1, std::memory_order_relaxed);
    if (!stop_.load()) queue_->DoAsync([this] { Spin(); });
  }
  std::shared_ptr<JobQueue> queue_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> spins_{0};
};

TEST_P(JobQueueServiceTest, NestedPushRunsLaterOnAWokenWorker) {
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<EchoSession>(); }, Options());
  // Each hand-off must wake a worker blocked in Poll (which would otherwise
  // sleep up to 100 ms): count the slow ones. A missed wake-up waits out the
  // rest of the poll, about 95 ms after the 5 ms below; a loaded machine
  // makes a hand-off that slow only now and then. So only 90 ms or more
  // counts, and more than a quarter of the rounds that slow means wake-ups
  // are missed.
  constexpr int kRounds = 20;
  int slow = 0;
  for (int i = 0; i < kRounds; ++i) {
    auto a = std::make_shared<JobQueue>();
    auto b = std::make_shared<JobQueue>();
    std::atomic<bool> inside_a{false};
    std::atomic<bool> b_ran{false};
    std::atomic<bool> b_ran_inside_a{false};
    std::thread::id b_thread;
    std::this_thread::sleep_for(milliseconds(5));  // let the workers sleep
    const auto start = steady_clock::now();
    a->DoAsync([&] {
      inside_a.store(true);
      b->DoAsync([&] {
        b_thread = std::this_thread::get_id();
        b_ran_inside_a.store(inside_a.load());
        b_ran.store(true);
      });
      inside_a.store(false);
    });
    ASSERT_TRUE(WaitFor([&] { return b_ran.load(); }));
    if (steady_clock::now() - start >= milliseconds(90)) ++slow;
    EXPECT_NE(b_thread, std::this_thread::get_id()) << "B ran on a worker";
  }
  EXPECT_LE(slow, kRounds / 4) << "hand-offs waited for the poll timeout";
  server->Stop();
}

TEST_P(JobQueueServiceTest, ABusyQueueStarvesNeitherIoNorOtherQueues) {
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<EchoSession>(); }, Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));

  Spinner spinner;
  ScopeExit cleanup([&] {
    spinner.Stop();
    DrainGlobalQueue();
  });
  const auto start = steady_clock::now();
  spinner.Start();  // runs here for one slice, then on the workers
  // One slice is short; a loaded machine may stretch it, but not to 2 s.
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(2));
  ASSERT_TRUE(WaitFor([&] { return spinner.spins() > 1000; }));

  // I/O goes on while it spins.
  for (uint32_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(client.SendPacket(7, std::as_bytes(std::span(&i, 1))));
    const auto echo = client.ReadPacket(std::chrono::seconds(5));
    ASSERT_TRUE(echo.has_value()) << "no echo while a queue spins";
    EXPECT_EQ(echo->id, 7);
  }
  // So do other queues handed to the workers.
  for (int i = 0; i < 20; ++i) {
    auto other = std::make_shared<JobQueue>();
    std::atomic<bool> ran{false};
    HandOff(other, [&] { ran.store(true); });
    ASSERT_TRUE(WaitFor([&] { return ran.load(); }, std::chrono::seconds(5)));
  }
  const uint64_t spins = spinner.spins();
  ASSERT_TRUE(WaitFor([&] { return spinner.spins() > spins; }));
  spinner.Stop();
  ASSERT_TRUE(WaitFor([&] { return spinner.queue()->PendingJobs() == 0; }));
  server->Stop();
}

// The original design's room: sessions enter and chat through jobs, and the
// room needs no lock.
class Room : public JobQueue {
 public:
  void Enter(SessionRef session) {
    members_.push_back(std::move(session));
    entered_.fetch_add(1);
  }
  size_t entered() const { return entered_.load(); }
  void Leave(Session* session) {
    std::erase_if(members_, [session](const SessionRef& s) {
      return s.get() == session;
    });
  }
  void Broadcast(SendBufferRef buffer) {
    for (const SessionRef& member : members_) member->Send(buffer);
  }

 private:
  std::vector<SessionRef> members_;
  std::atomic<size_t> entered_{0};
};

class RoomSession : public PacketSession {
 public:
  explicit RoomSession(std::shared_ptr<Room> room) : room_(std::move(room)) {}

 protected:
  void OnConnected() override {
    room_->DoAsync(&Room::Enter, shared_from_this());
  }
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    room_->DoAsync(&Room::Broadcast, MakePacket(id, payload));
  }
  void OnDisconnected(DisconnectReason) override {
    room_->DoAsync(&Room::Leave, static_cast<Session*>(this));
  }

 private:
  std::shared_ptr<Room> room_;
};

TEST_P(JobQueueServiceTest, RoomBroadcastsThroughJobs) {
  auto room = std::make_shared<Room>();
  SERVERCORE_START_SERVER(
      server, [room] { return std::make_shared<RoomSession>(room); },
      Options());
  constexpr size_t kClients = 8;
  std::vector<TestClient> clients(kClients);
  for (TestClient& client : clients)
    ASSERT_TRUE(client.Connect(server->port()));
  // Every member entered before anybody speaks. SessionCount is not enough:
  // it counts a session when it is accepted, before its worker runs
  // OnConnected, which pushes Enter.
  ASSERT_TRUE(WaitFor([&] { return room->entered() == kClients; }));
  for (size_t round = 0; round < 50; ++round) {
    const auto speaker = static_cast<uint32_t>(round % kClients);
    ASSERT_TRUE(
        clients[speaker].SendPacket(9, std::as_bytes(std::span(&speaker, 1))));
    for (size_t i = 0; i < kClients; ++i) {
      const auto packet = clients[i].ReadPacket(std::chrono::seconds(5));
      ASSERT_TRUE(packet.has_value()) << "client " << i << " round " << round;
      uint32_t from;
      ASSERT_EQ(packet->payload.size(), sizeof(from));
      std::memcpy(&from, packet->payload.data(), sizeof(from));
      EXPECT_EQ(from, speaker);
    }
  }
  server->Stop();
  DrainGlobalQueue();
  EXPECT_EQ(room->PendingJobs(), 0u);
}

TEST_P(JobQueueServiceTest, StopRunsJobsHandedOffBeforeIt) {
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<EchoSession>(); }, Options());
  constexpr int kQueues = 20;
  constexpr int kJobsPerQueue = 50;
  std::atomic<int> ran{0};
  std::atomic<int> follow_ups{0};
  std::vector<std::shared_ptr<JobQueue>> queues;
  std::vector<std::shared_ptr<JobQueue>> tails;
  for (int q = 0; q < kQueues; ++q) {
    queues.push_back(std::make_shared<JobQueue>());
    tails.push_back(std::make_shared<JobQueue>());
  }
  auto outer = std::make_shared<JobQueue>();
  outer->DoAsync([&] {
    for (int q = 0; q < kQueues; ++q) {
      for (int j = 0; j < kJobsPerQueue; ++j) {
        queues[static_cast<size_t>(q)]->DoAsync([&, q, j] {
          // Some work, but no sleep: a sleeping job pays a wake-up, and a
          // thousand of them on a loaded machine could outlast the stop's
          // one-second drain.
          const auto until =
              std::chrono::steady_clock::now() + std::chrono::microseconds(20);
          while (std::chrono::steady_clock::now() < until) {
          }
          ran.fetch_add(1);
          // The last job pushes more work, to an idle queue: handed off too.
          if (j == kJobsPerQueue - 1) {
            tails[static_cast<size_t>(q)]->DoAsync(
                [&] { follow_ups.fetch_add(1); });
          }
        });
      }
    }
  });
  server->Stop();
  EXPECT_EQ(ran.load(), kQueues * kJobsPerQueue);
  EXPECT_EQ(follow_ups.load(), kQueues);
  EXPECT_TRUE(internal::GlobalJobQueue::Instance().empty());
}

TEST_P(JobQueueServiceTest, StopWithAQueueThatNeverEmptiesEndsInBoundedTime) {
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<EchoSession>(); }, Options());
  Spinner spinner;
  ScopeExit cleanup([&] {
    spinner.Stop();
    DrainGlobalQueue();
  });
  spinner.Start();
  ASSERT_TRUE(WaitFor([&] { return spinner.spins() > 100; }));
  const auto start = steady_clock::now();
  server->Stop();
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5));
  // Left in the global queue, for the next workers (or the cleanup above).
  EXPECT_GE(spinner.queue()->PendingJobs(), 1u);
  spinner.Stop();
  DrainGlobalQueue();
  EXPECT_EQ(spinner.queue()->PendingJobs(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, JobQueueServiceTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
