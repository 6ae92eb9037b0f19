// ClientService against a ServerService echo server, on both backends:
// sessions made by Connect exchange packets both ways; Connect reports a
// refused connection and a timeout as errors.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

class ClientServiceTest : public BackendTest {};

// A client-side session that checks the echoes it gets, in order.
class CheckingSession : public PacketSession {
 public:
  explicit CheckingSession(size_t senders) : checker_(senders) {}

  size_t received() const { return received_.load(); }
  int connects() const { return connects_.load(); }
  int disconnects() const { return disconnects_.load(); }
  DisconnectReason reason() const { return reason_.load(); }
  std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }

 protected:
  void OnConnected() override { connects_.fetch_add(1); }
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    const std::string error =
        checker_.Check(Packet{id, {payload.begin(), payload.end()}}, 1);
    if (!error.empty()) {
      std::lock_guard lock(mu_);
      if (error_.empty()) error_ = error;
    }
    received_.fetch_add(1);
  }
  void OnDisconnected(DisconnectReason reason) override {
    reason_.store(reason);
    disconnects_.fetch_add(1);
  }

 private:
  SequenceChecker checker_;  // worker thread only
  std::atomic<size_t> received_{0};
  std::atomic<int> connects_{0};
  std::atomic<int> disconnects_{0};
  std::atomic<DisconnectReason> reason_{DisconnectReason::kCount};
  mutable std::mutex mu_;
  std::string error_;
};

TEST_P(ClientServiceTest, SessionsExchangePacketsWithAnEchoServer) {
  constexpr size_t kSessions = 16;
  const auto per_session = static_cast<uint32_t>(Scaled(500, 150));
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(), Options());

  std::vector<std::shared_ptr<CheckingSession>> made;
  std::mutex made_mu;
  {
    ClientService client(Options(), [&] {
      auto session = std::make_shared<CheckingSession>(kSessions);
      std::lock_guard lock(made_mu);
      made.push_back(session);
      return session;
    });
    ASSERT_FALSE(client.Start());
    std::vector<SessionRef> sessions(kSessions);
    for (size_t i = 0; i < kSessions; ++i) {
      const std::error_code error = client.Connect(
          "127.0.0.1", server->port(), std::chrono::seconds(5), &sessions[i]);
      ASSERT_FALSE(error) << "session " << i << ": " << error.message();
      ASSERT_NE(sessions[i], nullptr);
    }
    ASSERT_EQ(made.size(), kSessions);
    ASSERT_TRUE(WaitFor([&] {
      for (const auto& s : made) {
        if (s->connects() != 1) return false;
      }
      return true;
    })) << "OnConnected did not run for every session";

    // Each session sends its numbered packets; the echo server answers
    // each in order. Sends interleave across sessions.
    for (uint32_t seq = 0; seq < per_session; ++seq) {
      for (size_t i = 0; i < kSessions; ++i) {
        ASSERT_TRUE(sessions[i]->Send(
            MakePacket(1, SequencedPayload(static_cast<uint32_t>(i), seq))));
      }
    }
    EXPECT_TRUE(WaitFor([&] {
      for (const auto& s : made) {
        if (s->received() < per_session) return false;
      }
      return true;
    }));
    for (size_t i = 0; i < kSessions; ++i) {
      EXPECT_EQ(made[i]->received(), per_session) << "session " << i;
      EXPECT_EQ(made[i]->error(), "") << "session " << i;
    }
    // The counters are added after the packets are handed to the sessions
    // (a read's whole batch at once): wait for them too.
    const uint64_t total = kSessions * per_session;
    EXPECT_TRUE(WaitFor([&] {
      const NetStats stats = client.GetStats();
      return stats.packets_in >= total && stats.packets_out >= total &&
             server->GetStats().packets_in >= total;
    }));
    const NetStats client_stats = client.GetStats();
    EXPECT_EQ(client_stats.sessions_connected, kSessions);
    EXPECT_EQ(client_stats.sessions_accepted, 0u);
    EXPECT_EQ(client_stats.packets_in, kSessions * per_session);
    EXPECT_EQ(client_stats.packets_out, kSessions * per_session);
    EXPECT_EQ(server->GetStats().packets_in, kSessions * per_session);

    // Connect errors leave the service as it was.
    const auto start = std::chrono::steady_clock::now();
    const std::error_code refused = client.Connect(
        "127.0.0.1", UnusedLoopbackPort(), std::chrono::seconds(5), nullptr);
    EXPECT_EQ(refused, std::errc::connection_refused) << refused.message();
    EXPECT_LT(std::chrono::steady_clock::now() - start,
              std::chrono::seconds(2));
    EXPECT_EQ(client.GetStats().sessions_connected, kSessions);
    EXPECT_EQ(client.SessionCount(), kSessions);

    client.Stop();
    for (size_t i = 0; i < kSessions; ++i) {
      EXPECT_EQ(made[i]->disconnects(), 1) << "session " << i;
      EXPECT_EQ(made[i]->reason(), DisconnectReason::kServiceStopped);
      EXPECT_FALSE(sessions[i]->Send(MakePacket(1, {})));
    }
    EXPECT_EQ(client.GetStats().closed(DisconnectReason::kServiceStopped),
              kSessions);
  }
  // The server saw each client go away.
  EXPECT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }));
  EXPECT_EQ(tracker.closed(DisconnectReason::kPeerClosed),
            static_cast<int>(kSessions));
}

