// Echo over loopback on both backends: packets split at random bytes, many
// packets per read, many sessions at once.
#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

class EchoTest : public BackendTest {};

std::vector<std::byte> RandomPayload(std::mt19937& rng, size_t max) {
  std::vector<std::byte> payload(rng() % (max + 1));
  for (std::byte& b : payload) b = static_cast<std::byte>(rng());
  return payload;
}

TEST_P(EchoTest, RandomFragmentationComesBackByteForByte) {
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<EchoSession>(); }, Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));

  std::mt19937 rng(7);
  std::vector<std::byte> stream;
  for (int i = 0; i < 2000; ++i) {
    const std::vector<std::byte> packet =
        EncodePacket(1, RandomPayload(rng, 600));
    stream.insert(stream.end(), packet.begin(), packet.end());
  }
  // Send in random pieces (1 byte to 3 KiB) so packets split everywhere.
  std::thread writer([&] {
    size_t at = 0;
    while (at < stream.size()) {
      const size_t n = std::min<size_t>(1 + rng() % 3000, stream.size() - at);
      ASSERT_TRUE(client.SendAll(std::span(stream).subspan(at, n)));
      at += n;
    }
  });
  auto echoed = client.ReadExactly(stream.size(), std::chrono::seconds(30));
  writer.join();
  ASSERT_TRUE(echoed.has_value());
  EXPECT_TRUE(*echoed == stream) << "echo differs from what was sent";
}

TEST_P(EchoTest, ThousandSessionsAtOnce) {
  ServiceOptions options = Options();
  options.recv_buffer_size = 4096;
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<EchoSession>(); }, options);
  std::vector<TestClient> clients(1000);
  for (TestClient& c : clients) ASSERT_TRUE(c.Connect(server->port()));
  for (size_t i = 0; i < clients.size(); ++i) {
    const uint32_t tag = static_cast<uint32_t>(i);
    ASSERT_TRUE(clients[i].SendPacket(1, std::as_bytes(std::span(&tag, 1))));
  }
  for (size_t i = 0; i < clients.size(); ++i) {
    auto packet = clients[i].ReadPacket();
    ASSERT_TRUE(packet.has_value()) << "session " << i;
    uint32_t tag;
    ASSERT_EQ(packet->payload.size(), sizeof(tag));
    std::memcpy(&tag, packet->payload.data(), sizeof(tag));
    EXPECT_EQ(tag, i);
  }
  EXPECT_TRUE(WaitFor([&] { return server->SessionCount() == 1000; }));
  clients.clear();
  EXPECT_TRUE(WaitFor([&] { return server->SessionCount() == 0; }));
  server->Stop();
  const NetStats stats = server->GetStats();
  EXPECT_EQ(stats.sessions_accepted, 1000u);
  EXPECT_EQ(stats.closed(DisconnectReason::kPeerClosed), 1000u);
  EXPECT_EQ(stats.packets_in, 1000u);
  EXPECT_EQ(stats.packets_out, 1000u);
}

// Echoes, except that packet id 9 holds its worker for 300 ms.
class StallingEchoSession : public EchoSession {
 public:
  static constexpr uint16_t kStall = 9;
  using EchoSession::EchoSession;

 protected:
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    if (id == kStall) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      return;
    }
    EchoSession::OnRecvPacket(id, payload);
  }
};

