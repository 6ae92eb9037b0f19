// Send-buffer benchmarks: the pooled path (SendBufferManager Open / write /
// Close / release) against the design before pooling
// (std::make_shared<std::vector<std::byte>>(n) plus the copy), per message
// size and thread count; a broadcast-shaped case; and the chunk-size sweep
// behind SendBufferManager::kDefaultChunkSize. Every benchmark reports
// allocs/msg, counted by the replaced operator new of tests/support.
//
//   build/release/bench/send_buffer_bench                       # everything
//   build/release/bench/send_buffer_bench --benchmark_filter=Broadcast
#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "servercore/send_buffer.h"
#include "servercore/send_buffer_manager.h"
#include "tests/support/alloc_counter.h"

namespace servercore {
namespace {

// Live buffers a benchmark keeps, as session send queues would: a message is
// released `kWindow` messages after it was built.
constexpr std::size_t kWindow = 256;
// What a receive handler copies into the packet.
alignas(64) const std::array<std::byte, 65536> kSource{};

class AllocationCounter {
 public:
  explicit AllocationCounter(benchmark::State& state)
      : state_(state), start_(test::AllocationCount()) {}
  ~AllocationCounter() {
    // Per thread: other threads' allocations land in the shared counter too,
    // so read it only where the benchmark runs single-threaded.
    if (state_.threads() == 1) {
      state_.counters["allocs/msg"] = benchmark::Counter(
          static_cast<double>(test::AllocationCount() - start_),
          benchmark::Counter::kAvgIterations);
    }
    state_.SetItemsProcessed(state_.iterations());
  }

 private:
  benchmark::State& state_;
  uint64_t start_;
};

void BM_Pooled(benchmark::State& state) {
  const auto size = static_cast<uint32_t>(state.range(0));
  std::array<SendBufferRef, kWindow> window;
  std::size_t i = 0;
  {
    AllocationCounter counter(state);
    for (auto _ : state) {
      SendBufferRef buf = SendBufferManager::Instance().Open(size);
      std::memcpy(buf->Buffer(), kSource.data(), size);
      buf->Close(size);
      window[i++ % kWindow] = std::move(buf);
    }
  }
  window = {};
}

void BM_MakeShared(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::array<std::shared_ptr<std::vector<std::byte>>, kWindow> window;
  std::size_t i = 0;
  {
    AllocationCounter counter(state);
    for (auto _ : state) {
      auto buf = std::make_shared<std::vector<std::byte>>(size);
      std::memcpy(buf->data(), kSource.data(), size);
      window[i++ % kWindow] = std::move(buf);
    }
  }
  window = {};
}

BENCHMARK(BM_Pooled)->Arg(64)->Arg(512)->Arg(4096)->Threads(1)->Threads(2);
BENCHMARK(BM_MakeShared)->Arg(64)->Arg(512)->Arg(4096)->Threads(1)->Threads(2);

// One buffer queued to 1,000 sessions and released by each: the broadcast.
constexpr std::size_t kReceivers = 1000;

void BM_BroadcastPooled(benchmark::State& state) {
  std::vector<SendBufferRef> queues(kReceivers);
  {
    AllocationCounter counter(state);
    for (auto _ : state) {
      SendBufferRef buf = SendBufferManager::Instance().Open(128);
      std::memcpy(buf->Buffer(), kSource.data(), 128);
      buf->Close(128);
      for (SendBufferRef& q : queues) q = buf;
      for (SendBufferRef& q : queues) q.reset();
    }
  }
}

void BM_BroadcastMakeShared(benchmark::State& state) {
  std::vector<std::shared_ptr<std::vector<std::byte>>> queues(kReceivers);
  {
    AllocationCounter counter(state);
    for (auto _ : state) {
      auto buf = std::make_shared<std::vector<std::byte>>(128);
      std::memcpy(buf->data(), kSource.data(), 128);
      for (auto& q : queues) q = buf;
      for (auto& q : queues) q.reset();
    }
  }
}

BENCHMARK(BM_BroadcastPooled);
BENCHMARK(BM_BroadcastMakeShared);

// Chunk-size sweep: a receive handler's habit of reserving 4 KiB and writing
// a small packet, with a window of live buffers. Argument: chunk size.
void BM_ChunkSize(benchmark::State& state) {
  SendBufferManager& manager = SendBufferManager::Instance();
  const SendBufferManager::Options saved = manager.options();
  manager.ReleaseThreadChunk();
  manager.Configure({.chunk_size = static_cast<uint32_t>(state.range(0)),
                     .max_pooled_chunks = saved.max_pooled_chunks});
  std::array<SendBufferRef, kWindow> window;
  std::size_t i = 0;
  {
    AllocationCounter counter(state);
    for (auto _ : state) {
      SendBufferRef buf = manager.Open(4096);
      const uint32_t size = 32 + static_cast<uint32_t>(i % 8) * 64;
      std::memcpy(buf->Buffer(), kSource.data(), size);
      buf->Close(size);
      window[i++ % kWindow] = std::move(buf);
    }
  }
  // Memory the window of live buffers keeps pinned: the cost of big chunks.
  state.counters["pinned_KiB"] =
      static_cast<double>(manager.GetStats().bytes_pinned) / 1024.0;
  window = {};
  manager.ReleaseThreadChunk();
  manager.Configure(saved);
}

BENCHMARK(BM_ChunkSize)->RangeMultiplier(2)->Range(8 << 10, 256 << 10);

}  // namespace
}  // namespace servercore

BENCHMARK_MAIN();
