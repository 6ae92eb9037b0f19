// JobQueue without a Service: order, mutual exclusion, method jobs keeping
// their object alive, no nesting, and the time slice. No worker drains the
// global queue here, so the tests drain it themselves.
#include "servercore/job_queue.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "global_job_queue.h"

namespace servercore {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Runs the global queue until it is empty (a worker's job, in a service).
void DrainGlobalQueue() {
  internal::GlobalJobQueue& global = internal::GlobalJobQueue::Instance();
  while (!global.empty()) global.RunFor(std::chrono::seconds(1));
}

// Sets the time slice for one test.
class ScopedTimeSlice {
 public:
  explicit ScopedTimeSlice(microseconds slice) : saved_(JobQueue::TimeSlice()) {
    JobQueue::SetTimeSlice(slice);
  }
  ~ScopedTimeSlice() { JobQueue::SetTimeSlice(saved_); }
  ScopedTimeSlice(const ScopedTimeSlice&) = delete;
  ScopedTimeSlice& operator=(const ScopedTimeSlice&) = delete;

 private:
  const microseconds saved_;
};

// A slice far longer than any test, so a loaded machine's preemption does
// not hand a queue over where a test expects it to run on; the slice tests
// set their own.
class JobQueueTest : public ::testing::Test {
 private:
  ScopedTimeSlice slice_{std::chrono::seconds(10)};
};

TEST_F(JobQueueTest, IdleQueueRunsOnThePushingThread) {
  auto queue = std::make_shared<JobQueue>();
  std::thread::id ran_on;
  queue->DoAsync([&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(queue->PendingJobs(), 0u);
}

TEST_F(JobQueueTest, AJobPushingToItsOwnQueueRunsItAfterwards) {
  auto queue = std::make_shared<JobQueue>();
  std::vector<int> order;
  queue->DoAsync([&] {
    order.push_back(1);
    queue->DoAsync([&] { order.push_back(3); });
    order.push_back(2);
  });
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

// 4 threads push concurrently; every job checks that it is alone in the
// queue and that its thread's jobs come in sequence. A short slice makes the
// executors hand the queue over to the global queue too, drained by a fifth
// thread as a worker would.
TEST_F(JobQueueTest, KeepsPushOrderPerThreadAndRunsOneJobAtATime) {
  ScopedTimeSlice slice(microseconds(200));
  constexpr size_t kThreads = 4;
  constexpr uint32_t kJobsPerThread = 50'000;
  auto queue = std::make_shared<JobQueue>();
  std::atomic<bool> inside{false};
  std::array<uint32_t, kThreads> next{};  // touched only inside jobs
  std::atomic<uint64_t> ran{0};
  std::atomic<int> out_of_order{0};
  std::atomic<int> overlaps{0};

  std::atomic<bool> pushing{true};
  std::thread drainer([&] {
    while (pushing.load()) {
      internal::GlobalJobQueue::Instance().RunFor(milliseconds(1));
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint32_t seq = 0; seq < kJobsPerThread; ++seq) {
        queue->DoAsync([&, t, seq] {
          if (inside.exchange(true)) overlaps.fetch_add(1);
          if (next[t] != seq) out_of_order.fetch_add(1);
          next[t] = seq + 1;
          ran.fetch_add(1, std::memory_order_relaxed);
          inside.store(false);
        });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  pushing.store(false);
  drainer.join();
  DrainGlobalQueue();

  EXPECT_EQ(ran.load(), uint64_t{kThreads} * kJobsPerThread);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(out_of_order.load(), 0);
  EXPECT_EQ(queue->PendingJobs(), 0u);
}

class Room : public JobQueue {
 public:
  explicit Room(std::atomic<bool>* destroyed) : destroyed_(destroyed) {}
  ~Room() override { destroyed_->store(true); }

  void Add(int n, std::unique_ptr<int> extra) { total += n + *extra; }
  void Note() const noexcept { ++notes; }

  int total = 0;
  mutable int notes = 0;

 private:
  std::atomic<bool>* destroyed_;
};

TEST_F(JobQueueTest, MethodJobsKeepTheirObjectAlive) {
  std::atomic<bool> destroyed{false};
  auto room = std::make_shared<Room>(&destroyed);
  room->DoAsync(&Room::Add, 1, std::make_unique<int>(1));  // runs now
  EXPECT_EQ(room->total, 2);

  // Pushed from inside another queue's job, the room's job waits in the
  // global queue, and the room's last outside owner goes away meanwhile.
  std::weak_ptr<Room> weak = room;
  auto other = std::make_shared<JobQueue>();
  other->DoAsync([&] {
    room->DoAsync(&Room::Add, 40, std::make_unique<int>(0));
    room->DoAsync(&Room::Note);
    room.reset();
  });
  EXPECT_FALSE(destroyed.load()) << "the pending jobs hold the room";
  ASSERT_FALSE(weak.expired());
  const auto alive = weak.lock();
  EXPECT_EQ(alive->total, 2);
  EXPECT_EQ(alive->PendingJobs(), 2u);

  DrainGlobalQueue();
  EXPECT_EQ(alive->total, 42);
  EXPECT_EQ(alive->notes, 1);
  EXPECT_FALSE(destroyed.load());
}

TEST_F(JobQueueTest, MethodJobDropsTheLastReferenceWhenItHasRun) {
  std::atomic<bool> destroyed{false};
  auto room = std::make_shared<Room>(&destroyed);
  std::weak_ptr<Room> weak = room;
  auto other = std::make_shared<JobQueue>();
  other->DoAsync([&] {
    room->DoAsync(&Room::Note);
    room.reset();
  });
  EXPECT_FALSE(weak.expired());
  DrainGlobalQueue();
  EXPECT_TRUE(destroyed.load());
}

// A job of queue A that pushes to idle queue B does not run B inside A: B
// goes to the global queue (and waits there, with no worker registered).
TEST_F(JobQueueTest, NoNestingAnIdleQueuePushedFromAJobWaitsForTheGlobalQueue) {
  auto a = std::make_shared<JobQueue>();
  auto b = std::make_shared<JobQueue>();
  bool inside_a = false;
  bool b_ran = false;
  bool b_ran_inside_a = false;
  a->DoAsync([&] {
    inside_a = true;
    b->DoAsync([&] {
      b_ran = true;
      b_ran_inside_a = inside_a;
    });
    inside_a = false;
  });
  EXPECT_FALSE(b_ran);
  EXPECT_EQ(b->PendingJobs(), 1u);
  EXPECT_GE(internal::GlobalJobQueue::Instance().size(), 1u);
  // Further pushes to B queue behind it (B has an executor to come).
  b->DoAsync([&] { EXPECT_TRUE(b_ran); });
  EXPECT_EQ(b->PendingJobs(), 2u);

  DrainGlobalQueue();
  EXPECT_TRUE(b_ran);
  EXPECT_FALSE(b_ran_inside_a);
  EXPECT_EQ(b->PendingJobs(), 0u);
}

// A job that pushes itself forever holds the pushing thread for about one
// slice; the queue then waits in the global queue, and other queues go on.
TEST_F(JobQueueTest, TimeSliceHandsABusyQueueToTheGlobalQueue) {
  ScopedTimeSlice slice(milliseconds(1));
  auto spinner = std::make_shared<JobQueue>();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> spins{0};
  std::function<void()> spin = [&] {
    spins.fetch_add(1, std::memory_order_relaxed);
    if (!stop.load()) spinner->DoAsync([&] { spin(); });
  };
  const auto start = steady_clock::now();
  spinner->DoAsync([&] { spin(); });
  const auto held = steady_clock::now() - start;
  // A 1 ms slice: a loaded machine may stretch it, but not to 2 s, which an
  // executor that never gives up would reach (it spins for ever).
  EXPECT_LT(held, std::chrono::seconds(2))
      << "the slice did not end the executor";
  // At least the first; more unless this thread was preempted for the
  // whole slice in it.
  EXPECT_GE(spins.load(), 1u);
  EXPECT_EQ(spinner->PendingJobs(), 1u);
  EXPECT_GE(internal::GlobalJobQueue::Instance().size(), 1u);

  auto other = std::make_shared<JobQueue>();
  bool other_ran = false;
  other->DoAsync([&] { other_ran = true; });
  EXPECT_TRUE(other_ran);

  // A drain round also ends after its budget, the spinner still queued.
  const auto before = spins.load();
  internal::GlobalJobQueue::Instance().RunFor(milliseconds(2));
  EXPECT_GT(spins.load(), before);
  EXPECT_EQ(spinner->PendingJobs(), 1u);

  stop.store(true);
  DrainGlobalQueue();
  EXPECT_EQ(spinner->PendingJobs(), 0u);
}

TEST(JobQueueDeathTest, APushToAQueueNoSharedPtrOwnsAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        JobQueue queue;
        queue.DoAsync([] {});
      },
      "shared_ptr");
}

}  // namespace
}  // namespace servercore
