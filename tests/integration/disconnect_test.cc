// Closing while output is in flight, on both backends: the peer closes, the
// peer resets, the server disconnects from another thread, and the whole
// service stops, all while other threads keep sending. Every session must be
// closed exactly once with a sensible reason, the others must get everything,
// and every send-buffer chunk must come back.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

class DisconnectTest : public BackendTest {};

constexpr uint16_t kDataId = 9;

bool IsOneOf(DisconnectReason reason,
             std::initializer_list<DisconnectReason> allowed) {
  for (DisconnectReason a : allowed) {
    if (reason == a) return true;
  }
  return false;
}

// Twelve sessions receive packets from three sender threads. Mid-stream,
// clients 0-2 close, 3-5 reset (RST), and another thread disconnects the
// server sessions of 6-8; clients 9-11 must still receive every packet of
// every sender, in order.
TEST_P(DisconnectTest, ClosesWhileSendsAreInFlight) {
  constexpr size_t kClients = 12;
  constexpr size_t kFirstSurvivor = 9;
  constexpr uint32_t kSenders = 3;
  const auto per_sender = static_cast<uint32_t>(Scaled(2000, 600));
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(), Options());
  const SendBufferManager::Stats before = PoolStatsWithoutThisThread();

  std::vector<TestClient> clients(kClients);
  ASSERT_TRUE(ConnectTagged(server->port(), clients));
  const auto sessions = tracker.WaitForTags(kClients);
  ASSERT_EQ(sessions.size(), kClients);

  std::atomic<bool> go{false};
  std::atomic<int> survivor_refused{0};
  std::atomic<size_t> survivor_packets{0};
  std::mutex failure_mu;
  std::string failure;
  std::vector<std::thread> threads;
  ScopeExit join([&] {
    go.store(true);
    for (std::thread& t : threads) t.join();
  });
  for (uint32_t s = 0; s < kSenders; ++s) {
    threads.emplace_back([&, s] {
      while (!go.load()) std::this_thread::yield();
      for (uint32_t seq = 0; seq < per_sender; ++seq) {
        SendBufferRef buffer = MakePacket(kDataId, SequencedPayload(s, seq));
        for (size_t i = 0; i < kClients; ++i) {
          if (!sessions[i]->Send(buffer) && i >= kFirstSurvivor) {
            survivor_refused.fetch_add(1);
          }
        }
      }
      SendBufferManager::Instance().ReleaseThreadChunk();
    });
  }
  for (size_t i = kFirstSurvivor; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      SequenceChecker checker(kSenders);
      while (checker.total() < size_t{kSenders} * per_sender) {
        auto packet = clients[i].ReadPacket();
        std::string error =
            packet ? checker.Check(*packet, kDataId) : std::string("no packet");
        if (!error.empty()) {
          std::lock_guard lock(failure_mu);
          failure += "client " + std::to_string(i) + " after " +
                     std::to_string(checker.total()) + ": " + error + "; ";
          return;
        }
        survivor_packets.fetch_add(1);
      }
    });
  }
  go.store(true);

  // Cut the victims off once the stream is well under way.
  const size_t total = (kClients - kFirstSurvivor) * kSenders * per_sender;
  ASSERT_TRUE(WaitFor([&] { return survivor_packets.load() >= total / 4; }));
  std::thread disconnector([&] {
    for (size_t i = 6; i < 9; ++i) {
      sessions[i]->Disconnect(DisconnectReason::kLocal);
    }
  });
  for (size_t i = 0; i < 3; ++i) clients[i].Close();
  for (size_t i = 3; i < 6; ++i) clients[i].Reset();
  disconnector.join();
  for (size_t i = 6; i < 9; ++i) {
    EXPECT_TRUE(clients[i].WaitForClose()) << "client " << i;
  }

  for (std::thread& t : threads) t.join();
  threads.clear();
  ASSERT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(survivor_refused.load(), 0);
  EXPECT_EQ(survivor_packets.load(), total);

  // Victims: closed once each, for the reason their client gave.
  ASSERT_TRUE(WaitFor([&] { return tracker.disconnected() == 9; }))
      << tracker.disconnected() << " of 9 victims closed";
  for (size_t i = 0; i < 9; ++i) {
    EXPECT_EQ(sessions[i]->disconnects(), 1) << "session " << i;
    EXPECT_FALSE(sessions[i]->Send(MakePacket(kDataId, {})));
  }
  for (size_t i = 0; i < 3; ++i) {
    // A close with unread data sends RST, so either is sensible.
    EXPECT_TRUE(IsOneOf(sessions[i]->reason(), {DisconnectReason::kPeerClosed,
                                                DisconnectReason::kReset}))
        << "session " << i << ": " << ToString(sessions[i]->reason());
  }
  for (size_t i = 3; i < 6; ++i) {
    EXPECT_EQ(sessions[i]->reason(), DisconnectReason::kReset)
        << "session " << i << ": " << ToString(sessions[i]->reason());
  }
  for (size_t i = 6; i < 9; ++i) {
    EXPECT_EQ(sessions[i]->reason(), DisconnectReason::kLocal)
        << "session " << i << ": " << ToString(sessions[i]->reason());
  }

  // Survivors: nothing extra, still connected; and the server still takes
  // and serves new connections.
  for (size_t i = kFirstSurvivor; i < kClients; ++i) {
    EXPECT_TRUE(sessions[i]->IsConnected()) << "session " << i;
    EXPECT_TRUE(clients[i].IsQuiet(std::chrono::milliseconds(20)));
  }
  {
    TestClient late;
    ASSERT_TRUE(late.Connect(server->port()));
    const uint32_t tag = 100;
    ASSERT_TRUE(late.SendPacket(1, std::as_bytes(std::span(&tag, 1))));
    auto echo = late.ReadPacket();
    ASSERT_TRUE(echo.has_value());
    EXPECT_EQ(echo->payload.size(), 4u);
  }

  clients.clear();
  EXPECT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }));
  server->Stop();
  const NetStats stats = server->GetStats();
  EXPECT_EQ(stats.sessions_open, 0u);
  EXPECT_EQ(stats.sessions_closed(), kClients + 1);
  EXPECT_EQ(tracker.disconnected(), static_cast<int>(kClients + 1));
  EXPECT_EQ(tracker.connected(), static_cast<int>(kClients + 1));
  for (const auto& session : tracker.Sessions()) {
    EXPECT_EQ(session->disconnects(), 1) << "tag " << session->tag();
  }
  EXPECT_EQ(stats.closed(DisconnectReason::kLocal), 3u);
  EXPECT_EQ(static_cast<int>(stats.closed(DisconnectReason::kReset)),
            tracker.closed(DisconnectReason::kReset));
  const SendBufferManager::Stats after = PoolStatsWithoutThisThread();
  EXPECT_EQ(after.chunks_in_use, before.chunks_in_use);
  EXPECT_EQ(after.bytes_pinned, before.bytes_pinned);
}

