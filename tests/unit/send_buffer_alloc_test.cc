// Counts heap allocations with a replaced global operator new to show that
// Open / write / Close / share / release take none in steady state: the send
// path's per-packet cost is a cursor bump and reference counts.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstring>

#include "servercore/send_buffer.h"
#include "servercore/send_buffer_manager.h"
#include "tests/support/alloc_counter.h"

namespace servercore {
namespace {

// One round of a server's send path: build a packet, queue it to `fanout`
// sessions (copies of the reference), and let the oldest queued packets go.
template <std::size_t kWindow, std::size_t kFanout>
void SendRound(std::array<SendBufferRef, kWindow>& window,
               std::array<SendBufferRef, kFanout>& fanout, uint32_t i) {
  const uint32_t size = 16 + (i * 37) % 4000;
  SendBufferRef buf = SendBufferManager::Instance().Open(4096);
  std::memset(buf->Buffer(), static_cast<int>(i & 0xFF), size);
  buf->Close(size);
  for (SendBufferRef& slot : fanout) slot = buf;
  window[i % kWindow] = std::move(buf);
}

TEST(SendBufferAllocTest, SteadyStateTakesNoHeapAllocation) {
  SendBufferManager::Instance().ReleaseThreadChunk();
  std::array<SendBufferRef, 256> window;
  std::array<SendBufferRef, 64> fanout;
  uint32_t i = 0;
  for (; i < 100'000; ++i) SendRound(window, fanout, i);  // warm the pool

  const uint64_t before = test::AllocationCount();
  for (; i < 1'100'000; ++i) SendRound(window, fanout, i);
  const uint64_t during = test::AllocationCount() - before;

  EXPECT_EQ(during, 0u) << "heap allocations in 1,000,000 steady-state sends";
  window = {};
  fanout = {};
  SendBufferManager::Instance().ReleaseThreadChunk();
  EXPECT_EQ(SendBufferManager::Instance().GetStats().chunks_in_use, 0u);
}

TEST(SendBufferAllocTest, CounterSeesAllocations) {
  // Guards the test above against a counter that cannot fail.
  const uint64_t before = test::AllocationCount();
  auto* p = new int(1);
  delete p;
  SendBufferManager::Instance().Configure({});  // fresh, empty pool
  SendBufferRef buf = SendBufferManager::Instance().Open(10);
  buf->Close(10);
  EXPECT_GE(test::AllocationCount() - before, 2u);
}

}  // namespace
}  // namespace servercore
