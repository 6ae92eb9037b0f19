// Broadcast, the design's main use: one SendBuffer queued to many sessions.
// Every receiver gets it exactly once, byte for byte; and the classic bug of
// this design (a duplicate or a crash when one receiver is cut off in the
// middle of a broadcast) must not happen.
#include <gtest/gtest.h>

#include <atomic>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

class BroadcastTest : public BackendTest {};

constexpr uint16_t kBroadcastId = 6;

std::vector<std::byte> RoundPayload(uint64_t round, size_t size) {
  std::vector<std::byte> payload(size);
  for (size_t i = 0; i < size; ++i) payload[i] = PatternByte(round, i);
  return payload;
}

// The same SendBufferRef is sent to 500 sessions, over several rounds of
// different sizes (one larger than a chunk, so a dedicated buffer): each
// client receives each round's packet exactly once, byte for byte, and the
// sessions let go of the buffer once it is written.
TEST_P(BroadcastTest, OneBufferToFiveHundredSessions) {
  constexpr size_t kClients = 500;
  SessionTracker tracker;
  ServiceOptions options = Options();
  options.recv_buffer_size = 4096;
  SERVERCORE_START_SERVER(server, tracker.Factory(), options);
  const SendBufferManager::Stats before = PoolStatsWithoutThisThread();
  {
    std::vector<TestClient> clients(kClients);
    ASSERT_TRUE(ConnectTagged(server->port(), clients));
    const auto sessions = tracker.WaitForTags(kClients);
    ASSERT_EQ(sessions.size(), kClients);

    const size_t sizes[] = {16, 1000, 4000, 20000, 40000};
    size_t bytes_per_client = 8;  // the tag's echo
    for (size_t round = 0; round < std::size(sizes); ++round) {
      const std::vector<std::byte> payload = RoundPayload(round, sizes[round]);
      SendBufferRef buffer = MakePacket(kBroadcastId, payload);
      for (const auto& session : sessions) {
        ASSERT_TRUE(session->Send(buffer)) << "session " << session->tag();
      }
      for (size_t i = 0; i < kClients; ++i) {
        auto packet = clients[i].ReadPacket();
        ASSERT_TRUE(packet.has_value()) << "round " << round << " client " << i;
        ASSERT_EQ(packet->id, kBroadcastId);
        ASSERT_TRUE(packet->payload == payload)
            << "round " << round << " client " << i << " got "
            << packet->payload.size() << " bytes, differing";
      }
      // Every session has written it: only our reference is left.
      EXPECT_TRUE(WaitFor([&] { return buffer.use_count() == 1; }))
          << "round " << round << ": " << buffer.use_count() << " references";
      bytes_per_client += sizes[round] + 4;
    }
    const NetStats stats = server->GetStats();
    // Exactly once: no buffer written twice, no byte more.
    EXPECT_EQ(stats.packets_out, kClients * (1 + std::size(sizes)));
    EXPECT_EQ(stats.bytes_out, kClients * bytes_per_client);
  }
  EXPECT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }));
  server->Stop();
  EXPECT_EQ(tracker.disconnected(), static_cast<int>(kClients));
  EXPECT_EQ(tracker.closed(DisconnectReason::kPeerClosed),
            static_cast<int>(kClients));
  const SendBufferManager::Stats after = PoolStatsWithoutThisThread();
  EXPECT_EQ(after.chunks_in_use, before.chunks_in_use);
  EXPECT_EQ(after.bytes_pinned, before.bytes_pinned);
  EXPECT_EQ(after.dedicated_live, before.dedicated_live);
}