// Stop while clients hammer echo: it returns within a few seconds, every
// session got OnDisconnected once (kServiceStopped), and no chunk is left.
TEST_P(DisconnectTest, StopUnderLoad) {
  constexpr size_t kClients = 8;
  constexpr uint32_t kWindow = 128;  // packets a client may have unanswered
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(), Options());
  const SendBufferManager::Stats before = PoolStatsWithoutThisThread();

  std::vector<TestClient> clients(kClients);
  ASSERT_TRUE(ConnectTagged(server->port(), clients));
  ASSERT_EQ(tracker.WaitForTags(kClients).size(), kClients);

  std::atomic<bool> stop{false};
  std::vector<std::atomic<uint32_t>> sent(kClients);
  std::vector<std::atomic<uint32_t>> echoed(kClients);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  ScopeExit join([&] {
    stop.store(true);
    server->Stop();
    for (std::thread& t : threads) t.join();
  });
  for (size_t c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {  // writer
      const auto id = static_cast<uint32_t>(c);
      for (uint32_t seq = 0; !stop.load(); ++seq) {
        while (seq - echoed[c].load() >= kWindow && !stop.load()) {
          std::this_thread::yield();
        }
        if (!clients[c].SendPacket(1, SequencedPayload(id, seq))) return;
        sent[c].store(seq + 1);
      }
    });
    threads.emplace_back([&, c] {  // reader: echoes in order, until closed
      SequenceChecker checker(kClients);
      for (;;) {
        auto packet = clients[c].ReadPacket();
        if (!packet) return;
        if (!checker.Check(*packet, 1).empty()) mismatches.fetch_add(1);
        echoed[c].fetch_add(1);
      }
    });
  }
  ASSERT_TRUE(WaitFor(
      [&] { return server->GetStats().packets_in >= Scaled(20000, 2000); }));

  const auto start = std::chrono::steady_clock::now();
  server->Stop();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(4))
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
      << " ms";
  stop.store(true);
  for (std::thread& t : threads) t.join();
  threads.clear();

  EXPECT_EQ(mismatches.load(), 0);
  const NetStats stats = server->GetStats();
  EXPECT_EQ(stats.sessions_open, 0u);
  EXPECT_EQ(tracker.connected(), static_cast<int>(kClients));
  EXPECT_EQ(tracker.disconnected(), static_cast<int>(kClients));
  EXPECT_EQ(tracker.closed(DisconnectReason::kServiceStopped),
            static_cast<int>(kClients));
  EXPECT_EQ(stats.closed(DisconnectReason::kServiceStopped), kClients);
  for (const auto& session : tracker.Sessions()) {
    EXPECT_EQ(session->disconnects(), 1) << "tag " << session->tag();
  }
  const SendBufferManager::Stats after = PoolStatsWithoutThisThread();
  EXPECT_EQ(after.chunks_in_use, before.chunks_in_use);
  EXPECT_EQ(after.bytes_pinned, before.bytes_pinned);
}