// Sessions with much data waiting when their worker comes back to them: on
// io_uring each multishot receive takes buffer after buffer from the
// worker's provided-buffer ring (2 MiB of incrementally used buffers, or
// 4 MiB of whole ones on older kernels) until it runs dry; the receives that
// find it empty end with ENOBUFS and are armed again, and every byte still
// comes back, in order. One session's handler holds the one worker while 32
// others each push 256 KiB at it.
TEST_P(EchoTest, ReceivesThatFindTheBufferRingEmptyAreArmedAgain) {
  ServiceOptions options = Options();
  options.worker_threads = 1;
  SERVERCORE_START_SERVER(
      server, [] { return std::make_shared<StallingEchoSession>(); }, options);
  constexpr size_t kClients = 32;
  constexpr size_t kPackets = 64;  // of 4 KiB: 256 KiB a client
  TestClient staller;
  ASSERT_TRUE(staller.Connect(server->port()));
  std::vector<TestClient> clients(kClients);
  std::vector<std::vector<std::byte>> streams(kClients);
  for (size_t i = 0; i < kClients; ++i) {
    ASSERT_TRUE(clients[i].Connect(server->port()));
    for (uint32_t seq = 0; seq < kPackets; ++seq) {
      std::vector<std::byte> payload(4092, std::byte(i * 7 + seq));
      std::memcpy(payload.data(), &seq, sizeof(seq));
      const std::vector<std::byte> packet = EncodePacket(1, payload);
      streams[i].insert(streams[i].end(), packet.begin(), packet.end());
    }
  }
  ASSERT_TRUE(WaitFor([&] { return server->SessionCount() == kClients + 1; }));
  ASSERT_TRUE(staller.SendPacket(StallingEchoSession::kStall, {}));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // it holds
  std::atomic<size_t> failures{0};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      std::thread writer([&] {
        if (!clients[i].SendAll(streams[i])) failures.fetch_add(1);
      });
      auto echoed =
          clients[i].ReadExactly(streams[i].size(), std::chrono::seconds(30));
      writer.join();
      if (!echoed || *echoed != streams[i]) failures.fetch_add(1);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0u);
  if (GetParam() == Backend::kUring) {
    EXPECT_GT(server->GetStats().recv_buffer_waits, 0u)
        << "8 MiB waiting did not run the buffer ring dry";
  }
  server->Stop();
}

// Whether this kernel is release major.minor or later.
bool KernelAtLeast(int major, int minor) {
  utsname name{};
  int have_major = 0;
  int have_minor = 0;
  if (::uname(&name) != 0 ||
      std::sscanf(name.release, "%d.%d", &have_major, &have_minor) != 2) {
    return false;
  }
  return have_major > major || (have_major == major && have_minor >= minor);
}

// Consumes every byte and records the largest read it was handed; a read
// that begins with kStall holds the worker for 300 ms first.
class ReadSizeSession : public Session {
 public:
  static constexpr std::byte kStall{0xEE};
  explicit ReadSizeSession(std::atomic<size_t>* largest) : largest_(largest) {}

 protected:
  size_t OnRecv(std::span<const std::byte> data) override {
    if (data.front() == kStall) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    size_t seen = largest_->load();
    while (data.size() > seen &&
           !largest_->compare_exchange_weak(seen, data.size())) {
    }
    return data.size();
  }

 private:
  std::atomic<size_t>* largest_;
};

// Bytes that waited while the worker was busy reach the session in reads
// as large as the backend makes them: on epoll its 64 KiB read buffer full;
// on io_uring more than one 64 KiB provided buffer, because the pieces a
// read the kernel cut at buffers' ends are handed on whole (so a session
// answers them with one write, not one per piece). Kernels before 6.12 have
// no incrementally used buffers: there the pieces are whole 4 KiB buffers.
TEST_P(EchoTest, BytesThatWaitedArriveInLargeReads) {
  ServiceOptions options = Options();
  options.worker_threads = 1;
  std::atomic<size_t> largest{0};
  SERVERCORE_START_SERVER(
      server,
      [&largest] { return std::make_shared<ReadSizeSession>(&largest); },
      options);
  TestClient staller;
  TestClient bulk;
  ASSERT_TRUE(staller.Connect(server->port()));
  ASSERT_TRUE(bulk.Connect(server->port()));
  // A first few MiB let the kernel grow the socket's receive window.
  const std::vector<std::byte> chunk(1 << 20, std::byte{1});
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(bulk.SendAll(chunk));
  ASSERT_TRUE(WaitFor([&] { return server->GetStats().bytes_in == 8u << 20; }));
  largest = 0;
  const std::byte stall[] = {ReadSizeSession::kStall};
  ASSERT_TRUE(staller.SendAll(stall));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // it holds
  std::thread writer([&] { EXPECT_TRUE(bulk.SendAll(chunk)); });
  writer.join();
  ASSERT_TRUE(
      WaitFor([&] { return server->GetStats().bytes_in == (9u << 20) + 1; }));
  if (GetParam() == Backend::kEpoll) {
    EXPECT_EQ(largest.load(), 64u * 1024);
  } else if (KernelAtLeast(6, 12)) {
    EXPECT_GT(largest.load(), 64u * 1024);
  }  // else whole 4 KiB buffers: how many join depends on the kernel
  server->Stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, EchoTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