// The classic bug: a broadcast to N receivers while one receiver, which
// never reads, passes max_pending_bytes and is cut off in the middle of a
// broadcast loop (it sits in the middle of the send order). The others get
// every broadcast exactly once, in order; the slow one is disconnected with
// kSlowReceiver, once.
TEST_P(BroadcastTest, SlowReceiverCutOffMidBroadcastOthersGetEverything) {
  constexpr size_t kReaders = 8;
  constexpr size_t kBatch = 16;
  constexpr size_t kMaxMessages = 40000;
  SessionTracker tracker;
  ServiceOptions options = Options();
  // Well above what readers can lag by: the pacing below lets a reader have
  // at most two batches unaccounted (one written but its completion not yet
  // processed by the worker, one being queued).
  options.max_pending_bytes = 256 * 1024;
  SERVERCORE_START_SERVER(server, tracker.Factory(), options);
  const SendBufferManager::Stats before = PoolStatsWithoutThisThread();

  // Tags 0..kReaders-1 read; tag kReaders never reads (not even its echo).
  std::vector<TestClient> clients(kReaders + 1);
  clients[kReaders].SetReceiveBuffer(4096);
  ASSERT_TRUE(ConnectTagged(server->port(), clients));
  const auto sessions = tracker.WaitForTags(kReaders + 1);
  ASSERT_EQ(sessions.size(), kReaders + 1);
  const auto slow = sessions[kReaders];
  std::vector<std::shared_ptr<TrackedSession>> order(sessions.begin(),
                                                     sessions.end() - 1);
  order.insert(order.begin() + kReaders / 2, slow);

  // Message `seq`: [u64 seq][filler], 2 KiB or so.
  auto message = [](uint64_t seq) {
    std::vector<std::byte> payload(8 + 1500 + seq % 700);
    std::memcpy(payload.data(), &seq, 8);
    for (size_t i = 8; i < payload.size(); ++i) {
      payload[i] = PatternByte(seq, i);
    }
    return payload;
  };

  std::atomic<uint64_t> target{std::numeric_limits<uint64_t>::max()};
  std::atomic<uint64_t> published{0};  // broadcast so far
  std::vector<std::atomic<uint64_t>> received(kReaders);
  std::mutex failure_mu;
  std::string failure;
  std::vector<std::thread> readers;
  // On an early return: stop the server, so every reader sees its connection
  // end, and join them.
  ScopeExit join_readers([&] {
    target.store(0);
    if (!readers.empty()) server->Stop();
    for (std::thread& t : readers) t.join();
    readers.clear();
  });
  for (size_t r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      for (;;) {
        const uint64_t seq = received[r].load();
        if (seq >= target.load()) return;
        if (seq >= published.load()) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        auto packet = clients[r].ReadPacket();
        std::string error;
        if (!packet) {
          error = "no packet";
        } else if (packet->id != kBroadcastId ||
                   packet->payload != message(seq)) {
          uint64_t got = 0;
          if (packet->payload.size() >= 8) {
            std::memcpy(&got, packet->payload.data(), 8);
          }
          error = "packet " + std::to_string(got) + " differs";
        }
        if (!error.empty()) {
          std::lock_guard lock(failure_mu);
          failure += "reader " + std::to_string(r) + " expecting " +
                     std::to_string(seq) + ": " + error + "; ";
          return;
        }
        received[r].fetch_add(1);
      }
    });
  }

  uint64_t sent = 0;
  uint64_t sent_after_cut = 0;
  int slow_refused = 0;
  while (sent < kMaxMessages && sent_after_cut < 20 * kBatch) {
    for (size_t b = 0; b < kBatch; ++b, ++sent) {
      SendBufferRef buffer = MakePacket(kBroadcastId, message(sent));
      for (const auto& session : order) {
        const bool queued = session->Send(buffer);
        if (session == slow) {
          slow_refused += !queued;
        } else {
          ASSERT_TRUE(queued) << "reader session " << session->tag()
                              << " refused message " << sent;
        }
      }
    }
    published.store(sent);
    if (!slow->IsConnected()) sent_after_cut += kBatch;
    // Pace on the readers so only the one that never reads falls behind.
    const bool kept_up = WaitFor([&] {
      for (const auto& count : received) {
        if (count.load() < sent) return false;
      }
      return true;
    });
    {
      std::lock_guard lock(failure_mu);
      ASSERT_TRUE(kept_up && failure.empty())
          << "after " << sent << " messages: " << failure;
    }
  }
  target.store(sent);
  for (std::thread& t : readers) t.join();
  readers.clear();
  ASSERT_TRUE(failure.empty()) << failure;
  ASSERT_FALSE(slow->IsConnected())
      << "never cut off after " << sent << " messages; pending "
      << slow->PendingSendBytes();
  EXPECT_GT(slow_refused, 0);

  for (size_t r = 0; r < kReaders; ++r) {
    EXPECT_EQ(received[r].load(), sent) << "reader " << r;
    EXPECT_TRUE(clients[r].IsQuiet(std::chrono::milliseconds(20)))
        << "reader " << r << " got more than was broadcast";
  }
  EXPECT_TRUE(clients[kReaders].WaitForClose()) << "slow client not closed";
  EXPECT_TRUE(WaitFor([&] { return slow->disconnects() == 1; }));
  EXPECT_EQ(slow->reason(), DisconnectReason::kSlowReceiver);
  EXPECT_TRUE(WaitFor([&] { return server->SessionCount() == kReaders; }));
  NetStats stats = server->GetStats();
  EXPECT_EQ(stats.closed(DisconnectReason::kSlowReceiver), 1u);
  EXPECT_EQ(stats.sessions_closed(), 1u);
  for (const auto& session : order) {
    if (session != slow) {
      EXPECT_TRUE(session->IsConnected());
    }
  }

  clients.clear();
  EXPECT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }));
  server->Stop();
  stats = server->GetStats();
  EXPECT_EQ(stats.closed(DisconnectReason::kSlowReceiver), 1u);
  EXPECT_EQ(stats.closed(DisconnectReason::kPeerClosed), kReaders);
  EXPECT_EQ(tracker.disconnected(), static_cast<int>(kReaders + 1));
  for (const auto& session : sessions) EXPECT_EQ(session->disconnects(), 1);
  const SendBufferManager::Stats after = PoolStatsWithoutThisThread();
  EXPECT_EQ(after.chunks_in_use, before.chunks_in_use);
  EXPECT_EQ(after.bytes_pinned, before.bytes_pinned);
}