// One chat room, as GameServer has: every session joins in OnConnected and
// leaves in OnDisconnected, and a chat packet is built once and sent to a
// snapshot of the members, on the sender's worker. The application holds no
// other SessionRef, so sessions die on whichever thread drops the last
// snapshot. Meanwhile clients keep joining and leaving (close and RST).
class Room {
 public:
  void Join(SessionRef session) {
    std::lock_guard lock(mu_);
    members_.push_back(std::move(session));
  }
  void Leave(const Session* session) {
    std::lock_guard lock(mu_);
    std::erase_if(members_,
                  [&](const SessionRef& s) { return s.get() == session; });
  }
  std::vector<SessionRef> Snapshot() const {
    std::lock_guard lock(mu_);
    return members_;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return members_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<SessionRef> members_;
};

class RoomSession : public PacketSession {
 public:
  RoomSession(Room& room, std::atomic<int>& closed)
      : room_(room), closed_(closed) {}

 protected:
  void OnConnected() override { room_.Join(shared_from_this()); }
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    const SendBufferRef buffer = MakePacket(id == 5 ? 6 : id, payload);
    if (id != 5) {
      Send(buffer);
      return;
    }
    for (const SessionRef& member : room_.Snapshot()) member->Send(buffer);
  }
  void OnDisconnected(DisconnectReason) override {
    room_.Leave(this);
    closed_.fetch_add(1);
  }

 private:
  Room& room_;
  std::atomic<int>& closed_;
};

