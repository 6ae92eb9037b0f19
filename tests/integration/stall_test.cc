// A peer that stops reading is cut off after ServiceOptions::
// send_stall_timeout even while its backlog is under max_pending_bytes: the
// guard against a few small queued buffers pinning whole chunks for ever
// (adversarial review of the send path, finding B2).
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

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

// max_pending_bytes is never reached in these tests: only the stall timeout
// can cut a session off.
ServiceOptions StallOptions(ServiceOptions options) {
  options.max_pending_bytes = 512u << 20;
  options.send_stall_timeout = std::chrono::milliseconds(300);
  return options;
}

TEST_P(StallTest, PeerThatStopsReadingIsDisconnectedAfterTheTimeout) {
  Registry registry;
  const ServiceOptions options = StallOptions(Options());
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<RecordingSession>(registry); },
      options);
  TestClient client;
  client.SetReceiveBuffer(4096);
  ASSERT_TRUE(client.Connect(server->port()));
  SessionRef session = registry.WaitForFirst();
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
  const ServiceOptions options = StallOptions(Options());
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<RecordingSession>(registry); },
      options);
  TestClient client;
  client.SetReceiveBuffer(4096);
  ASSERT_TRUE(client.Connect(server->port()));
  SessionRef session = registry.WaitForFirst();
  ASSERT_NE(session, nullptr);
  const std::vector<std::byte> payload(1000);
  constexpr int kPackets = 400;  // ~400 KB, read in small sips over ~1.2 s
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

INSTANTIATE_TEST_SUITE_P(Backends, StallTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
