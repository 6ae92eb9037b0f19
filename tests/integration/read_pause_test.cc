// Session::PauseReading and ResumeReading (receive back-pressure): what
// follows a pause waits, in order, for the resume; the socket is not read
// meanwhile, so a peer that keeps sending is held back by TCP's window; the
// idle and packet timeouts wait too; and the end of a stream that came
// behind kept packets comes after them.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

using std::chrono::milliseconds;

constexpr uint16_t kData = 1;
constexpr uint16_t kPause = 7;         // the handler pauses after this packet
constexpr uint32_t kEnd = UINT32_MAX;  // in the log: the stream ended

// What the server's one session saw, in order: each packet's index (its
// first four payload bytes), then kEnd if the peer's stream ended.
struct Log {
  std::mutex mu;
  SessionRef session;
  std::vector<uint32_t> seen;
  std::atomic<int> disconnected{0};
  std::atomic<DisconnectReason> reason{DisconnectReason::kCount};

  size_t size() {
    std::lock_guard lock(mu);
    return seen.size();
  }
  std::vector<uint32_t> copy() {
    std::lock_guard lock(mu);
    return seen;
  }
};

class PausingSession : public PacketSession {
 public:
  explicit PausingSession(Log& log) : PacketSession(4096), log_(log) {}

 protected:
  void OnConnected() override {
    std::lock_guard lock(log_.mu);
    log_.session = shared_from_this();
  }
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    uint32_t index = 0;
    std::memcpy(&index, payload.data(), std::min(payload.size(), size_t{4}));
    {
      std::lock_guard lock(log_.mu);
      log_.seen.push_back(index);
    }
    if (id == kPause) PauseReading();
  }
  bool OnPeerClosed() override {
    std::lock_guard lock(log_.mu);
    log_.seen.push_back(kEnd);
    return true;
  }
  void OnDisconnected(DisconnectReason reason) override {
    log_.reason = reason;
    log_.disconnected.fetch_add(1);
  }

 private:
  Log& log_;
};

std::vector<std::byte> Packet(uint16_t id, uint32_t index, size_t size = 8) {
  std::vector<std::byte> payload(size - 4);
  std::memcpy(payload.data(), &index, sizeof(index));
  const SendBufferRef packet = MakePacket(id, payload);
  const auto bytes = packet->Data();
  return {bytes.begin(), bytes.end()};
}

void Append(std::vector<std::byte>& to, const std::vector<std::byte>& bytes) {
  to.insert(to.end(), bytes.begin(), bytes.end());
}

// This process's CPU time, user and system, all threads.
std::chrono::microseconds ProcessCpuTime() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         std::chrono::microseconds(usage.ru_utime.tv_usec +
                                   usage.ru_stime.tv_usec);
}

std::vector<uint32_t> Sequence(uint32_t from, uint32_t to) {
  std::vector<uint32_t> out;
  for (uint32_t i = from; i < to; ++i) out.push_back(i);
  return out;
}

class ReadPauseTest : public BackendTest {
 protected:
  SessionRef Session() {
    WaitFor([this] {
      std::lock_guard lock(log_.mu);
      return log_.session != nullptr;
    });
    std::lock_guard lock(log_.mu);
    return log_.session;
  }

  // Connects `client`, which sends a pausing packet, two more and the end
  // of its stream at once; true once the pause has been delivered.
  bool PauseThenEnd(TestClient& client, uint16_t port) {
    std::vector<std::byte> write = Packet(kPause, 0);
    Append(write, Packet(kData, 1));
    Append(write, Packet(kData, 2));
    return client.Connect(port) && client.SendAll(write) &&
           ::shutdown(client.fd(), SHUT_WR) == 0 &&
           WaitFor([&] { return log_.size() == 1; });
  }

  Log log_;
};

