#include "servercore/job_queue.h"

#include <utility>

#include "global_job_queue.h"
#include "servercore/check.h"

namespace servercore {
namespace {

// The queue this thread is executing, or null: an executor never starts
// another queue inside one of its jobs.
thread_local JobQueue* t_executing = nullptr;

std::atomic<int64_t> g_time_slice_us{2000};

}  // namespace

void JobQueue::SetTimeSlice(std::chrono::microseconds slice) noexcept {
  g_time_slice_us.store(slice.count(), std::memory_order_relaxed);
}

std::chrono::microseconds JobQueue::TimeSlice() noexcept {
  return std::chrono::microseconds(
      g_time_slice_us.load(std::memory_order_relaxed));
}

std::shared_ptr<JobQueue> JobQueue::SharedSelf() {
  std::shared_ptr<JobQueue> self = weak_from_this().lock();
  SERVERCORE_CHECK(self != nullptr,
                   "a JobQueue must be owned by a std::shared_ptr");
  return self;
}

void JobQueue::Push(Job job) {
  if (Enqueue(std::move(job))) StartExecutor();
}

bool JobQueue::Enqueue(Job job) {
  SERVERCORE_CHECK(static_cast<bool>(job), "pushing an empty Job");
  size_t previous;
  {
    MutexLock lock(mu_);
    pending_.push_back(std::move(job));
    previous = job_count_.fetch_add(1, std::memory_order_acq_rel);
  }
  return previous == 0;  // otherwise an executor has it, or will
}

void JobQueue::StartExecutor() {
  if (t_executing == nullptr) {
    Execute();
  } else {
    internal::GlobalJobQueue::Instance().Push(SharedSelf());
  }
}

void JobQueue::Execute(const internal::JobKey&) { Execute(); }

bool JobQueue::Enqueue(Job job, const internal::JobKey&) {
  return Enqueue(std::move(job));
}

void JobQueue::StartExecutor(const internal::JobKey&) { StartExecutor(); }

void JobQueue::Execute() noexcept {
  // A job may drop the last other reference to this queue.
  const std::shared_ptr<JobQueue> self = SharedSelf();
  t_executing = this;
  const auto deadline = std::chrono::steady_clock::now() + TimeSlice();
  for (;;) {
    {
      MutexLock lock(mu_);
      // running_ is empty: its capacity goes to pending_.
      running_.swap(pending_);
    }
    const size_t batch = running_.size();
    for (Job& job : running_) {
      job();
      job.Reset();  // release what it captured now, not after the batch
    }
    running_.clear();
    if (job_count_.fetch_sub(batch, std::memory_order_acq_rel) == batch) {
      break;  // empty: the next push makes a new executor
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      t_executing = nullptr;
      internal::GlobalJobQueue::Instance().Push(self);
      return;
    }
  }
  t_executing = nullptr;
}

}  // namespace servercore
