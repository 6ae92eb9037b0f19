// Counts heap allocations (replaced operator new) to show that pushing and
// running a small job takes none in steady state: the job lives inside its
// Job, and the queue's two vectors keep their capacities.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>

#include "servercore/job_queue.h"
#include "tests/support/alloc_counter.h"

namespace servercore {
namespace {

class Counter : public JobQueue {
 public:
  void Add(uint64_t n) { total += n; }
  uint64_t total = 0;
};

// One round: a job that pushes `kBatch` small jobs (lambdas with 32 bytes of
// captures, and method jobs) to its own queue, which run as one batch after
// it, on this thread.
constexpr int kBatch = 1000;

void Round(const std::shared_ptr<Counter>& counter, uint64_t& sum) {
  counter->DoAsync([&counter, &sum] {
    for (int i = 0; i < kBatch; ++i) {
      if (i % 2 == 0) {
        const std::array<uint64_t, 3> data{1, 2, static_cast<uint64_t>(i)};
        counter->DoAsync([&sum, data] { sum += data[0] + data[1]; });
      } else {
        counter->DoAsync(&Counter::Add, uint64_t{3});
      }
    }
  });
}

TEST(JobQueueAllocTest, SmallJobsTakeNoHeapAllocationInSteadyState) {
  // Each round must run on this thread, start to end: a slice far longer
  // than a loaded machine's preemption keeps the queue from being handed to
  // the global queue (which no worker drains here).
  const auto saved_slice = JobQueue::TimeSlice();
  JobQueue::SetTimeSlice(std::chrono::seconds(10));
  auto counter = std::make_shared<Counter>();
  uint64_t sum = 0;
  for (int i = 0; i < 10; ++i) Round(counter, sum);  // warm the vectors

  constexpr int kRounds = 1000;  // 1,000,000 jobs (plus one per round)
  const uint64_t before = test::AllocationCount();
  for (int i = 0; i < kRounds; ++i) Round(counter, sum);
  const uint64_t during = test::AllocationCount() - before;

  EXPECT_EQ(during, 0u) << "heap allocations in " << kRounds * kBatch
                        << " steady-state jobs";
  const uint64_t jobs = uint64_t{kRounds + 10} * kBatch;
  EXPECT_EQ(sum + counter->total, jobs / 2 * 3 + jobs / 2 * 3);
  EXPECT_EQ(counter->PendingJobs(), 0u);
  JobQueue::SetTimeSlice(saved_slice);
}

TEST(JobQueueAllocTest, CounterSeesAHeapJob) {
  // Guards the test above against a counter that cannot fail.
  auto queue = std::make_shared<JobQueue>();
  std::array<uint64_t, 16> big{};
  uint64_t sum = 0;
  const uint64_t before = test::AllocationCount();
  queue->DoAsync([big, &sum] { sum += big[0] + 1; });
  EXPECT_GE(test::AllocationCount() - before, 1u);
  EXPECT_EQ(sum, 1u);
}

}  // namespace
}  // namespace servercore
