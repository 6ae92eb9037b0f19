// The send path under pressure, on both backends: several threads calling
// Send on one session at once, and writes forced to be partial by a slow
// reader with a small receive buffer. What reaches the client must be exactly
// what was queued, in queue order per thread, byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

class ConcurrentSendTest : public BackendTest {};

constexpr uint16_t kDataId = 9;

// Four threads Send to one server session at once, each numbering its own
// packets: the client must see every thread's packets, complete and each
// thread's in order, none twice, none torn.
TEST_P(ConcurrentSendTest, FourThreadsSendToOneSessionEachInOrder) {
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(/*echo=*/false), Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  const uint32_t tag = 0;
  ASSERT_TRUE(client.SendPacket(1, std::as_bytes(std::span(&tag, 1))));
  const auto sessions = tracker.WaitForTags(1);
  ASSERT_EQ(sessions.size(), 1u);
  const SessionRef session = sessions[0];

  constexpr uint32_t kThreads = 4;
  const auto per_thread = static_cast<uint32_t>(Scaled(3000, 800));
  std::atomic<bool> go{false};
  std::atomic<int> refused{0};
  std::vector<std::thread> senders;
  for (uint32_t t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (uint32_t seq = 0; seq < per_thread; ++seq) {
        if (!session->Send(MakePacket(kDataId, SequencedPayload(t, seq)))) {
          refused.fetch_add(1);
        }
      }
      SendBufferManager::Instance().ReleaseThreadChunk();
    });
  }
  go.store(true);

  std::vector<uint32_t> next(kThreads, 0);
  size_t expected_bytes = 0;
  for (uint32_t i = 0; i < kThreads * per_thread; ++i) {
    auto packet = client.ReadPacket();
    ASSERT_TRUE(packet.has_value()) << "after " << i << " packets";
    ASSERT_EQ(packet->id, kDataId);
    ASSERT_GE(packet->payload.size(), 8u);
    uint32_t thread;
    uint32_t seq;
    std::memcpy(&thread, packet->payload.data(), 4);
    std::memcpy(&seq, packet->payload.data() + 4, 4);
    ASSERT_LT(thread, kThreads) << "packet " << i;
    ASSERT_EQ(seq, next[thread]) << "thread " << thread << " out of order";
    ASSERT_TRUE(packet->payload == SequencedPayload(thread, seq))
        << "thread " << thread << " packet " << seq << " corrupted";
    ++next[thread];
    expected_bytes += packet->payload.size() + 4;
  }
  for (std::thread& t : senders) t.join();
  EXPECT_EQ(refused.load(), 0);
  for (uint32_t t = 0; t < kThreads; ++t) EXPECT_EQ(next[t], per_thread);
  EXPECT_TRUE(client.IsQuiet(std::chrono::milliseconds(50)))
      << "bytes after the last packet";
  EXPECT_TRUE(WaitFor([&] {
    return server->GetStats().packets_out == kThreads * per_thread;
  })) << "packets_out "
      << server->GetStats().packets_out;
  EXPECT_EQ(server->GetStats().bytes_out, expected_bytes);
  // Settled just after the buffers are counted as written.
  EXPECT_TRUE(WaitFor([&] { return session->PendingSendBytes() == 0; }));
}

// More is queued than the kernel can hold for a client with a small receive
// buffer that does not read yet, so the gather writes come back short; then
// the client drains slowly, keeping the socket full. Each write must resume
// at the exact byte, across buffer boundaries (including buffers larger than
// a chunk). Every byte must arrive, in order, and the stats must show the
// partial writes.
TEST_P(ConcurrentSendTest, PartialWritesResumeAtTheExactByte) {
  SessionTracker tracker;
  ServiceOptions options = Options();
  options.max_pending_bytes = 64 * 1024 * 1024;
  SERVERCORE_START_SERVER(server, tracker.Factory(/*echo=*/false), options);
  TestClient client;
  client.SetReceiveBuffer(4096);
  ASSERT_TRUE(client.Connect(server->port()));
  const uint32_t tag = 0;
  ASSERT_TRUE(client.SendPacket(1, std::as_bytes(std::span(&tag, 1))));
  const auto sessions = tracker.WaitForTags(1);
  ASSERT_EQ(sessions.size(), 1u);
  const SessionRef session = sessions[0];

  // Buffers of varying sizes: tiny, around the iovec and chunk sizes, and
  // dedicated ones larger than a chunk.
  const size_t total_target =
      std::min<size_t>(MaxSocketSendBuffer(), 16 * 1024 * 1024) +
      2 * 1024 * 1024;
  std::mt19937 rng(11);
  const uint32_t sizes[] = {1,    3,    17,   100,   1000,
                            1500, 4096, 9000, 20000, 40000};
  std::vector<uint32_t> plan;
  size_t total = 0;
  while (total < total_target) {
    const uint32_t size = sizes[rng() % std::size(sizes)];
    plan.push_back(size);
    total += size;
  }
  // Then thousands of tiny ones, queued behind the full socket: more than
  // IOV_MAX (1024) buffers wait at once, so a write covers only a part.
  for (int i = 0; i < 3000; ++i) {
    const uint32_t size = 1 + rng() % 64;
    plan.push_back(size);
    total += size;
  }
  std::vector<std::byte> expected;
  expected.reserve(total);
  for (size_t b = 0; b < plan.size(); ++b) {
    for (size_t i = 0; i < plan[b]; ++i) expected.push_back(PatternByte(b, i));
  }

  size_t at = 0;
  for (size_t b = 0; b < plan.size(); ++b) {
    SendBufferRef buffer = SendBufferManager::Instance().Open(plan[b]);
    std::memcpy(buffer->Buffer(), expected.data() + at, plan[b]);
    buffer->Close(plan[b]);
    at += plan[b];
    ASSERT_TRUE(session->Send(std::move(buffer))) << "buffer " << b;
  }
  // Nothing read yet: the socket is full and the last write came back short.
  EXPECT_TRUE(WaitFor([&] { return server->GetStats().partial_writes > 0; }))
      << "no partial write with " << total << " bytes queued";
  const std::optional<std::vector<std::byte>> received = client.ReadSlowly(
      total, 1500, std::chrono::microseconds(20), std::chrono::seconds(60));
  ASSERT_TRUE(received.has_value()) << "the stream stopped short";
  ASSERT_EQ(received->size(), expected.size());
  const auto mismatch =
      std::mismatch(received->begin(), received->end(), expected.begin());
  EXPECT_TRUE(mismatch.first == received->end())
      << "first wrong byte at offset " << (mismatch.first - received->begin());

  EXPECT_TRUE(WaitFor([&] {
    return server->GetStats().packets_out == plan.size();
  })) << "packets_out "
      << server->GetStats().packets_out << " of " << plan.size();
  const NetStats stats = server->GetStats();
  EXPECT_EQ(stats.bytes_out, total);
  EXPECT_GT(stats.partial_writes, 0u) << "no write was ever partial";
  EXPECT_LT(stats.write_syscalls, plan.size()) << "no gathering at all";
  EXPECT_TRUE(WaitFor([&] { return session->PendingSendBytes() == 0; }));
  EXPECT_TRUE(client.IsQuiet(std::chrono::milliseconds(20)));
}

INSTANTIATE_TEST_SUITE_P(Backends, ConcurrentSendTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
