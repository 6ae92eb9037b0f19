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

// A service and a client with a small window that reads nothing (or as the
// test says): session_ is the server's session for it.
class SmallWindowTest : public BackendTest {
 protected:
  // The caller returns unless Started().
  void StartWithSmallWindow(std::chrono::milliseconds stall_timeout,
                            size_t max_pending_bytes = kNeverReached) {
    ServiceOptions options = Options();
    options.max_pending_bytes = max_pending_bytes;
    options.send_stall_timeout = stall_timeout;
    SERVERCORE_START_SERVER(
        server,
        [this] { return std::make_shared<RecordingSession>(registry_); },
        options);
    server_ = std::move(server);
    session_ = ConnectSmallWindow(client_, server_->port(), registry_);
    ASSERT_NE(session_, nullptr);
  }
  bool Started() const { return !IsSkipped() && !HasFatalFailure(); }

  // Queues `packets` packets of `payload` bytes for the client (while the
  // session lasts) and hands this thread's chunk back, so that only the
  // queue keeps them.
  void Queue(int packets, size_t payload) {
    const std::vector<std::byte> bytes(payload);
    for (int i = 0; i < packets && session_->IsConnected(); ++i) {
      session_->Send(MakePacket(2, bytes));
    }
    SendBufferManager::Instance().ReleaseThreadChunk();
  }

  // So that only a stall timeout can cut a session off.
  static constexpr size_t kNeverReached = size_t{512} << 20;

  Registry registry_;
  std::unique_ptr<ServerService> server_;
  TestClient client_;
  SessionRef session_;
};

class StallTest : public SmallWindowTest {};

TEST_P(StallTest, PeerThatStopsReadingIsDisconnectedAfterTheTimeout) {
  StartWithSmallWindow(std::chrono::milliseconds(300));
  if (!Started()) return;
  // Fill the socket buffers (the client never reads), then keep a little
  // more queued so a write stays pending.
  Queue(2000, 4000);
  ASSERT_TRUE(WaitFor([&] { return registry_.disconnected.load() == 1; },
                      std::chrono::seconds(10)));
  EXPECT_EQ(registry_.reason.load(),
            static_cast<int>(DisconnectReason::kSlowReceiver));
  EXPECT_EQ(server_->GetStats().closed(DisconnectReason::kSlowReceiver), 1u);
}

TEST_P(StallTest, SlowButSteadyReaderIsNotDisconnected) {
  // The stall timeout is ten sip intervals: a loaded, sanitized run may
  // stretch one sip several times over, and must not be cut for it. A reader
  // that stopped would still be cut after one timeout.
  StartWithSmallWindow(std::chrono::milliseconds(1000));
  if (!Started()) return;
  // ~1.4 MB read in 40 KB sips every 100 ms: over 3.5 s, more than three
  // stall timeouts, with the server's writes blocked all along.
  constexpr int kPackets = 1400;
  constexpr size_t kPayload = 1000;
  Queue(kPackets, kPayload);
  size_t total = 0;
  const size_t expected = kPackets * (kPayload + 4);
  while (total < expected) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto bytes =
        client_.ReadExactly(std::min<size_t>(40'000, expected - total));
    ASSERT_TRUE(bytes.has_value()) << "cut off after " << total << " bytes";
    total += bytes->size();
  }
  EXPECT_EQ(registry_.disconnected.load(), 0);
}

// The default is never: a peer that stops reading while under
// max_pending_bytes keeps its session, for as long as it likes, and loses
// nothing when it reads again (docs/PROTOCOL.md names no other limit).
TEST_P(StallTest, PeerThatStopsReadingStaysWhenThereIsNoTimeout) {
  ASSERT_EQ(ServiceOptions{}.send_stall_timeout, std::chrono::milliseconds(0));
  StartWithSmallWindow(ServiceOptions{}.send_stall_timeout);
  if (!Started()) return;
  // As in the first test: far more than the socket buffers take.
  constexpr int kPackets = 2000;
  constexpr size_t kPayload = 4000;
  Queue(kPackets, kPayload);
  // Two sweeps (once a second with no timeout set) and more.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(registry_.disconnected.load(), 0);
  EXPECT_TRUE(session_->IsConnected());
  auto bytes = client_.ReadExactly(kPackets * (kPayload + 4));
  ASSERT_TRUE(bytes.has_value()) << "a write stalled for 2.5 s was cut";
  EXPECT_EQ(registry_.disconnected.load(), 0);
}

class ChunkPinTest : public SmallWindowTest {};

// The other half of review finding B2, and what bounds a peer that stopped
// reading when no stall timeout is set (the default): sent small buffers
// that each sit in a chunk of their own, it is cut off by max_pending_bytes
// long before those chunks add up: each such buffer is charged its whole
// chunk, not its 100 bytes.
TEST_P(ChunkPinTest, SmallBuffersInChunksOfTheirOwnAreChargedTheChunk) {
  StartWithSmallWindow(std::chrono::milliseconds(0), 1u << 20);
  if (!Started()) return;
  SendBufferManager& manager = SendBufferManager::Instance();
  const uint32_t chunk_room =
      manager.options().chunk_size - 64 - SendBufferChunk::kBufferOverhead;
  const std::vector<std::byte> payload(96);
  uint64_t peak_pinned = 0;
  int sent = 0;
  for (; sent < 100000 && session_->IsConnected(); ++sent) {
    SendBufferRef packet = MakePacket(2, payload);
    // A filler takes the rest of a fresh chunk, so the next packet starts
    // another one; the filler goes, the packet keeps its chunk alive.
    SendBufferRef filler = manager.Open(chunk_room - 128);
    filler->Close(0);
    filler.reset();
    session_->Send(std::move(packet));
    peak_pinned = std::max(peak_pinned, manager.GetStats().bytes_pinned);
  }
  manager.ReleaseThreadChunk();
  ASSERT_TRUE(WaitFor([&] { return registry_.disconnected.load() == 1; }));
  EXPECT_EQ(registry_.reason.load(),
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
