#include "servercore/send_buffer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "io/release_batch.h"
#include "send_buffer_chunk.h"
#include "servercore/mutex.h"
#include "servercore/send_buffer_manager.h"

namespace servercore {
namespace {

SendBufferManager& Manager() { return SendBufferManager::Instance(); }

// Every test starts and ends with default options, an empty pool and no chunk
// on the test thread. The *_created and *_freed counters are cumulative over
// the process, so tests compare those as differences.
class SendBufferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    Manager().ReleaseThreadChunk();
    Manager().Configure(SendBufferManager::Options{});
    ASSERT_EQ(Manager().GetStats().chunks_in_use, 0u);
  }
  void TearDown() override {
    Manager().ReleaseThreadChunk();
    EXPECT_EQ(Manager().GetStats().chunks_in_use, 0u);
    EXPECT_EQ(Manager().GetStats().dedicated_live, 0u);
    EXPECT_EQ(Manager().GetStats().bytes_pinned, 0u);
    Manager().Configure(SendBufferManager::Options{});
  }
};

SendBufferRef MakeFilled(uint32_t alloc, uint32_t write, unsigned char fill) {
  SendBufferRef buf = Manager().Open(alloc);
  std::memset(buf->Buffer(), fill, write);
  buf->Close(write);
  return buf;
}

TEST_F(SendBufferTest, OpenReservesAndCloseCommits) {
  SendBufferRef buf = Manager().Open(100);
  ASSERT_TRUE(buf);
  EXPECT_EQ(buf->AllocSize(), 100u);
  EXPECT_EQ(buf->WriteSize(), 0u);
  EXPECT_FALSE(buf->IsClosed());
  std::memcpy(buf->Buffer(), "hello", 5);
  buf->Close(5);
  EXPECT_TRUE(buf->IsClosed());
  EXPECT_EQ(buf->WriteSize(), 5u);
  ASSERT_EQ(buf->Data().size(), 5u);
  EXPECT_EQ(std::memcmp(buf->Data().data(), "hello", 5), 0);
  EXPECT_EQ(buf.use_count(), 1u);
}

TEST_F(SendBufferTest, CloseReturnsTheUnwrittenRoomToTheChunk) {
  SendBufferRef first = MakeFilled(4000, 10, 0xAA);
  SendBufferRef second = MakeFilled(4000, 10, 0xBB);
  // The second buffer starts right after the 10 committed bytes (plus its
  // header, rounded to 8), not after the 4000 reserved.
  const std::byte* end_of_first = first->Buffer() + first->WriteSize();
  EXPECT_GT(second->Buffer(), end_of_first);
  EXPECT_LE(second->Buffer(),
            end_of_first + 8 + SendBufferChunk::kBufferOverhead);
  for (std::byte b : first->Data()) EXPECT_EQ(b, std::byte{0xAA});
  for (std::byte b : second->Data()) EXPECT_EQ(b, std::byte{0xBB});
  EXPECT_EQ(Manager().GetStats().chunks_in_use, 1u);
}

TEST_F(SendBufferTest, ZeroSizedBuffersAreFine) {
  SendBufferRef buf = Manager().Open(0);
  buf->Close(0);
  EXPECT_TRUE(buf->Data().empty());
}

TEST_F(SendBufferTest, CopiesShareOneBuffer) {
  SendBufferRef buf = MakeFilled(64, 64, 1);
  SendBufferRef copy = buf;
  EXPECT_EQ(copy, buf);
  EXPECT_EQ(buf.use_count(), 2u);
  SendBufferRef moved = std::move(copy);
  EXPECT_FALSE(copy);  // NOLINT(bugprone-use-after-move): checking the move
  EXPECT_EQ(buf.use_count(), 2u);
  moved.reset();
  EXPECT_EQ(buf.use_count(), 1u);
}

TEST_F(SendBufferTest, BroadcastOfOneBufferToAThousandHolders) {
  SendBufferRef buf = MakeFilled(128, 128, 7);
  std::vector<SendBufferRef> queues(1000, buf);
  EXPECT_EQ(buf.use_count(), 1001u);
  for (const SendBufferRef& q : queues) EXPECT_EQ(q->Buffer(), buf->Buffer());
  queues.clear();
  EXPECT_EQ(buf.use_count(), 1u);
}

