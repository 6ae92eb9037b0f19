// SendQueue on its own: who wakes the worker, the two limits, Close, and
// PushLast (the goodbye that nothing may follow).
#include "send_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "servercore/send_buffer_manager.h"

namespace servercore::internal {
namespace {

using Result = SendQueue::PushResult;

SendBufferRef Make(uint32_t size, unsigned char fill = 0) {
  SendBufferRef buffer = SendBufferManager::Instance().Open(size);
  std::memset(buffer->Buffer(), fill, size);
  buffer->Close(size);
  return buffer;
}

Result PushCopy(SendQueue& queue, const SendBufferRef& buffer) {
  SendBufferRef ref = buffer;
  size_t grown = 0;
  return queue.Push(ref, &grown);
}

class SendQueueTest : public ::testing::Test {
 protected:
  void TearDown() override {
    SendBufferManager::Instance().ReleaseThreadChunk();
  }
};

TEST_F(SendQueueTest, OnlyThePushThatFindsItDrainedWakesTheWorker) {
  SendQueue queue;
  queue.SetLimit(1 << 20);
  const SendBufferRef a = Make(100);
  EXPECT_EQ(PushCopy(queue, a), Result::kQueuedFirst);
  EXPECT_EQ(PushCopy(queue, a), Result::kQueued);
  EXPECT_EQ(queue.pending_bytes(), 200u);

  std::vector<SendBufferRef> sending;
  size_t grown = 0;
  ASSERT_TRUE(queue.TakeAll(sending, &grown));
  EXPECT_EQ(sending.size(), 2u);
  // Still being written: a Push now rides along, it wakes no one.
  EXPECT_EQ(PushCopy(queue, a), Result::kQueued);
  ASSERT_TRUE(queue.TakeAll(sending, &grown));
  EXPECT_EQ(sending.size(), 3u);
  for (const SendBufferRef& done : sending) queue.Finished(*done);
  queue.Settle(300);
  sending.clear();
  EXPECT_EQ(queue.pending_bytes(), 0u);
  // Drained, and the worker saw it so: the next Push wakes it again.
  EXPECT_FALSE(queue.TakeAll(sending, &grown));
  EXPECT_EQ(PushCopy(queue, a), Result::kQueuedFirst);
}

TEST_F(SendQueueTest, APushPastTheLimitIsRefusedAndNotCounted) {
  SendQueue queue;
  queue.SetLimit(250);
  const SendBufferRef a = Make(100);
  EXPECT_EQ(PushCopy(queue, a), Result::kQueuedFirst);
  EXPECT_EQ(PushCopy(queue, a), Result::kQueued);
  EXPECT_EQ(PushCopy(queue, a), Result::kOverLimit);
  EXPECT_EQ(queue.pending_bytes(), 200u);
}

TEST_F(SendQueueTest, CloseDropsWhatIsQueuedAndRefusesTheRest) {
  SendQueue queue;
  queue.SetLimit(1 << 20);
  const SendBufferRef a = Make(100);
  EXPECT_EQ(PushCopy(queue, a), Result::kQueuedFirst);
  queue.Close();
  EXPECT_EQ(PushCopy(queue, a), Result::kClosed);
  std::vector<SendBufferRef> sending;
  size_t grown = 0;
  EXPECT_FALSE(queue.TakeAll(sending, &grown));
  EXPECT_EQ(a.use_count(), 1) << "the queue still holds the dropped buffer";
}

TEST_F(SendQueueTest, NothingIsQueuedAfterTheLastAndEverythingBeforeItStays) {
  SendQueue queue;
  queue.SetLimit(1 << 20);
  const SendBufferRef before = Make(100, 1);
  EXPECT_EQ(PushCopy(queue, before), Result::kQueuedFirst);
  SendBufferRef last = Make(10, 2);
  const SendBuffer* last_raw = last.get();
  size_t grown = 0;
  EXPECT_EQ(queue.PushLast(last, &grown), Result::kQueued);
  EXPECT_EQ(PushCopy(queue, Make(100, 3)), Result::kClosed);

  std::vector<SendBufferRef> sending;
  ASSERT_TRUE(queue.TakeAll(sending, &grown));
  ASSERT_EQ(sending.size(), 2u);
  EXPECT_EQ(sending[0].get(), before.get());
  EXPECT_EQ(sending[1].get(), last_raw);
  EXPECT_EQ(queue.pending_bytes(), 110u);
  EXPECT_EQ(PushCopy(queue, before), Result::kClosed);
}

TEST_F(SendQueueTest, ALastRefusedForTheLimitDoesNotCloseTheQueue) {
  SendQueue queue;
  queue.SetLimit(150);
  EXPECT_EQ(PushCopy(queue, Make(100)), Result::kQueuedFirst);
  SendBufferRef last = Make(100);
  size_t grown = 0;
  EXPECT_EQ(queue.PushLast(last, &grown), Result::kOverLimit);
  EXPECT_EQ(PushCopy(queue, Make(10)), Result::kQueued);
}

// Senders on other threads racing the last: every buffer they got queued
// is taken before it, none after (the goodbye must be the last packet).
TEST_F(SendQueueTest, SendersRacingTheLastNeverFollowIt) {
  for (int round = 0; round < 200; ++round) {
    SendQueue queue;
    queue.SetLimit(64 << 20);
    const SendBufferRef chat = Make(16, 1);
    std::atomic<bool> go{false};
    std::vector<std::thread> senders;
    for (int t = 0; t < 2; ++t) {
      senders.emplace_back([&] {
        while (!go.load(std::memory_order_acquire)) {
        }
        for (int i = 0; i < 200; ++i) {
          if (PushCopy(queue, chat) == Result::kClosed) break;
        }
      });
    }
    SendBufferRef last = Make(8, 2);
    const SendBuffer* last_raw = last.get();
    go.store(true, std::memory_order_release);
    std::this_thread::yield();
    size_t grown = 0;
    ASSERT_NE(queue.PushLast(last, &grown), Result::kClosed);
    for (std::thread& t : senders) t.join();
    std::vector<SendBufferRef> sending;
    ASSERT_TRUE(queue.TakeAll(sending, &grown));
    ASSERT_FALSE(sending.empty());
    EXPECT_EQ(sending.back().get(), last_raw) << "round " << round;
    queue.Close();
  }
}

}  // namespace
}  // namespace servercore::internal