TEST_P(ReadPauseTest, PacketsAfterAPauseWaitForTheResumeInOrder) {
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<PausingSession>(log_); },
      Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  std::vector<std::byte> write = Packet(kData, 0);
  Append(write, Packet(kPause, 1));
  Append(write, Packet(kData, 2));
  Append(write, Packet(kData, 3));
  ASSERT_TRUE(client.SendAll(write));  // one write: one read, most likely
  ASSERT_TRUE(WaitFor([&] { return log_.size() >= 2; }));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(log_.copy(), Sequence(0, 2)) << "delivered while paused";
  // Paused twice over: the second pause comes with its own resume.
  ASSERT_TRUE(client.SendAll(Packet(kPause, 4)));
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(log_.size(), 2u);
  Session()->ResumeReading();
  ASSERT_TRUE(WaitFor([&] { return log_.size() >= 5; }));
  std::this_thread::sleep_for(milliseconds(200));
  // 2, 3 and the second pause, which holds.
  EXPECT_EQ(log_.copy(), Sequence(0, 5));
  Session()->ResumeReading();
  ASSERT_TRUE(client.SendAll(Packet(kData, 5)));
  EXPECT_TRUE(WaitFor([&] { return log_.size() == 6; }));
  EXPECT_EQ(log_.copy(), Sequence(0, 6));
  EXPECT_EQ(log_.disconnected.load(), 0);
}

// A session that has paused reads small pieces (4 KiB) until it goes quiet:
// a pause keeps the rest of the read it came in, and a thousand flooding
// sessions keeping 64 KiB each filled a 64 MiB budget with input, and the
// Sends of sessions that kept reading then cut them (a review's finding).
TEST_P(ReadPauseTest, AfterAPauseReadsAreSmallSoAPauseKeepsLittle) {
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<PausingSession>(log_); },
      Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  ASSERT_TRUE(client.SendAll(Packet(kPause, 0)));
  ASSERT_TRUE(WaitFor([&] { return log_.size() == 1; }));
  Session()->ResumeReading();
  // 8,000 bytes in one write: a pause in its first packet; a whole read of
  // it would keep 7,992 bytes.
  std::vector<std::byte> write = Packet(kPause, 1);
  for (uint32_t i = 2; i < 1000; ++i) Append(write, Packet(kData, i));
  ASSERT_TRUE(client.SendAll(write));
  ASSERT_TRUE(WaitFor([&] { return log_.size() == 2; }));
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(log_.size(), 2u) << "delivered while paused";
  EXPECT_GT(server->GetStats().memory_receive, 0u) << "nothing kept?";
  EXPECT_LE(server->GetStats().memory_receive, 4096u);
  Session()->ResumeReading();
  ASSERT_TRUE(WaitFor([&] { return log_.size() == 1000; }));
  EXPECT_EQ(log_.copy(), Sequence(0, 1000));
  EXPECT_EQ(log_.disconnected.load(), 0);
}

// The point of it: a paused session is not read, so a peer that keeps
// sending fills the socket buffers and its sends stop, far short of what it
// would send to a session that reads; nothing is lost on resuming.
TEST_P(ReadPauseTest, APeerThatKeepsSendingIsHeldBackByTheWindow) {
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<PausingSession>(log_); },
      Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  ASSERT_TRUE(client.SendAll(Packet(kPause, 0)));
  ASSERT_TRUE(WaitFor([&] { return log_.size() == 1; }));
  ASSERT_EQ(
      ::fcntl(client.fd(), F_SETFL, ::fcntl(client.fd(), F_GETFL) | O_NONBLOCK),
      0);
  // 1 KiB packets until the kernel takes no more for half a second; at most
  // 256 MiB (a session that reads would take all of it).
  constexpr size_t kPacket = 1024;
  constexpr uint32_t kCap = 256 * 1024;
  uint32_t sent = 1;
  std::vector<std::byte> packet;
  size_t offset = 0;
  while (sent < kCap) {
    if (offset == 0) packet = Packet(kData, sent, kPacket);
    const ssize_t n = ::send(client.fd(), packet.data() + offset,
                             packet.size() - offset, MSG_NOSIGNAL);
    if (n > 0) {
      offset += static_cast<size_t>(n);
      if (offset == packet.size()) {
        offset = 0;
        ++sent;
      }
      continue;
    }
    ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        << std::strerror(errno);
    pollfd p{.fd = client.fd(), .events = POLLOUT, .revents = 0};
    if (::poll(&p, 1, 500) == 0) break;  // held back
  }
  ASSERT_LT(sent, kCap) << "never held back";
  // What the kernels' buffers and one read hold, not more.
  EXPECT_LT(size_t{sent} * kPacket, size_t{64} << 20);
  EXPECT_EQ(log_.size(), 1u);
  Session()->ResumeReading();
  // The rest of a packet cut short by EAGAIN, then everything is read.
  ASSERT_TRUE(
      WaitFor([&] { return log_.size() == sent; }, std::chrono::seconds(30)))
      << log_.size() << " of " << sent;
  if (offset > 0) {
    ASSERT_EQ(::fcntl(client.fd(), F_SETFL,
                      ::fcntl(client.fd(), F_GETFL) & ~O_NONBLOCK),
              0);
    ASSERT_TRUE(client.SendAll(std::span(packet).subspan(offset)));
    ++sent;
  }
  ASSERT_TRUE(
      WaitFor([&] { return log_.size() == sent; }, std::chrono::seconds(30)));
  EXPECT_EQ(log_.copy(), Sequence(0, sent));
  EXPECT_EQ(log_.disconnected.load(), 0);
}