TEST_F(SendBufferTest, SharesCountEveryReferenceAtOnce) {
  SendBufferRef buf = MakeFilled(128, 128, 7);
  std::vector<SendBufferRef> queues;
  {
    SendBufferShares shares(buf, 1000);
    EXPECT_EQ(buf.use_count(), 1001u) << "counted before any is taken";
    for (int i = 0; i < 1000; ++i) queues.push_back(shares.Take());
    EXPECT_EQ(buf.use_count(), 1001u) << "a Take counts nothing";
  }
  EXPECT_EQ(buf.use_count(), 1001u) << "every share was taken";
  for (const SendBufferRef& q : queues) EXPECT_EQ(q, buf);
  queues.clear();
  EXPECT_EQ(buf.use_count(), 1u);
}

TEST_F(SendBufferTest, SharesNotTakenAreGivenBack) {
  SendBufferRef buf = MakeFilled(128, 128, 7);
  SendBufferRef taken;
  {
    SendBufferShares shares(buf, 5);
    taken = shares.Take();
  }
  EXPECT_EQ(buf.use_count(), 2u) << "the caller's and the one taken";
  taken.reset();
  EXPECT_EQ(buf.use_count(), 1u);
  { SendBufferShares none(buf, 0); }
  EXPECT_EQ(buf.use_count(), 1u);
}

TEST_F(SendBufferTest, SharesOutliveTheCallersReference) {
  // Taken shares are ordinary references: the buffer lives on in them.
  SendBufferRef buf = MakeFilled(16, 16, 9);
  const std::byte* bytes = buf->Buffer();
  SendBufferRef a, b;
  {
    SendBufferShares shares(buf, 2);
    a = shares.Take();
    b = shares.Take();
  }
  buf.reset();
  EXPECT_EQ(a.use_count(), 2u);
  EXPECT_EQ(a->Buffer(), bytes);
  EXPECT_EQ(a->Data()[15], std::byte{9});
  a.reset();
  EXPECT_EQ(b.use_count(), 1u);
}

TEST_F(SendBufferTest, TakingMoreSharesThanCountedIsAProgrammingError) {
  SendBufferRef buf = MakeFilled(16, 16, 9);
  EXPECT_DEATH(
      {
        SendBufferShares shares(buf, 1);
        SendBufferRef a = shares.Take();
        SendBufferRef b = shares.Take();
      },
      "more Takes than shares");
}

TEST_F(SendBufferTest, ABatchGivesBackEachBuffersReferencesTogether) {
  SendBufferRef a = MakeFilled(128, 128, 1);
  SendBufferRef b = MakeFilled(128, 128, 2);
  internal::ReleaseBatch batch;
  for (int member = 0; member < 1000; ++member) {
    SendBufferRef written_a = a;
    SendBufferRef written_b = b;
    batch.Add(written_a);
    batch.Add(written_b);
    EXPECT_FALSE(written_a) << "the batch took the reference";
  }
  EXPECT_EQ(a.use_count(), 1001u) << "held until the flush";
  EXPECT_EQ(b.use_count(), 1001u);
  batch.Flush();
  EXPECT_EQ(a.use_count(), 1u);
  EXPECT_EQ(b.use_count(), 1u);
  batch.Flush();  // nothing held: nothing given back twice
  EXPECT_EQ(a.use_count(), 1u);
}

TEST_F(SendBufferTest, ABatchFreesABufferAtItsLastReference) {
  {
    internal::ReleaseBatch batch;
    // More buffers than the batch has slots: they evict one another, and
    // every reference still goes back exactly once.
    std::vector<SendBufferRef> refs;
    for (int i = 0; i < 500; ++i) {
      refs.push_back(MakeFilled(64, 64, static_cast<unsigned char>(i)));
    }
    for (int copy = 0; copy < 3; ++copy) {
      for (const SendBufferRef& ref : refs) {
        SendBufferRef written = ref;
        batch.Add(written);
      }
    }
    Manager().ReleaseThreadChunk();
    EXPECT_GT(Manager().GetStats().chunks_in_use, 0u);
    // The last references: a buffer whose references the batch then holds
    // all of goes at once, not at the flush, so its chunk comes back as
    // early as it did without the batch.
    for (SendBufferRef& ref : refs) batch.Add(ref);
    EXPECT_EQ(Manager().GetStats().chunks_in_use, 0u);
    EXPECT_EQ(Manager().GetStats().bytes_pinned, 0u);
  }
}

TEST_F(SendBufferTest, OpenAgainBeforeCloseIsAProgrammingError) {
  EXPECT_DEATH(
      {
        SendBufferRef a = Manager().Open(10);
        SendBufferRef b = Manager().Open(10);
      },
      "Open called again before Close");
}

TEST_F(SendBufferTest, OpenAfterDroppingAnUnclosedBufferIsAProgrammingError) {
  EXPECT_DEATH(
      {
        Manager().Open(10).reset();
        SendBufferRef b = Manager().Open(10);
      },
      "Open called again before Close");
}

