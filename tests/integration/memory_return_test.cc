// Memory goes back (issue 12, docs/PROTOCOL.md "Slow receivers"): after a
// crowd of sessions has come, each holding a packet begun, and gone, the
// process's resident memory returns to within a few MiB of what it was
// before, within 10 seconds, on both backends.
//
// Guards against the pools keeping their peak: before the fix every receive
// page a session had touched stayed resident (PagePool never gave
// pages back) and what the sessions had malloc'd stayed in malloc's arenas;
// this test then kept about 40 MiB more than before. scripts/memory_spike.sh
// does the same against GameServer with 15,000 sessions (docs/SOAK.md).
//
// Skipped under the sanitizers: their allocators keep freed memory
// (quarantine, shadow), so RSS says nothing there.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "memory_reclaimer.h"
#include "servercore/packet_writer.h"
#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

class MemoryReturnTest : public BackendTest {};

// Takes every packet and answers nothing.
class SwallowSession : public PacketSession {
 public:
  using PacketSession::PacketSession;

 protected:
  void OnRecvPacket(uint16_t, std::span<const std::byte>) override {}
};

constexpr size_t kMiB = size_t{1} << 20;

// Within 10 s, the process's resident memory is back within `slack` of
// `before` (waits no longer than that takes).
void ExpectResidentWithin(size_t before, size_t slack) {
  const auto start = std::chrono::steady_clock::now();
  size_t after = ResidentBytes();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(10) &&
         after > before + slack) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    after = ResidentBytes();
  }
  std::printf("[ memory ] after they left: %.1f MiB\n",
              static_cast<double>(after) / kMiB);
  EXPECT_LE(after, before + slack)
      << "RSS " << after / kMiB << " MiB, before " << before / kMiB << " MiB";
}

// One session come and gone (threads, arenas, first slabs), what it left
// given back; then *resident is where the test starts from.
void WarmUp(ServerService& server, size_t* resident) {
  {
    TestClient warm;
    ASSERT_TRUE(warm.Connect(server.port()));
    ASSERT_TRUE(WaitFor([&] { return server.SessionCount() == 1; }));
  }
  ASSERT_TRUE(WaitFor([&] { return server.SessionCount() == 0; }));
  internal::MemoryReclaimer::Instance().Reclaim();
  *resident = ResidentBytes();
}

TEST_P(MemoryReturnTest, ResidentMemoryReturnsAfterACrowdLeaves) {
  if (kSanitized) GTEST_SKIP() << "RSS is meaningless under a sanitizer";
  constexpr size_t kSessions = 2000;
  static constexpr size_t kPacket = 16 * 1024;  // fills a receive buffer
  ServiceOptions options = Options();
  options.recv_buffer_size = kPacket;
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<SwallowSession>(kPacket); },
      options);
  size_t before = 0;
  ASSERT_NO_FATAL_FAILURE(WarmUp(*server, &before));

  {
    // Each sends all of a packet but its last byte: the session keeps the
    // packet begun, kPacket bytes of receive memory, until it closes.
    std::vector<TestClient> clients(kSessions);
    std::vector<std::byte> packet(kPacket - 1, std::byte{0x42});
    const uint16_t header[2] = {static_cast<uint16_t>(kPacket), 7};
    std::memcpy(packet.data(), header, sizeof(header));
    for (size_t i = 0; i < kSessions; ++i) {
      ASSERT_TRUE(clients[i].Connect(server->port())) << i;
      ASSERT_TRUE(clients[i].SendAll(packet)) << i;
    }
    ASSERT_TRUE(WaitFor([&] {
      return server->GetStats().memory_used >= kSessions * kPacket;
    })) << server->GetStats().memory_used;
    const size_t peak = ResidentBytes();
    std::printf("[ memory ] %zu sessions: RSS before %.1f MiB, peak %.1f MiB\n",
                kSessions, static_cast<double>(before) / kMiB,
                static_cast<double>(peak) / kMiB);
    // The crowd really cost memory: its receive tails alone are 32 MiB.
    EXPECT_GT(peak, before + 24 * kMiB);
  }
  ASSERT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }));

  const auto start = std::chrono::steady_clock::now();
  size_t after = ResidentBytes();
  bool back = false;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    after = ResidentBytes();
    if (after <= before + 8 * kMiB) {
      back = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("[ memory ] after they left: %.1f MiB within %.1f s\n",
              static_cast<double>(after) / kMiB, seconds);
  EXPECT_TRUE(back) << "RSS " << after / kMiB << " MiB, before "
                    << before / kMiB << " MiB";
  server->Stop();
}