// The same with two threads broadcasting at once, each its own numbered
// stream, so the slow receiver is cut off by one thread's Send while the
// other is queueing to it too: each reader gets both streams complete, each
// in order, nothing twice.
TEST_P(BroadcastTest, SlowReceiverCutOffWhileTwoThreadsBroadcast) {
  constexpr size_t kReaders = 6;
  constexpr uint32_t kSenders = 2;
  constexpr uint32_t kBatch = 8;
  constexpr uint32_t kMaxPerSender = 20000;
  constexpr size_t kExtra = 1500;  // payloads of 1.5-1.8 KiB
  SessionTracker tracker;
  ServiceOptions options = Options();
  // Well above what readers can lag by: the pacing below lets a reader have
  // at most two batches unaccounted (one written but its completion not yet
  // processed by the worker, one being queued).
  options.max_pending_bytes = 256 * 1024;
  SERVERCORE_START_SERVER(server, tracker.Factory(), options);
  const SendBufferManager::Stats before = PoolStatsWithoutThisThread();

  std::vector<TestClient> clients(kReaders + 1);
  clients[kReaders].SetReceiveBuffer(4096);
  ASSERT_TRUE(ConnectTagged(server->port(), clients));
  const auto sessions = tracker.WaitForTags(kReaders + 1);
  ASSERT_EQ(sessions.size(), kReaders + 1);
  const auto slow = sessions[kReaders];
  std::vector<std::shared_ptr<TrackedSession>> order(sessions.begin(),
                                                     sessions.end() - 1);
  order.insert(order.begin() + kReaders / 2, slow);

  // received[r * kSenders + s]: packets of sender s that reader r has.
  std::vector<std::atomic<uint32_t>> received(kReaders * kSenders);
  std::atomic<bool> done{false};
  std::mutex failure_mu;
  std::string failure;
  auto fail = [&](const std::string& what) {
    std::lock_guard lock(failure_mu);
    failure += what + "; ";
  };
  auto failed = [&] {
    std::lock_guard lock(failure_mu);
    return !failure.empty();
  };
  std::vector<uint32_t> sent(kSenders, 0);
  std::vector<std::thread> threads;
  ScopeExit join([&] {
    done.store(true);
    server->Stop();
    for (std::thread& t : threads) t.join();
  });
  for (size_t r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      SequenceChecker checker(kSenders, kExtra);
      while (!done.load()) {
        if (!clients[r].IsQuiet(std::chrono::milliseconds(0)) ||
            !clients[r].IsQuiet(std::chrono::milliseconds(5))) {
          auto packet = clients[r].ReadPacket();
          const std::string error = packet
                                        ? checker.Check(*packet, kBroadcastId)
                                        : std::string("no packet");
          if (!error.empty()) {
            fail("reader " + std::to_string(r) + ": " + error);
            return;
          }
          for (uint32_t s = 0; s < kSenders; ++s) {
            received[r * kSenders + s].store(checker.next(s));
          }
        }
      }
    });
  }
  std::atomic<int> slow_refused{0};
  for (uint32_t s = 0; s < kSenders; ++s) {
    threads.emplace_back([&, s] {
      uint32_t after_cut = 0;
      uint32_t seq = 0;
      while (seq < kMaxPerSender && after_cut < 20 * kBatch && !failed()) {
        for (uint32_t b = 0; b < kBatch; ++b, ++seq) {
          SendBufferRef buffer =
              MakePacket(kBroadcastId, SequencedPayload(s, seq, kExtra));
          for (const auto& session : order) {
            if (session->Send(buffer)) continue;
            if (session == slow) {
              slow_refused.fetch_add(1);
            } else {
              fail("reader session " + std::to_string(session->tag()) +
                   " refused sender " + std::to_string(s) + " seq " +
                   std::to_string(seq));
            }
          }
        }
        if (!slow->IsConnected()) after_cut += kBatch;
        // Pace on the readers, for this sender's stream.
        if (!WaitFor([&] {
              for (size_t r = 0; r < kReaders; ++r) {
                if (received[r * kSenders + s].load() < seq) return false;
              }
              return true;
            })) {
          fail("readers fell behind sender " + std::to_string(s));
        }
      }
      sent[s] = seq;
      SendBufferManager::Instance().ReleaseThreadChunk();
    });
  }
  for (size_t i = kReaders; i < threads.size(); ++i) threads[i].join();
  threads.resize(kReaders);  // the broadcasters are done
  ASSERT_FALSE(failed()) << failure;
  ASSERT_FALSE(slow->IsConnected()) << "never cut off";
  EXPECT_GT(slow_refused.load(), 0);
  // Everything sent has arrived (the pacing waited for it); nothing more
  // comes.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  done.store(true);
  for (std::thread& t : threads) t.join();
  threads.clear();
  ASSERT_FALSE(failed()) << failure;
  for (size_t r = 0; r < kReaders; ++r) {
    for (uint32_t s = 0; s < kSenders; ++s) {
      EXPECT_EQ(received[r * kSenders + s].load(), sent[s])
          << "reader " << r << " sender " << s;
    }
    EXPECT_TRUE(clients[r].IsQuiet(std::chrono::milliseconds(10)));
  }

  EXPECT_TRUE(clients[kReaders].WaitForClose()) << "slow client not closed";
  EXPECT_TRUE(WaitFor([&] { return slow->disconnects() == 1; }));
  EXPECT_EQ(slow->reason(), DisconnectReason::kSlowReceiver);
  clients.clear();
  EXPECT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }));
  server->Stop();
  const NetStats stats = server->GetStats();
  EXPECT_EQ(stats.closed(DisconnectReason::kSlowReceiver), 1u);
  EXPECT_EQ(stats.closed(DisconnectReason::kPeerClosed), kReaders);
  for (const auto& session : sessions) EXPECT_EQ(session->disconnects(), 1);
  const SendBufferManager::Stats after = PoolStatsWithoutThisThread();
  EXPECT_EQ(after.chunks_in_use, before.chunks_in_use);
  EXPECT_EQ(after.bytes_pinned, before.bytes_pinned);
}

INSTANTIATE_TEST_SUITE_P(Backends, BroadcastTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