TEST_F(SendBufferTest, CloseLargerThanAllocIsAProgrammingError) {
  EXPECT_DEATH(Manager().Open(10)->Close(11),
               "write_size is larger than the alloc_size");
}

TEST_F(SendBufferTest, CloseTwiceIsAProgrammingError) {
  EXPECT_DEATH(
      {
        SendBufferRef a = Manager().Open(10);
        a->Close(1);
        a->Close(1);
      },
      "Close called twice");
}

TEST_F(SendBufferTest, CloseOnAnotherThreadIsAProgrammingError) {
  EXPECT_DEATH(
      {
        SendBufferRef a = Manager().Open(10);
        std::thread([&a] { a->Close(1); }).join();
      },
      "Close must be called on the thread that opened");
}

TEST_F(SendBufferTest, SteadyOpenCloseReleaseReusesChunks) {
  // Keep a window of live buffers, as sessions with queued sends would.
  std::deque<SendBufferRef> window;
  auto run = [&window](int n) {
    for (int i = 0; i < n; ++i) {
      window.push_back(MakeFilled(4096, 100 + static_cast<uint32_t>(i % 900),
                                  static_cast<unsigned char>(i)));
      if (window.size() > 200) window.pop_front();
    }
  };
  run(20'000);
  const uint64_t created = Manager().GetStats().chunks_created;
  run(200'000);
  EXPECT_EQ(Manager().GetStats().chunks_created, created)
      << "a steady workload must be served from the pool";
  window.clear();
}

TEST_F(SendBufferTest, LargeOpenGetsADedicatedAllocation) {
  const uint32_t big = SendBufferManager::kDefaultChunkSize * 4;
  SendBufferRef buf = Manager().Open(big);
  EXPECT_EQ(buf->AllocSize(), big);
  std::memset(buf->Buffer(), 0x5A, big);
  buf->Close(big);
  SendBufferManager::Stats stats = Manager().GetStats();
  EXPECT_EQ(stats.dedicated_live, 1u);
  EXPECT_GE(stats.bytes_pinned, big);
  // A normal Open still works right after, from a pooled chunk.
  SendBufferRef small = MakeFilled(100, 100, 1);
  SendBufferRef copy = buf;
  buf.reset();
  EXPECT_EQ(Manager().GetStats().dedicated_live, 1u);
  for (std::byte b : copy->Data()) ASSERT_EQ(b, std::byte{0x5A});
  copy.reset();
  EXPECT_EQ(Manager().GetStats().dedicated_live, 0u);
}

TEST_F(SendBufferTest, ExactlyFullChunkIsNotDedicated) {
  const uint32_t fits = SendBufferManager::kDefaultChunkSize -
                        static_cast<uint32_t>(sizeof(SendBufferChunk)) -
                        SendBufferChunk::kBufferOverhead;
  const uint64_t dedicated = Manager().GetStats().dedicated_created;
  SendBufferRef buf = Manager().Open(fits);
  buf->Close(fits);
  EXPECT_EQ(Manager().GetStats().dedicated_created, dedicated);
  SendBufferRef over = Manager().Open(fits + 1);
  over->Close(0);
  EXPECT_EQ(Manager().GetStats().dedicated_created, dedicated + 1);
}

TEST_F(SendBufferTest, ThreadExitReturnsItsChunk) {
  SendBufferRef kept;
  std::thread([&kept] { kept = MakeFilled(64, 64, 3); }).join();
  // The thread is gone but its buffer is alive: the chunk stays in use.
  EXPECT_EQ(Manager().GetStats().chunks_in_use, 1u);
  EXPECT_EQ(Manager().GetStats().chunks_pooled, 0u);
  for (std::byte b : kept->Data()) EXPECT_EQ(b, std::byte{3});
  kept.reset();
  EXPECT_EQ(Manager().GetStats().chunks_in_use, 0u);
  EXPECT_EQ(Manager().GetStats().chunks_pooled, 1u);
}

TEST_F(SendBufferTest, PoolKeepsAtMostTheConfiguredIdleChunks) {
  Manager().Configure({.chunk_size = 8192, .max_pooled_chunks = 2});
  const uint64_t freed = Manager().GetStats().chunks_freed;
  std::vector<SendBufferRef> held;
  for (int i = 0; i < 10; ++i) held.push_back(MakeFilled(6000, 6000, 1));
  Manager().ReleaseThreadChunk();
  EXPECT_EQ(Manager().GetStats().chunks_in_use, 10u);
  held.clear();
  SendBufferManager::Stats stats = Manager().GetStats();
  EXPECT_EQ(stats.chunks_pooled, 2u);
  EXPECT_EQ(stats.chunks_freed - freed, 8u);
  EXPECT_EQ(stats.chunks_in_use, 0u);
}

// Memory goes back (issue 12): after a peak, TrimIdle frees the chunks that
// sat idle since its previous call, down to the reserve, and keeps those a
// steady load takes.
TEST_F(SendBufferTest, TrimIdleFreesWhatAPeakLeftDownToTheReserve) {
  Manager().Configure(
      {.chunk_size = 8192, .max_pooled_chunks = 100, .reserve_chunks = 4});
  std::vector<SendBufferRef> held;
  for (int i = 0; i < 40; ++i) held.push_back(MakeFilled(6000, 6000, 1));
  Manager().ReleaseThreadChunk();
  held.clear();  // the peak is over: 40 idle chunks
  EXPECT_EQ(Manager().GetStats().chunks_pooled, 40u);
  // The first call only notes the low-water mark (the pool may be in use).
  EXPECT_EQ(Manager().TrimIdle(), 0u);
  // A steady load of 2 chunks at a time meanwhile.
  for (int round = 0; round < 5; ++round) {
    held.push_back(MakeFilled(6000, 6000, 1));
    held.push_back(MakeFilled(6000, 6000, 1));
    Manager().ReleaseThreadChunk();
    held.clear();
  }
  // 38 were never taken since: freed, but never below the reserve.
  EXPECT_EQ(Manager().TrimIdle(), 36u);
  EXPECT_EQ(Manager().GetStats().chunks_pooled, 4u);
  EXPECT_EQ(Manager().TrimIdle(), 0u);
  EXPECT_EQ(Manager().GetStats().chunks_pooled, 4u);
}

TEST_F(SendBufferTest, ConfigureDropsChunksOfTheOldSizeWhenTheyComeBack) {
  SendBufferRef old_size = MakeFilled(64, 64, 1);
  Manager().ReleaseThreadChunk();
  Manager().Configure({.chunk_size = 16384, .max_pooled_chunks = 8});
  old_size.reset();
  EXPECT_EQ(Manager().GetStats().chunks_pooled, 0u);
  SendBufferRef new_size = MakeFilled(64, 64, 1);
  new_size.reset();
  Manager().ReleaseThreadChunk();
  EXPECT_EQ(Manager().GetStats().chunks_pooled, 1u);
}

// Producers open buffers and hand them to consumers on other threads, which
// check the bytes and release them: the common shape of a server (built on one
// worker, sent and released on others). Run under TSan in CI.
TEST_F(SendBufferTest, BuffersReleasedOnOtherThreads) {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 300'000;  // 1.2 million buffers
  struct Mailbox {
    Mutex mu;
    std::vector<SendBufferRef> items SERVERCORE_GUARDED_BY(mu);
  };
  std::vector<Mailbox> boxes(kProducers);
  std::atomic<int> producers_done{0};
  std::atomic<uint64_t> checked{0};
  std::atomic<bool> corrupt{false};

  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      Mailbox& out = boxes[static_cast<size_t>((p + 1) % kProducers)];
      for (int i = 0; i < kPerProducer; ++i) {
        const auto fill = static_cast<unsigned char>(i);
        SendBufferRef buf =
            MakeFilled(512, 1 + static_cast<uint32_t>(i % 512), fill);
        SendBufferRef keep = buf;  // the producer also "broadcasts" it
        MutexLock lock(out.mu);
        out.items.push_back(std::move(buf));
      }
      producers_done.fetch_add(1);
    });
    threads.emplace_back([&, p] {
      Mailbox& in = boxes[static_cast<size_t>(p)];
      std::vector<SendBufferRef> batch;
      for (;;) {
        const bool last = producers_done.load() == kProducers;
        {
          MutexLock lock(in.mu);
          batch.swap(in.items);
        }
        for (const SendBufferRef& buf : batch) {
          const std::byte first = buf->Data()[0];
          for (std::byte b : buf->Data()) {
            if (b != first) corrupt = true;
          }
        }
        checked.fetch_add(batch.size());
        batch.clear();  // released here, on a thread that did not open them
        if (last) break;
        std::this_thread::yield();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_FALSE(corrupt.load());
  EXPECT_EQ(checked.load(), uint64_t{kProducers} * kPerProducer);
  SendBufferManager::Stats stats = Manager().GetStats();
  EXPECT_EQ(stats.chunks_in_use, 0u) << "every chunk must be back";
  EXPECT_EQ(stats.bytes_pinned, 0u);
}

}  // namespace
}  // namespace servercore
