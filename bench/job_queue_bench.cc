// JobQueue benchmarks: the cost per job of JobQueue::DoAsync (push and run)
// against the two usual ways of serialising work on one object: a mutex held
// around the work, and a boost::asio strand on an io_context. The work of a
// job is one increment of a counter in the guarded object, so what is
// measured is the mechanism's overhead. Every benchmark reports per_job (time
// per job; with 2 threads, elapsed time over the jobs of both) and allocs/job
// (replaced operator new of tests/support).
//
//   build/rel/bench/job_queue_bench
//   taskset -c 0 build/rel/bench/job_queue_bench --benchmark_filter=threads:1
//
// Shapes (docs/BENCHMARKS.md "JobQueue against a mutex and asio::strand"):
//   - 1 thread: the thread pushes kBatch jobs per iteration. A push to an idle
//     JobQueue runs the job on the spot; the strand gets kBatch posts, then
//     the same thread runs them with io_context::poll.
//   - 2 threads: both push to one object. JobQueue: whichever thread finds the
//     queue idle executes, the other only enqueues (the design). Strand: each
//     thread posts its kBatch jobs, then polls the io_context, so the two
//     posting threads are also the threads that run it (no third thread on a
//     2-core machine). Jobs still queued on the strand when the timed loop
//     ends are run afterwards, untimed: unrun_at_stop says what fraction.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "servercore/check.h"
#include "servercore/job_queue.h"
#include "tests/support/alloc_counter.h"

#if defined(SERVERCORE_BENCH_HAVE_ASIO)
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#endif

namespace servercore {
namespace {

// Jobs per benchmark iteration.
constexpr int kBatch = 100;

// The work: one increment. A relaxed load and store (plain moves on x86, the
// same code as `++count`) so that a reader on another thread is not a data
// race; every mechanism below serialises the writers.
struct Counter {
  std::atomic<uint64_t> count{0};
  void Increment() noexcept {
    count.store(count.load(std::memory_order_relaxed) + 1,
                std::memory_order_relaxed);
  }
  uint64_t Get() const noexcept {
    return count.load(std::memory_order_relaxed);
  }
};

// Per benchmark run: counters on thread 0. allocs/job counts the whole
// process between thread 0's start and end of the loop (the start and stop
// barriers of the timed loop bracket every thread's jobs).
class JobCounters {
 public:
  explicit JobCounters(benchmark::State& state)
      : state_(state), start_(test::AllocationCount()) {}
  ~JobCounters() {
    const double jobs = static_cast<double>(state_.iterations()) * kBatch;
    // Summed over threads, divided by the run's time, inverted: seconds per
    // job of the whole run.
    state_.counters["per_job"] = benchmark::Counter(
        jobs, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state_.SetItemsProcessed(state_.iterations() * kBatch);
    if (state_.thread_index() == 0) {
      state_.counters["allocs/job"] = benchmark::Counter(
          static_cast<double>(test::AllocationCount() - start_) /
          (jobs * state_.threads()));
    }
  }

 private:
  benchmark::State& state_;
  uint64_t start_;
};

// The counter's value when the run's loop starts (thread 0 reads it before
// the start barrier) and the value it must reach once every job has run.
std::atomic<uint64_t> g_base{0};

void NoteBase(benchmark::State& state, uint64_t count) {
  if (state.thread_index() == 0) g_base.store(count);
}

uint64_t Target(const benchmark::State& state) {
  return g_base.load() + static_cast<uint64_t>(state.iterations()) * kBatch *
                             static_cast<uint64_t>(state.threads());
}

// Thread 0, after the loop (past the stop barrier, so every thread's pushes
// have returned): every job ran.
void CheckAllRan(const benchmark::State& state, uint64_t count) {
  if (state.thread_index() != 0) return;
  const uint64_t target = Target(state);
  SERVERCORE_CHECK(count == target, "counter at %llu, expected %llu",
                   static_cast<unsigned long long>(count),
                   static_cast<unsigned long long>(target));
}

// ---- JobQueue ---------------------------------------------------------------

class CountingQueue : public JobQueue {
 public:
  void Increment() noexcept { counter_.Increment(); }
  uint64_t Get() const noexcept { return counter_.Get(); }

