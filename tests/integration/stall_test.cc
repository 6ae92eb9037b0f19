// A peer that stops reading is cut off after ServiceOptions::
// send_stall_timeout, when one is set, even while its backlog is under
// max_pending_bytes; by default it is not. Either way a few small queued
// buffers cannot pin whole chunks for ever: each is charged its chunk
// (adversarial review of the send path, finding B2).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "send_buffer_chunk.h"
#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

class StallTest : public BackendTest {};

// Remembers the first session so the test can send to it.
struct Registry {
  std::mutex mu;
  SessionRef first;
  std::atomic<int> disconnected{0};
  std::atomic<int> reason{-1};

  // The first session, once its OnConnected ran; null after 10 s.
  SessionRef WaitForFirst() {
    WaitFor([this] {
      std::lock_guard lock(mu);
      return first != nullptr;
    });
    std::lock_guard lock(mu);
    return first;
  }
};

class RecordingSession : public EchoSession {
 public:
  explicit RecordingSession(Registry& registry) : registry_(registry) {}

 protected:
  void OnConnected() override {
    std::lock_guard lock(registry_.mu);
    if (!registry_.first) registry_.first = shared_from_this();
  }
  void OnDisconnected(DisconnectReason reason) override {
    registry_.reason = static_cast<int>(reason);
    registry_.disconnected.fetch_add(1);
  }

 private:
  Registry& registry_;
};

// Connects `client` with a 4 KiB receive buffer (so the server's writes
// block soon when it reads slowly or not at all) and returns the server's
// session for it; null on failure.
SessionRef ConnectSmallWindow(TestClient& client, uint16_t port,
                              Registry& registry) {
  client.SetReceiveBuffer(4096);
  if (!client.Connect(port)) return nullptr;
  return registry.WaitForFirst();
}

// max_pending_bytes is never reached in these tests: only the stall timeout
// can cut a session off.
ServiceOptions StallOptions(
    ServiceOptions options,
    std::chrono::milliseconds stall_timeout = std::chrono::milliseconds(300)) {
  options.max_pending_bytes = 512u << 20;
  options.send_stall_timeout = stall_timeout;
  return options;
}

TEST_P(StallTest, PeerThatStopsReadingIsDisconnectedAfterTheTimeout) {
  Registry registry;
  const ServiceOptions options = StallOptions(Options());
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<RecordingSession>(registry); },
      options);
  TestClient client;
  SessionRef session = ConnectSmallWindow(client, server->port(), registry);
  ASSERT_NE(session, nullptr);
  // Fill the socket buffers (the client never reads), then keep a little
  // more queued so a write stays pending.
  const std::vector<std::byte> payload(4000);
  for (int i = 0; i < 2000 && session->IsConnected(); ++i) {
    session->Send(MakePacket(2, payload));
  }
  SendBufferManager::Instance().ReleaseThreadChunk();
  ASSERT_TRUE(WaitFor([&] { return registry.disconnected.load() == 1; },
                      std::chrono::seconds(10)));
  EXPECT_EQ(registry.reason.load(),
            static_cast<int>(DisconnectReason::kSlowReceiver));
  EXPECT_EQ(server->GetStats().closed(DisconnectReason::kSlowReceiver), 1u);
}

TEST_P(StallTest, SlowButSteadyReaderIsNotDisconnected) {
  Registry registry;
  // The stall timeout is ten sip intervals: a loaded, sanitized run may
  // stretch one sip several times over, and must not be cut for it. A reader
  // that stopped would still be cut after one timeout.
  const ServiceOptions options =
      StallOptions(Options(), std::chrono::milliseconds(1000));
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<RecordingSession>(registry); },
      options);
  TestClient client;
  SessionRef session = ConnectSmallWindow(client, server->port(), registry);
  ASSERT_NE(session, nullptr);
  const std::vector<std::byte> payload(1000);
  // ~1.4 MB read in 40 KB sips every 100 ms: over 3.5 s, more than three
  // stall timeouts, with the server's writes blocked all along.
  constexpr int kPackets = 1400;
  for (int i = 0; i < kPackets; ++i) session->Send(MakePacket(2, payload));
  SendBufferManager::Instance().ReleaseThreadChunk();
  size_t total = 0;
  const size_t expected = kPackets * (payload.size() + 4);
  while (total < expected) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto bytes = client.ReadExactly(std::min<size_t>(40'000, expected - total));
    ASSERT_TRUE(bytes.has_value()) << "cut off after " << total << " bytes";
    total += bytes->size();
  }
  EXPECT_EQ(registry.disconnected.load(), 0);
  session.reset();
}