// On any packet, queues packets of 60,000 bytes to its own client, each
// larger than a chunk, so in a buffer of its own: 4 MiB more than the
// kernel's send buffer may take. The kernel grows a socket's send buffer up
// to tcp_wmem's maximum (4 MiB by default) even for a client with a tiny
// receive buffer, and now and then does at once: with a fixed 3.7 MiB per
// session, about 1 run in 100 found almost all of it in the kernel.
class FloodSession : public PacketSession {
 public:
  static constexpr size_t kPayload = 60000;
  static size_t Burst() {
    static const size_t burst = (MaxSocketSendBuffer() + 4 * kMiB) / kPayload;
    return burst;
  }
  using PacketSession::PacketSession;

 protected:
  void OnRecvPacket(uint16_t, std::span<const std::byte>) override {
    static const std::vector<std::byte> payload(kPayload, std::byte{0x5a});
    for (size_t i = 0; i < Burst(); ++i) Send(MakePacket(9, payload));
  }
};

// A few sessions (fewer than a crowd) that queued megabytes of large
// packets and never read them: the buffers go straight back to malloc when
// the sessions close, and from there to the kernel. Before the fix this
// kept about 40 MiB (20 such sessions, found by an outside probe).
TEST_P(MemoryReturnTest,
       ResidentMemoryReturnsAfterAFewNonReadersOfLargePackets) {
  if (kSanitized) GTEST_SKIP() << "RSS is meaningless under a sanitizer";
  constexpr size_t kSessions = 8;
  ServiceOptions options = Options();
  options.max_pending_bytes = 64 * kMiB;
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<FloodSession>(4096); }, options);
  size_t before = 0;
  ASSERT_NO_FATAL_FAILURE(WarmUp(*server, &before));
  {
    std::vector<TestClient> clients(kSessions);
    for (TestClient& client : clients) {
      client.SetReceiveBuffer(4096);
      ASSERT_TRUE(client.Connect(server->port()));
      ASSERT_TRUE(client.SendPacket(1, {}));
    }
    // Most of it queued (the kernel's socket buffers take the rest).
    ASSERT_TRUE(WaitFor([&] {
      return server->GetStats().send_buffers.bytes_pinned >=
             kSessions * 2 * kMiB;
    })) << server->GetStats().send_buffers.bytes_pinned;
    const size_t peak = ResidentBytes();
    std::printf("[ memory ] RSS before %.1f MiB, peak %.1f MiB\n",
                static_cast<double>(before) / kMiB,
                static_cast<double>(peak) / kMiB);
    EXPECT_GT(peak, before + 12 * kMiB);
  }
  ASSERT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }));
  ExpectResidentWithin(before, 8 * kMiB);
  server->Stop();
}

constexpr size_t kFloodPacket = 4096;
constexpr size_t kFloodBytes = 4 * kMiB;  // per session