TEST_P(DisconnectTest, RoomBroadcastWhileMembersComeAndGo) {
  constexpr size_t kListeners = 4;
  constexpr uint32_t kChatters = 3;
  const auto per_chatter = static_cast<uint32_t>(Scaled(600, 200));
  Room room;
  std::atomic<int> created{0};
  std::atomic<int> closed{0};
  SERVERCORE_START_SERVER(
      server,
      [&]() -> SessionRef {
        created.fetch_add(1);
        return std::make_shared<RoomSession>(room, closed);
      },
      Options());
  const SendBufferManager::Stats before = PoolStatsWithoutThisThread();

  // Listeners and chatters are members before the first chat.
  std::vector<TestClient> listeners(kListeners);
  ASSERT_TRUE(ConnectTagged(server->port(), listeners));
  std::vector<TestClient> chatters(kChatters);
  ASSERT_TRUE(ConnectTagged(server->port(), chatters, 100));
  ASSERT_TRUE(WaitFor([&] { return room.size() == kListeners + kChatters; }));

  std::atomic<bool> stop_churn{false};
  std::atomic<int> churned{0};
  std::thread churn([&] {
    for (int i = 0; !stop_churn.load(); ++i) {
      TestClient c;
      if (!c.Connect(server->port())) continue;
      const uint32_t tag = 1000 + static_cast<uint32_t>(i);
      (void)c.SendPacket(1, std::as_bytes(std::span(&tag, 1)));
      if (i % 3 == 0) (void)c.ReadPacket(std::chrono::milliseconds(100));
      std::this_thread::sleep_for(std::chrono::microseconds(200 * (i % 4)));
      if (i % 2 == 0) {
        c.Reset();
      } else {
        c.Close();
      }
      churned.fetch_add(1);
    }
  });
  ScopeExit join_churn([&] {
    stop_churn.store(true);
    if (churn.joinable()) churn.join();
  });

  std::vector<std::thread> writers;
  for (uint32_t c = 0; c < kChatters; ++c) {
    writers.emplace_back([&, c] {
      for (uint32_t seq = 0; seq < per_chatter; ++seq) {
        if (!chatters[c].SendPacket(5, SequencedPayload(c, seq))) return;
        if (seq % 50 == 0)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  std::vector<std::string> errors(kListeners);
  std::vector<std::thread> readers;
  for (size_t l = 0; l < kListeners; ++l) {
    readers.emplace_back([&, l] {
      SequenceChecker checker(kChatters);
      while (checker.total() < size_t{kChatters} * per_chatter) {
        auto packet = listeners[l].ReadPacket();
        errors[l] = packet ? checker.Check(*packet, 6) : "no packet";
        if (!errors[l].empty()) {
          errors[l] += " after " + std::to_string(checker.total());
          return;
        }
      }
    });
  }
  for (std::thread& t : writers) t.join();
  for (std::thread& t : readers) t.join();
  stop_churn.store(true);
  churn.join();
  for (size_t l = 0; l < kListeners; ++l) {
    EXPECT_EQ(errors[l], "") << "listener " << l;
    EXPECT_TRUE(listeners[l].IsQuiet(std::chrono::milliseconds(20)));
  }
  EXPECT_GT(churned.load(), 0);

  listeners.clear();
  chatters.clear();
  EXPECT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }))
      << server->SessionCount() << " sessions left";
  server->Stop();
  EXPECT_EQ(room.size(), 0u);
  EXPECT_EQ(closed.load(), created.load());
  const NetStats stats = server->GetStats();
  EXPECT_EQ(stats.sessions_closed(), static_cast<uint64_t>(created.load()));
  EXPECT_EQ(stats.closed(DisconnectReason::kSlowReceiver), 0u);
  const SendBufferManager::Stats after = PoolStatsWithoutThisThread();
  EXPECT_EQ(after.chunks_in_use, before.chunks_in_use);
  EXPECT_EQ(after.bytes_pinned, before.bytes_pinned);
}

// Stop while every session has a write blocked on a full socket (clients that
// never read) and megabytes queued behind it: Stop must end those writes at
// once rather than wait out its deadline, and free everything queued.
TEST_P(DisconnectTest, StopWithWritesBlockedOnFullSockets) {
  constexpr size_t kClients = 4;
  SessionTracker tracker;
  ServiceOptions options = Options();
  options.max_pending_bytes = 64 * 1024 * 1024;
  SERVERCORE_START_SERVER(server, tracker.Factory(), options);
  const SendBufferManager::Stats before = PoolStatsWithoutThisThread();
  std::vector<TestClient> clients(kClients);
  for (TestClient& c : clients) c.SetReceiveBuffer(4096);
  ASSERT_TRUE(ConnectTagged(server->port(), clients));
  const auto sessions = tracker.WaitForTags(kClients);
  ASSERT_EQ(sessions.size(), kClients);

  // Far more than the kernel holds for a reader that never reads.
  const std::vector<std::byte> chunk(16 * 1024, std::byte{0x42});
  for (int i = 0; i < 6 * 64; ++i) {  // 6 MiB per session
    SendBufferRef buffer = MakePacket(9, chunk);
    for (const auto& session : sessions) ASSERT_TRUE(session->Send(buffer));
  }
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& session : sessions) {
      if (session->PendingSendBytes() == 0) return false;
    }
    return server->GetStats().partial_writes >= kClients;
  }));
  EXPECT_GT(PoolStatsWithoutThisThread().bytes_pinned, before.bytes_pinned);

  const auto start = std::chrono::steady_clock::now();
  server->Stop();
  const auto took = std::chrono::steady_clock::now() - start;
  // The stop's 1 s drain cuts the blocked writes; waited out, they would
  // hold Stop to the workers' 5 s stop deadline. Short of that, a loaded
  // machine has 4 s of slack.
  EXPECT_LT(took, std::chrono::seconds(5))
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
      << " ms: blocked writes were waited out";
  for (const auto& session : sessions) {
    EXPECT_EQ(session->disconnects(), 1);
    EXPECT_EQ(session->reason(), DisconnectReason::kServiceStopped);
  }
  EXPECT_EQ(server->GetStats().sessions_open, 0u);
  for (TestClient& c : clients) EXPECT_TRUE(c.WaitForClose());
  const SendBufferManager::Stats after = PoolStatsWithoutThisThread();
  EXPECT_EQ(after.chunks_in_use, before.chunks_in_use);
  EXPECT_EQ(after.bytes_pinned, before.bytes_pinned);
  EXPECT_EQ(after.dedicated_live, before.dedicated_live);
}