// The server holds what the peer sent: the peer is neither idle nor slow to
// finish its packet meanwhile. The clocks start again on resuming.
TEST_P(ReadPauseTest, TimeoutsWaitWhileReadingIsPaused) {
  ServiceOptions options = Options();
  options.idle_timeout = milliseconds(600);  // after the packet timeout
  options.packet_timeout = milliseconds(200);
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<PausingSession>(log_); }, options);
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  std::vector<std::byte> write = Packet(kPause, 0);
  Append(write, Packet(kData, 1));
  const std::vector<std::byte> half = Packet(kData, 2, 100);
  Append(write, std::vector<std::byte>(half.begin(), half.begin() + 50));
  ASSERT_TRUE(client.SendAll(write));
  ASSERT_TRUE(WaitFor([&] { return log_.size() == 1; }));
  // Five packet timeouts, nearly two idle ones, several sweeps.
  std::this_thread::sleep_for(milliseconds(1000));
  EXPECT_EQ(log_.disconnected.load(), 0) << "cut while paused";
  Session()->ResumeReading();
  ASSERT_TRUE(WaitFor([&] { return log_.size() == 2; }));
  // Resumed, the half packet's clock runs.
  ASSERT_TRUE(WaitFor([&] { return log_.disconnected.load() == 1; }));
  EXPECT_EQ(log_.reason.load(), DisconnectReason::kPacketTimeout);
  EXPECT_EQ(log_.copy(), Sequence(0, 2));
}

// A peer that sends and closes its side at once: on io_uring the end of the
// stream can arrive while the session is paused behind what it kept. It
// comes after those packets, as it came after them on the wire.
TEST_P(ReadPauseTest, TheStreamsEndComesAfterWhatWasKept) {
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<PausingSession>(log_); },
      Options());
  TestClient client;
  ASSERT_TRUE(PauseThenEnd(client, server->port()));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(log_.size(), 1u);
  Session()->ResumeReading();
  ASSERT_TRUE(WaitFor([&] { return log_.disconnected.load() == 1; }));
  EXPECT_EQ(log_.reason.load(), DisconnectReason::kPeerClosed);
  EXPECT_EQ(log_.copy(), (std::vector<uint32_t>{0, 1, 2, kEnd}));
}

// As above, and then the peer resets. On epoll a reset is reported whatever
// the interest (EPOLLHUP, level-triggered), and a paused socket reads to
// learn of it; but once a FIN has come, recv only ever says "end of stream"
// again, so the worker read 0 bytes every round until the resume (a
// review's finding). Now it hears of it once; the kept packets and the end
// still come on the resume.
TEST_P(ReadPauseTest, AResetAfterAKeptEndDoesNotSpin) {
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<PausingSession>(log_); },
      Options());
  TestClient client;
  ASSERT_TRUE(PauseThenEnd(client, server->port()));
  std::this_thread::sleep_for(milliseconds(100));
  client.Reset();
  std::this_thread::sleep_for(milliseconds(100));
  const uint64_t before = server->GetStats().recv_syscalls;
  const std::chrono::microseconds cpu_before = ProcessCpuTime();
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_LE(server->GetStats().recv_syscalls - before, 4u)
      << "reads while paused after the reset";
  // Nor any other spin (a mask re-armed each round would wake it so).
  EXPECT_LT(ProcessCpuTime() - cpu_before, milliseconds(100));
  EXPECT_EQ(log_.size(), 1u);
  Session()->ResumeReading();
  ASSERT_TRUE(WaitFor([&] { return log_.disconnected.load() == 1; }));
  EXPECT_EQ(log_.copy(), (std::vector<uint32_t>{0, 1, 2, kEnd}));
}

INSTANTIATE_TEST_SUITE_P(Backends, ReadPauseTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