// Floods every worker of `server` (kWorkers of them) at once: 4 sessions
// each, each sending kFloodBytes of packets, so that every worker has more
// to read in a round than the buffers it holds and runs dry until it holds
// all it may. Sets *peak to the process's resident memory once all was
// read, while the flood (kFloodBytes) is still held here, and prints it
// beside `before`; the sessions are closed on return.
void FloodEveryWorker(ServerService& server, size_t workers, size_t before,
                      size_t* peak) {
  const size_t sessions = 4 * workers;
  std::vector<std::byte> flood(kFloodBytes);
  for (size_t at = 0; at < kFloodBytes; at += kFloodPacket) {
    const uint16_t header[2] = {static_cast<uint16_t>(kFloodPacket), 7};
    std::memcpy(flood.data() + at, header, sizeof(header));
  }
  std::vector<TestClient> clients(sessions);
  for (TestClient& client : clients) {
    ASSERT_TRUE(client.Connect(server.port()));
  }
  std::vector<std::thread> senders;
  std::atomic<size_t> sent{0};
  for (size_t t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (size_t i = t; i < sessions; i += 4) {
        if (clients[i].SendAll(flood)) sent.fetch_add(1);
      }
    });
  }
  for (std::thread& sender : senders) sender.join();
  ASSERT_EQ(sent.load(), sessions);
  ASSERT_TRUE(WaitFor([&] {
    return server.GetStats().packets_in >=
           sessions * kFloodBytes / kFloodPacket;
  })) << server.GetStats().packets_in;
  *peak = ResidentBytes();
  std::printf("[ memory ] RSS before %.1f MiB, peak %.1f MiB\n",
              static_cast<double>(before) / kMiB,
              static_cast<double>(*peak) / kMiB);
}

// Every worker of eight read a flood, then all its sessions went. On
// io_uring each worker's provided buffers (2 MiB of them) had all been
// written, and a worker with nothing more to read never shrank what the
// kernel held: eight workers kept 13 MiB after the clients had gone (an
// outside measurement of GameServer; one worker per core is the default, so
// a larger machine keeps more). IoBackend::ReleaseIdleMemory gives them back
// once a worker has been quiet for a second.
TEST_P(MemoryReturnTest, ResidentMemoryReturnsAfterEveryWorkerReadAFlood) {
  if (kSanitized) GTEST_SKIP() << "RSS is meaningless under a sanitizer";
  constexpr size_t kWorkers = 8;
  ServiceOptions options = Options();
  options.worker_threads = kWorkers;
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<SwallowSession>(kFloodPacket); },
      options);
  size_t before = 0;
  ASSERT_NO_FATAL_FAILURE(WarmUp(*server, &before));
  size_t peak = 0;
  ASSERT_NO_FATAL_FAILURE(FloodEveryWorker(*server, kWorkers, before, &peak));
  // The flood reached every worker's buffers (16 MiB of them; the flood
  // itself, 4 MiB, was held here too).
  if (GetParam() == Backend::kUring) {
    EXPECT_GT(peak, before + 12 * kMiB);
  }
  ASSERT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }));
  ExpectResidentWithin(before, 4 * kMiB);
  server->Stop();
}

// The same flood under a 32 MiB budget: the workers' read buffers together
// hold at most an eighth of it (MemoryBudget::worker_read_bytes), 512 KiB
// each. They are the workers', not the sessions', so the budget does not
// count them; before this bound eight workers' 16 MiB came on top of it.
TEST_P(MemoryReturnTest, EveryWorkersReadBuffersStayWithinAnEighthOfTheBudget) {
  if (kSanitized) GTEST_SKIP() << "RSS is meaningless under a sanitizer";
  constexpr size_t kWorkers = 8;
  constexpr size_t kBudget = 32 * kMiB;
  ServiceOptions options = Options();
  options.worker_threads = kWorkers;
  options.max_memory = kBudget;
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<SwallowSession>(kFloodPacket); },
      options);
  size_t before = 0;
  ASSERT_NO_FATAL_FAILURE(WarmUp(*server, &before));
  size_t peak = 0;
  ASSERT_NO_FATAL_FAILURE(FloodEveryWorker(*server, kWorkers, before, &peak));
  // The flood held here, the buffers' eighth of the budget, and 2 MiB for
  // the rest (the sessions, their tails, malloc).
  EXPECT_LE(peak, before + kFloodBytes + kBudget / 8 + 2 * kMiB)
      << "RSS " << peak / kMiB << " MiB, before " << before / kMiB << " MiB";
  server->Stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, MemoryReturnTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