// A listener whose accept queue is full drops new SYNs, so a connect to it
// neither succeeds nor fails: Connect gives up after its timeout.
TEST_P(ClientServiceTest, ConnectTimesOut) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  ScopeExit close_listener([&] { ::close(listener); });
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  ASSERT_EQ(::listen(listener, 0), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len),
            0);
  const uint16_t port = ntohs(addr.sin_port);
  TestClient filler;  // fills the accept queue (backlog 0 holds one)
  ASSERT_TRUE(filler.Connect(port));

  ClientService client(Options(),
                       [] { return std::make_shared<EchoSession>(); });
  if (std::error_code error = client.Start()) {
    if (GetParam() == Backend::kUring) GTEST_SKIP() << error.message();
    FAIL() << error.message();
  }
  SessionRef session;
  const auto start = std::chrono::steady_clock::now();
  const std::error_code error = client.Connect(
      "127.0.0.1", port, std::chrono::milliseconds(300), &session);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(error, std::errc::timed_out) << error.message();
  EXPECT_EQ(session, nullptr);
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::seconds(3));
  EXPECT_EQ(client.GetStats().sessions_connected, 0u);
  EXPECT_EQ(client.SessionCount(), 0u);
}

// The server going away closes the client's sessions (peer closed or reset),
// each once.
TEST_P(ClientServiceTest, ServerStopClosesClientSessions) {
  constexpr size_t kSessions = 4;
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(), Options());
  std::vector<std::shared_ptr<CheckingSession>> made;
  ClientService client(Options(), [&] {
    auto session = std::make_shared<CheckingSession>(kSessions);
    made.push_back(session);
    return session;
  });
  ASSERT_FALSE(client.Start());
  for (size_t i = 0; i < kSessions; ++i) {
    SessionRef session;
    ASSERT_FALSE(client.Connect("127.0.0.1", server->port(),
                                std::chrono::seconds(5), &session));
    ASSERT_TRUE(session->Send(
        MakePacket(1, SequencedPayload(static_cast<uint32_t>(i), 0))));
  }
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& s : made) {
      if (s->received() != 1) return false;
    }
    return true;
  }));
  server->Stop();
  EXPECT_TRUE(WaitFor([&] { return client.SessionCount() == 0; }))
      << client.SessionCount() << " client sessions still open";
  for (size_t i = 0; i < kSessions; ++i) {
    EXPECT_EQ(made[i]->disconnects(), 1) << "session " << i;
    EXPECT_TRUE(made[i]->reason() == DisconnectReason::kPeerClosed ||
                made[i]->reason() == DisconnectReason::kReset)
        << ToString(made[i]->reason());
    EXPECT_EQ(made[i]->error(), "");
  }
  client.Stop();
  for (const auto& s : made) EXPECT_EQ(s->disconnects(), 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, ClientServiceTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
