// Session::OnCreated on a multi-worker server: it runs in accept order (one
// accept queue, dealt out to the workers), before OnConnected, and output
// sent from it reaches the client first, though the session only reaches its
// worker afterwards. GameServer relies on it to put a session in room 0
// before any later connection can chat (tests/apps, ChatReachesEveryClient
// WhoseConnectReturned).
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

constexpr uint16_t kHello = 7;

struct CreationLog {
  std::mutex mu;
  std::vector<const Session*> created;         // in OnCreated order
  std::map<const Session*, uint32_t> indices;  // the index each client sent
  int connected_before_created = 0;
};

class OrderSession : public PacketSession {
 public:
  explicit OrderSession(CreationLog& log) : PacketSession(4096), log_(log) {}

 protected:
  void OnCreated() override {
    {
      std::lock_guard lock(log_.mu);
      log_.created.push_back(this);
    }
    created_ = true;
    Send(MakePacket(kHello, {}));  // before the session reaches its worker
  }
  void OnConnected() override {
    if (!created_) {
      std::lock_guard lock(log_.mu);
      ++log_.connected_before_created;
    }
  }
  void OnRecvPacket(uint16_t, std::span<const std::byte> payload) override {
    uint32_t index = 0;
    std::memcpy(&index, payload.data(), sizeof(index));
    std::lock_guard lock(log_.mu);
    log_.indices[this] = index;
  }

 private:
  CreationLog& log_;
  bool created_ = false;
};

class AcceptOrderTest : public BackendTest {};

TEST_P(AcceptOrderTest, SessionsAreCreatedInAcceptOrderAndGreetFirst) {
  constexpr uint32_t kClients = 60;
  CreationLog log;
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<OrderSession>(log); }, Options());
  ASSERT_GE(server->WorkerCount(), 2u)
      << "the order only matters across workers";
  std::vector<TestClient> clients(kClients);
  for (uint32_t i = 0; i < kClients; ++i) {
    // Each connect returns before the next starts.
    ASSERT_TRUE(clients[i].Connect(server->port()));
    ASSERT_TRUE(clients[i].SendPacket(
        1, std::as_bytes(std::span<const uint32_t>(&i, 1))));
  }
  for (uint32_t i = 0; i < kClients; ++i) {
    auto hello = clients[i].ReadPacket();
    ASSERT_TRUE(hello.has_value()) << "client " << i << " got nothing";
    EXPECT_EQ(hello->id, kHello) << "client " << i << ": first packet";
  }
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(log.mu);
    return log.indices.size() == kClients;
  }));
  std::lock_guard lock(log.mu);
  ASSERT_EQ(log.created.size(), kClients);
  for (uint32_t k = 0; k < kClients; ++k) {
    EXPECT_EQ(log.indices[log.created[k]], k)
        << "the " << k << "th session created is another client's";
  }
  EXPECT_EQ(log.connected_before_created, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, AcceptOrderTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