// The end of a peer's stream, kept open (Session::OnPeerClosed false): an
// application whose replies are made later, elsewhere, sends them before the
// close. The session records what happened; the test plays the application.
class StaysAfterEndOfStream : public PacketSession {
 public:
  StaysAfterEndOfStream() : PacketSession(4096) {}
  std::atomic<int> packets{0};
  std::atomic<bool> peer_closed{false};
  std::atomic<bool> disconnected{false};
  std::atomic<DisconnectReason> reason{DisconnectReason::kCount};

 protected:
  void OnRecvPacket(uint16_t, std::span<const std::byte>) override {
    packets.fetch_add(1);
  }
  bool OnPeerClosed() override {
    peer_closed.store(true);
    return false;
  }
  void OnDisconnected(DisconnectReason why) override {
    reason.store(why);
    disconnected.store(true);
  }
};

class EndOfStreamTest : public BackendTest {
 protected:
  Service::SessionFactory Factory() {
    return [this] {
      auto session = std::make_shared<StaysAfterEndOfStream>();
      std::lock_guard lock(mu_);
      sessions_.push_back(session);
      return session;
    };
  }
  // Connects, sends one packet (and unless `finish` the start of another),
  // closes its sending side; the server's session once it has the packet
  // and, when `finish`, has been asked OnPeerClosed.
  std::shared_ptr<StaysAfterEndOfStream> ConnectAndEnd(TestClient& client,
                                                       uint16_t port,
                                                       bool finish = true) {
    if (!client.Connect(port) || !client.SendPacket(kDataId, {})) return {};
    // Three bytes of a 16-byte packet's header.
    const std::vector<std::byte> begun = {std::byte{16}, std::byte{0},
                                          std::byte{kDataId}};
    if (!finish && !client.SendAll(begun)) return {};
    if (::shutdown(client.fd(), SHUT_WR) != 0) return {};
    std::shared_ptr<StaysAfterEndOfStream> session;
    WaitFor([&] {
      std::lock_guard lock(mu_);
      if (!sessions_.empty() && sessions_.back()->packets.load() == 1) {
        session = sessions_.back();
      }
      return session != nullptr;
    });
    if (finish && session != nullptr &&
        !WaitFor([&] { return session->peer_closed.load(); })) {
      return {};
    }
    return session;
  }