// The default is never: a peer that stops reading while under
// max_pending_bytes keeps its session, for as long as it likes, and loses
// nothing when it reads again (docs/PROTOCOL.md names no other limit).
TEST_P(StallTest, PeerThatStopsReadingStaysWhenThereIsNoTimeout) {
  Registry registry;
  const ServiceOptions options =
      StallOptions(Options(), ServiceOptions{}.send_stall_timeout);
  ASSERT_EQ(options.send_stall_timeout, std::chrono::milliseconds(0));
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<RecordingSession>(registry); },
      options);
  TestClient client;
  SessionRef session = ConnectSmallWindow(client, server->port(), registry);
  ASSERT_NE(session, nullptr);
  // As in the first test: far more than the socket buffers take.
  const std::vector<std::byte> payload(4000);
  constexpr int kPackets = 2000;
  for (int i = 0; i < kPackets; ++i) session->Send(MakePacket(2, payload));
  SendBufferManager::Instance().ReleaseThreadChunk();
  // Two sweeps (once a second with no timeout set) and more.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(registry.disconnected.load(), 0);
  EXPECT_TRUE(session->IsConnected());
  auto bytes = client.ReadExactly(kPackets * (payload.size() + 4));
  ASSERT_TRUE(bytes.has_value()) << "a write stalled for 2.5 s was cut";
  EXPECT_EQ(registry.disconnected.load(), 0);
  session.reset();
}

class ChunkPinTest : public BackendTest {};

// The other half of review finding B2: a peer that reads slowly enough to
// dodge the stall timeout, sent small buffers that each sit in a chunk of
// their own, must be cut off by max_pending_bytes long before those chunks
// add up: each such buffer is charged its whole chunk, not its 100 bytes.
TEST_P(ChunkPinTest, SmallBuffersInChunksOfTheirOwnAreChargedTheChunk) {
  Registry registry;
  ServiceOptions options = Options();
  options.max_pending_bytes = 1u << 20;
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<RecordingSession>(registry); },
      options);
  TestClient client;  // never reads
  SessionRef session = ConnectSmallWindow(client, server->port(), registry);
  ASSERT_NE(session, nullptr);

  SendBufferManager& manager = SendBufferManager::Instance();
  const uint32_t chunk_room =
      manager.options().chunk_size - 64 - SendBufferChunk::kBufferOverhead;
  const std::vector<std::byte> payload(96);
  uint64_t peak_pinned = 0;
  int sent = 0;
  for (; sent < 100000 && session->IsConnected(); ++sent) {
    SendBufferRef packet = MakePacket(2, payload);
    // A filler takes the rest of a fresh chunk, so the next packet starts
    // another one; the filler goes, the packet keeps its chunk alive.
    SendBufferRef filler = manager.Open(chunk_room - 128);
    filler->Close(0);
    filler.reset();
    session->Send(std::move(packet));
    peak_pinned = std::max(peak_pinned, manager.GetStats().bytes_pinned);
  }
  manager.ReleaseThreadChunk();
  ASSERT_TRUE(WaitFor([&] { return registry.disconnected.load() == 1; }));
  EXPECT_EQ(registry.reason.load(),
            static_cast<int>(DisconnectReason::kSlowReceiver));
  // Charged 100 bytes each, 1 MiB would have taken over 10,000 queued
  // buffers, each pinning 32 KiB: over 300 MiB. (How many were sent first
  // depends on how much the socket took, which varies with timing.)
  EXPECT_LT(peak_pinned, 64u << 20) << sent << " sent";
}

INSTANTIATE_TEST_SUITE_P(Backends, ChunkPinTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

INSTANTIATE_TEST_SUITE_P(Backends, StallTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