 private:
  Counter counter_;
};

std::shared_ptr<CountingQueue> g_queue;

void SetUpQueue(const benchmark::State&) {
  // An executor hands a queue still busy after its time slice to the global
  // queue, which only a Service's workers drain, and no Service runs here: a
  // slice longer than any run keeps every job on the pushing threads.
  JobQueue::SetTimeSlice(std::chrono::hours(1));
  g_queue = std::make_shared<CountingQueue>();
}

void TearDownQueue(const benchmark::State&) { g_queue.reset(); }

// The documented idiom: DoAsync(&T::Method). The job holds a shared_ptr to
// the queue (an atomic increment and decrement per job).
void BM_JobQueue_Method(benchmark::State& state) {
  CountingQueue& queue = *g_queue;
  NoteBase(state, queue.Get());
  {
    JobCounters counters(state);
    for (auto _ : state) {
      for (int i = 0; i < kBatch; ++i) {
        queue.DoAsync(&CountingQueue::Increment);
      }
    }
  }
  CheckAllRan(state, queue.Get());
}

// A lambda capturing a raw pointer: what a job costs without the shared_ptr
// (safe here because the benchmark owns the queue for the whole run).
void BM_JobQueue_Lambda(benchmark::State& state) {
  CountingQueue* queue = g_queue.get();
  NoteBase(state, queue->Get());
  {
    JobCounters counters(state);
    for (auto _ : state) {
      for (int i = 0; i < kBatch; ++i) {
        queue->DoAsync([queue] { queue->Increment(); });
      }
    }
  }
  CheckAllRan(state, queue->Get());
}

// ---- mutex ------------------------------------------------------------------

struct MutexCounter {
  std::mutex mu;
  Counter counter;
};

MutexCounter* g_mutex_counter = nullptr;

void SetUpMutex(const benchmark::State&) { g_mutex_counter = new MutexCounter; }
void TearDownMutex(const benchmark::State&) {
  delete g_mutex_counter;
  g_mutex_counter = nullptr;
}

void BM_Mutex(benchmark::State& state) {
  MutexCounter& object = *g_mutex_counter;
  NoteBase(state, object.counter.Get());
  {
    JobCounters counters(state);
    for (auto _ : state) {
      for (int i = 0; i < kBatch; ++i) {
        std::lock_guard<std::mutex> lock(object.mu);
        object.counter.Increment();
      }
    }
  }
  CheckAllRan(state, object.counter.Get());
}

// ---- asio::strand -----------------------------------------------------------

#if defined(SERVERCORE_BENCH_HAVE_ASIO)
namespace asio = boost::asio;

struct StrandCounter {
  asio::io_context io{2};  // concurrency hint: at most 2 threads run it
  asio::executor_work_guard<asio::io_context::executor_type> work =
      asio::make_work_guard(io);
  asio::strand<asio::io_context::executor_type> strand = asio::make_strand(io);
  Counter counter;
};

StrandCounter* g_strand = nullptr;

void SetUpStrand(const benchmark::State&) { g_strand = new StrandCounter; }
void TearDownStrand(const benchmark::State&) {
  delete g_strand;
  g_strand = nullptr;
}

void BM_Strand(benchmark::State& state) {
  StrandCounter& object = *g_strand;
  Counter* counter = &object.counter;
  NoteBase(state, counter->Get());
  {
    JobCounters counters(state);
    for (auto _ : state) {
      for (int i = 0; i < kBatch; ++i) {
        asio::post(object.strand, [counter] { counter->Increment(); });
      }
      // The work guard keeps the io_context from stopping, so poll runs what
      // is ready and returns; no restart between iterations.
      object.io.poll();
    }
    // Jobs still queued when the loop ends (with 2 threads: those the other
    // thread posted after its last poll, or this thread's while the other
    // held the strand).
    if (state.thread_index() == 0) {
      const double all =
          static_cast<double>(state.iterations()) * kBatch * state.threads();
      state.counters["unrun_at_stop"] = benchmark::Counter(
          static_cast<double>(Target(state) - counter->Get()) / all);
    }
  }
  // Untimed: run what is left (both threads, until the last job has run).
  const uint64_t target = Target(state);
  while (counter->Get() != target) object.io.poll();
  CheckAllRan(state, counter->Get());
}
#endif

// ---- registration -----------------------------------------------------------

// Real time throughout: with 2 threads, jobs/s of the pair over wall time.
BENCHMARK(BM_JobQueue_Method)
    ->Setup(SetUpQueue)
    ->Teardown(TearDownQueue)
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2);
BENCHMARK(BM_JobQueue_Lambda)
    ->Setup(SetUpQueue)
    ->Teardown(TearDownQueue)
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2);
BENCHMARK(BM_Mutex)
    ->Setup(SetUpMutex)
    ->Teardown(TearDownMutex)
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2);
#if defined(SERVERCORE_BENCH_HAVE_ASIO)
BENCHMARK(BM_Strand)
    ->Setup(SetUpStrand)
    ->Teardown(TearDownStrand)
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2);
#endif

}  // namespace
}  // namespace servercore

BENCHMARK_MAIN();