  std::mutex mu_;
  std::vector<std::shared_ptr<StaysAfterEndOfStream>> sessions_;
};

// It stays open, reading no more; what it sends then reaches the client,
// and the close it asks for follows.
TEST_P(EndOfStreamTest, RepliesSentAfterThePeersEndOfStreamArrive) {
  SERVERCORE_START_SERVER(server, Factory(), Options());
  TestClient client;
  auto session = ConnectAndEnd(client, server->port());
  ASSERT_NE(session, nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(session->IsConnected());
  EXPECT_FALSE(session->disconnected.load());
  const std::string late = "owed";
  ASSERT_TRUE(
      session->Send(MakePacket(kDataId, std::as_bytes(std::span(late)))));
  session->Disconnect(DisconnectReason::kPeerClosed);
  auto reply = client.ReadPacket();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->id, kDataId);
  EXPECT_EQ(reply->payload.size(), late.size());
  EXPECT_TRUE(client.WaitForClose());
  ASSERT_TRUE(WaitFor([&] { return session->disconnected.load(); }));
  EXPECT_EQ(session->reason.load(), DisconnectReason::kPeerClosed);
}

// Nothing reads it any more, yet a reset is noticed: the session closes
// without waiting for the application (epoll reports the hang-up whatever
// the interest; with io_uring the worker's sweep asks the socket).
TEST_P(EndOfStreamTest, AResetAfterTheEndOfStreamClosesIt) {
  SERVERCORE_START_SERVER(server, Factory(), Options());
  TestClient client;
  auto session = ConnectAndEnd(client, server->port());
  ASSERT_NE(session, nullptr);
  client.Reset();
  ASSERT_TRUE(WaitFor([&] { return session->disconnected.load(); },
                      std::chrono::seconds(5)));
  EXPECT_EQ(session->reason.load(), DisconnectReason::kReset);
}

// An application that keeps it and never closes it: the library does, as
// the peer asked, once the owed replies have had their time.
TEST_P(EndOfStreamTest, KeptTooLongItIsClosedForTheApplication) {
  SERVERCORE_START_SERVER(server, Factory(), Options());
  TestClient client;
  auto session = ConnectAndEnd(client, server->port());
  ASSERT_NE(session, nullptr);
  const auto kept = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return session->disconnected.load(); }));
  EXPECT_GE(std::chrono::steady_clock::now() - kept, std::chrono::seconds(1));
  EXPECT_EQ(session->reason.load(), DisconnectReason::kPeerClosed);
  EXPECT_TRUE(client.WaitForClose());
}

// A stream that ends inside a message cannot be answered: closed at once.
TEST_P(EndOfStreamTest, AnEndInsideAMessageClosesAtOnce) {
  SERVERCORE_START_SERVER(server, Factory(), Options());
  TestClient client;
  auto session = ConnectAndEnd(client, server->port(), /*finish=*/false);
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(WaitFor([&] { return session->disconnected.load(); }));
  EXPECT_FALSE(session->peer_closed.load());
  EXPECT_EQ(session->reason.load(), DisconnectReason::kPeerClosed);
  EXPECT_TRUE(client.WaitForClose());
}

INSTANTIATE_TEST_SUITE_P(Backends, EndOfStreamTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

INSTANTIATE_TEST_SUITE_P(Backends, DisconnectTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
