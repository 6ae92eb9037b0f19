// The send path pinned from the outside, on both backends, before it moves:
//
//  - Buffers queued while no write is in flight leave in one gather write
//    that carries all of them (IOV_MAX at most per write), seen in the
//    server's NetStats: one write syscall, N iovecs, no partial write. A
//    write that carries one iovec too few still delivers every byte, so only
//    the counters catch it.
//  - A Send that lands just as the worker finishes a write is never stranded:
//    sender threads play ping-pong with the worker's OnSend, so each Send
//    races the end of the previous write, hundreds of thousands of times;
//    each round must be written within two seconds, whatever the
//    interleaving (a lost wake-up leaves the buffer queued until some later
//    Send, which never comes here).
//  - A write that completes after another thread marked its session closing,
//    but before the worker began the session's drain, is not written again
//    by that drain.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "servercore/packet_writer.h"
#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint16_t kBurstId = 3;  // client -> server: [u32 round][u32 count]
constexpr uint16_t kDataId = 4;   // server -> client: [u32 a][u32 b]
// Every data packet: 4-byte header, two u32.
constexpr size_t kDataPacketSize = kPacketHeaderSize + 8;
constexpr size_t kIovMax = IOV_MAX;

SendBufferRef DataPacket(uint32_t a, uint32_t b) {
  PacketWriter packet(kDataId, 8);
  packet.WriteU32(a).WriteU32(b);
  return packet.Finish();
}

std::vector<std::byte> TwoWords(uint32_t a, uint32_t b) {
  std::vector<std::byte> payload(8);
  std::memcpy(payload.data(), &a, 4);
  std::memcpy(payload.data() + 4, &b, 4);
  return payload;
}

class SendPathTest : public BackendTest {};

// --- One gather write per burst --------------------------------------------

// On [round][count], Sends `count` data packets [round][0..count-1] from
// OnRecvPacket, i.e. on its worker with no write in flight: they all wait in
// the queue until the worker flushes after this round of events.
class BurstSession : public PacketSession {
 public:
  explicit BurstSession(std::atomic<int>* refused) : refused_(refused) {}

 protected:
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    if (id != kBurstId || payload.size() != 8) {
      ProtocolError("not a burst request");
      return;
    }
    uint32_t round;
    uint32_t count;
    std::memcpy(&round, payload.data(), 4);
    std::memcpy(&count, payload.data() + 4, 4);
    for (uint32_t i = 0; i < count; ++i) {
      if (!Send(DataPacket(round, i))) refused_->fetch_add(1);
    }
  }

 private:
  std::atomic<int>* const refused_;
};

// Asks the server for bursts of each size in `counts`, one at a time with the
// session quiet in between, and checks what each burst cost in writes.
void CheckBursts(ServerService& server, TestClient& client,
                 const std::atomic<int>& refused,
                 std::initializer_list<uint32_t> counts) {
  uint64_t packets_out = 0;
  uint32_t round = 0;
  for (const uint32_t count : counts) {
    SCOPED_TRACE("burst of " + std::to_string(count) + " buffers");
    // Quiet: every earlier buffer is counted as written, so no write is in
    // flight and nothing else will touch the counters.
    ASSERT_TRUE(WaitFor([&] {
      return server.GetStats().packets_out == packets_out;
    })) << "packets_out "
        << server.GetStats().packets_out << ", expected " << packets_out;
    const NetStats before = server.GetStats();

    ASSERT_TRUE(client.SendPacket(kBurstId, TwoWords(round, count)));
    for (uint32_t i = 0; i < count; ++i) {
      const std::optional<Packet> packet = client.ReadPacket();
      ASSERT_TRUE(packet.has_value()) << "only " << i << " packets arrived";
      ASSERT_EQ(packet->id, kDataId) << "packet " << i;
      ASSERT_TRUE(packet->payload == TwoWords(round, i))
          << "packet " << i << " is not [" << round << "][" << i << "]";
    }
    packets_out += count;
    ASSERT_TRUE(WaitFor([&] {
      return server.GetStats().packets_out == packets_out;
    })) << "packets_out "
        << server.GetStats().packets_out << ", expected " << packets_out;
    const NetStats after = server.GetStats();

    const uint64_t writes = (count + kIovMax - 1) / kIovMax;
    EXPECT_EQ(after.write_syscalls - before.write_syscalls, writes)
        << count << " buffers queued with no write in flight must leave in "
        << writes << " gather write(s) of up to IOV_MAX = " << kIovMax
        << " iovecs";
    EXPECT_EQ(after.iovecs_written - before.iovecs_written, count)
        << "every buffer is one iovec, each written once";
    EXPECT_EQ(after.partial_writes - before.partial_writes, 0u)
        << count * kDataPacketSize
        << " bytes fit the socket whole: no write may come back short";
    EXPECT_EQ(after.bytes_out - before.bytes_out, count * kDataPacketSize);
    EXPECT_EQ(refused.load(), 0);
    ++round;
  }
  EXPECT_TRUE(client.IsQuiet(std::chrono::milliseconds(20)))
      << "bytes after the last burst";
}

// N buffers queued while no write is in flight leave in exactly one sendmsg
// carrying N iovecs, none short; the client reads the N packets in order.
TEST_P(SendPathTest, BuffersQueuedWhileIdleLeaveInOneGatherWrite) {
  std::atomic<int> refused{0};
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<BurstSession>(&refused); },
      Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  CheckBursts(*server, client, refused, {1, 2, 7, 64, 1023, kIovMax});
}

// More than IOV_MAX buffers queued at once leave in ceil(N / IOV_MAX) writes:
// full ones of IOV_MAX iovecs, then the rest.
TEST_P(SendPathTest, MoreThanIovMaxBuffersLeaveInFullGatherWrites) {
  std::atomic<int> refused{0};
  SERVERCORE_START_SERVER(
      server, [&] { return std::make_shared<BurstSession>(&refused); },
      Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  CheckBursts(*server, client, refused,
              {kIovMax + 1, 1500, 2 * kIovMax, 2 * kIovMax + 7});
}

// --- Send racing the end of a write ----------------------------------------

inline void CpuRelax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// CpuRelax() calls per microsecond on this machine, measured once.
uint32_t RelaxPerMicrosecond() {
  static const uint32_t per_us = [] {
    constexpr uint32_t kProbe = 200'000;
    const auto start = Clock::now();
    for (uint32_t i = 0; i < kProbe; ++i) CpuRelax();
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        Clock::now() - start)
                        .count();
    return static_cast<uint32_t>(
        std::max<int64_t>(1, kProbe / std::max<int64_t>(1, us)));
  }();
  return per_us;
}

// Counts, in OnSend, the bytes the kernel took, for a sender thread to wait
// on; then idles on the worker for a pseudo-random moment (0..1 µs) before
// the worker goes on to look at the queue again. The sender reacts to the
// count after a roughly fixed delay, so the jitter sweeps its next Send
// across the worker's end-of-write check, before, during and after it.
class PingPongSession : public PacketSession {
 public:
  explicit PingPongSession(uint32_t jitter_spins)
      : jitter_spins_(jitter_spins) {}

  uint64_t written() const noexcept {
    return written_.load(std::memory_order_acquire);
  }

 protected:
  void OnRecvPacket(uint16_t, std::span<const std::byte>) override {}

  void OnSend(size_t bytes) override {
    written_.fetch_add(bytes, std::memory_order_release);
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    const uint64_t spins = rng_ % (jitter_spins_ + 1);
    for (uint64_t i = 0; i < spins; ++i) CpuRelax();
  }

 private:
  const uint32_t jitter_spins_;
  uint64_t rng_ = 0x9E3779B97F4A7C15ull ^ id();
  std::atomic<uint64_t> written_{0};
};

// Reads every client without blocking (polled every 200 µs, so reading takes
// little CPU from the threads that race), and checks each stream: data
// packets [session][0], [session][1], ... from one server session.
class StreamReader {
 public:
  explicit StreamReader(std::vector<TestClient>& clients)
      : clients_(clients), streams_(clients.size()) {}

  // One pass over every socket; false (with `error` set) on a bad stream.
  bool Poll() {
    std::byte buf[64 * 1024];
    for (size_t c = 0; c < clients_.size(); ++c) {
      Stream& s = streams_[c];
      for (;;) {
        const ssize_t n =
            ::recv(clients_[c].fd(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0) break;
        s.pending.insert(s.pending.end(), buf, buf + n);
      }
      size_t at = 0;
      for (; s.pending.size() - at >= kDataPacketSize; at += kDataPacketSize) {
        const std::byte* p = s.pending.data() + at;
        uint16_t size;
        uint16_t id;
        uint32_t session;
        uint32_t seq;
        std::memcpy(&size, p, 2);
        std::memcpy(&id, p + 2, 2);
        std::memcpy(&session, p + 4, 4);
        std::memcpy(&seq, p + 8, 4);
        if (size != kDataPacketSize || id != kDataId) {
          error = "client " + std::to_string(c) + ": bad header";
          return false;
        }
        if (s.packets == 0) s.session = session;
        if (session != s.session || seq != s.packets) {
          error = "client " + std::to_string(c) + ": got [" +
                  std::to_string(session) + "][" + std::to_string(seq) +
                  "], expected [" + std::to_string(s.session) + "][" +
                  std::to_string(s.packets) + "]";
          return false;
        }
        ++s.packets;
      }
      s.pending.erase(s.pending.begin(),
                      s.pending.begin() + static_cast<std::ptrdiff_t>(at));
    }
    return true;
  }

  uint64_t Total() const {
    uint64_t total = 0;
    for (const Stream& s : streams_) total += s.packets;
    return total;
  }

  std::string error;

 private:
  struct Stream {
    std::vector<std::byte> pending;
    uint32_t session = 0;
    uint64_t packets = 0;
  };
  std::vector<TestClient>& clients_;
  std::vector<Stream> streams_;
};

// One sender thread per session plays ping-pong with the session's worker:
// Send one buffer, spin until OnSend reports it written, Send the next at
// once. So every Send lands around the end of the previous write, where the
// worker finds the queue empty and re-arms the flush request; with the
// worker's jitter the two meet in every order. Eight sessions, so eight
// spinning senders: on a small machine they outnumber the cores, and the
// worker is often preempted mid-step, which stretches any unguarded moment
// from nanoseconds to a time slice; on a large one the eight race in
// parallel, tens of thousands of rounds a second each. A Send whose flush
// request is lost there is never written (nothing is sent behind it until
// it is): its round times out and the test fails.
TEST_P(SendPathTest, SendRacingTheEndOfAWriteIsNeverStranded) {
  constexpr size_t kSessions = 8;
  // Not scaled: a sanitized build still races ~200k rounds in this time.
  constexpr std::chrono::milliseconds kDuration{4000};
  constexpr auto kRoundTimeout = std::chrono::seconds(2);
  const uint32_t jitter_spins = RelaxPerMicrosecond();

  std::mutex mu;
  std::vector<std::shared_ptr<PingPongSession>> sessions;
  SERVERCORE_START_SERVER(
      server,
      [&] {
        auto session = std::make_shared<PingPongSession>(jitter_spins);
        std::lock_guard lock(mu);
        sessions.push_back(session);
        return session;
      },
      Options());
  std::vector<TestClient> clients(kSessions);
  for (TestClient& client : clients)
    ASSERT_TRUE(client.Connect(server->port()));
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    if (sessions.size() != kSessions) return false;
    for (const auto& session : sessions) {
      if (!session->IsConnected()) return false;
    }
    return true;
  })) << "the sessions did not come up";

  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::mutex failure_mu;
  std::string failure;
  std::vector<uint64_t> rounds(kSessions, 0);
  std::vector<std::thread> senders;
  ScopeExit join([&] {
    stop.store(true);
    for (std::thread& t : senders) t.join();
  });
  auto fail = [&](std::string why) {
    std::lock_guard lock(failure_mu);
    if (!failed.exchange(true)) failure = std::move(why);
  };
  const auto begin = Clock::now();
  const auto end = begin + kDuration;
  for (size_t s = 0; s < kSessions; ++s) {
    senders.emplace_back([&, s] {
      PingPongSession& session = *sessions[s];
      const auto index = static_cast<uint32_t>(s);
      uint64_t sent_bytes = 0;
      SendBufferRef next = DataPacket(index, 0);
      for (uint32_t seq = 0;; ++seq) {
        if (!session.Send(std::move(next))) {
          fail("session " + std::to_string(s) + " refused buffer " +
               std::to_string(seq));
          break;
        }
        sent_bytes += kDataPacketSize;
        ++rounds[s];
        const bool last = stop.load() || failed.load() || Clock::now() >= end;
        if (!last) next = DataPacket(index, seq + 1);
        // Wait for this buffer to be written: spin (the point is to Send
        // right after it), glancing at the clock every 128 spins and giving
        // the core away every 1024 (~50 µs), always under a sanitizer.
        const auto deadline = Clock::now() + kRoundTimeout;
        for (uint32_t spin = 1; session.written() < sent_bytes; ++spin) {
          CpuRelax();
          if (spin % 128 != 0) continue;
          if (failed.load()) break;  // reported already
          if (Clock::now() > deadline) {
            const uint64_t stranded =
                (sent_bytes - session.written()) / kDataPacketSize;
            const auto at =
                std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - kRoundTimeout - begin);
            fail("lost wake-up: " + std::to_string(stranded) +
                 " buffers stranded: session " + std::to_string(s) +
                 " still holds " + std::to_string(session.PendingSendBytes()) +
                 " unsent bytes 2 s after its Send of round " +
                 std::to_string(seq) + " (" + std::to_string(at.count()) +
                 " ms into the race); a Send racing the end of a write was "
                 "queued but the worker was never asked to flush it");
            break;
          }
          if (kSanitized || spin % 1024 == 0) std::this_thread::yield();
        }
        if (last || failed.load()) break;
      }
      SendBufferManager::Instance().ReleaseThreadChunk();
    });
  }

  StreamReader reader(clients);
  while (!failed.load() && Clock::now() < end && reader.Poll()) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  stop.store(true);
  for (std::thread& t : senders) t.join();
  senders.clear();
  ASSERT_FALSE(failed.load()) << failure;
  ASSERT_TRUE(reader.error.empty()) << reader.error;

  uint64_t total_rounds = 0;
  for (uint64_t r : rounds) total_rounds += r;
  // Every buffer was written (each round waited for it); all of them reach
  // the clients, each stream in order.
  const auto read_deadline = Clock::now() + std::chrono::seconds(10);
  while (reader.Total() < total_rounds && Clock::now() < read_deadline) {
    ASSERT_TRUE(reader.Poll()) << reader.error;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(reader.Total(), total_rounds);
  EXPECT_EQ(server->GetStats().packets_out, total_rounds);
  EXPECT_GT(total_rounds, Scaled(1000, 100)) << "too few rounds to race";
  std::printf("[          ] %s: %llu ping-pong rounds in %lld ms\n",
              std::string(ToString(GetParam())).c_str(),
              static_cast<unsigned long long>(total_rounds),
              static_cast<long long>(kDuration.count()));
}

// --- A write completing as the session closes -----------------------------

constexpr uint16_t kHoldId = 5;  // client -> server: the handler waits
constexpr uint16_t kPokeId = 6;  // client -> server: a packet to the target
constexpr uint16_t kMarkId = 7;  // server -> client: the packet poked

// The two sessions of the test below, on one worker. The target (the first
// session) waits in its handler on kHold until `released` passes `hold`. The
// poker (the second) Sends one kMark packet to the target on kPoke, and
// waits in its OnDisconnected until `released` reaches 2.
struct CloseRace {
  std::atomic<int> holds{0};
  std::atomic<int> released{0};
  std::atomic<bool> poker_closing{false};
  std::mutex mu;
  SessionRef target;
};

class CloseRaceSession : public PacketSession {
 public:
  CloseRaceSession(CloseRace* race, bool poker) : race_(race), poker_(poker) {}

 protected:
  void OnRecvPacket(uint16_t id, std::span<const std::byte>) override {
    if (id == kHoldId) {
      const int hold = race_->holds.fetch_add(1) + 1;
      (void)WaitFor([&] { return race_->released.load() >= hold; });
    } else if (id == kPokeId) {
      SessionRef target;
      {
        std::lock_guard lock(race_->mu);
        target = race_->target;
      }
      PacketWriter mark(kMarkId, 4);
      mark.WriteU32(0x5EED);
      target->Send(mark.Finish());
    }
  }
  void OnDisconnected(DisconnectReason) override {
    if (!poker_) return;
    race_->poker_closing.store(true);
    (void)WaitFor([&] { return race_->released.load() >= 2; });
  }

 private:
  CloseRace* const race_;
  const bool poker_;
};

// A write that completes after another thread marked its session closing,
// but before the worker began that session's drain, counts as written: the
// drain must not write it again. The worker is led into that order:
//  1. held in the target's handler, while the poker's client sends kPoke
//     and closes, so that the packet and the end of stream come together;
//  2. let go, it handles kPoke (a Send to the target: its write is prepared
//     this round), the poker's close, and finalises the poker, whose
//     OnDisconnected holds the worker again, with the write not yet
//     submitted (io_uring) or already done (epoll);
//  3. meanwhile this thread closes the target (kLocal: what is queued is
//     drained), which the worker learns of only after its next wait, which
//     also returns the write's completion.
// The target's client must read the kMark packet exactly once.
TEST_P(SendPathTest, WriteCompletingAsItsSessionClosesIsNotWrittenTwice) {
  CloseRace race;
  std::atomic<int> made{0};
  ServiceOptions options = Options();
  options.worker_threads = 1;
  SERVERCORE_START_SERVER(
      server,
      [&]() -> SessionRef {
        const bool poker = made.fetch_add(1) > 0;
        auto session = std::make_shared<CloseRaceSession>(&race, poker);
        if (!poker) {
          std::lock_guard lock(race.mu);
          race.target = session;
        }
        return session;
      },
      options);
  TestClient target;
  ASSERT_TRUE(target.Connect(server->port()));
  ASSERT_TRUE(target.SendPacket(kHoldId, {}));
  ASSERT_TRUE(WaitFor([&] { return race.holds.load() == 1; }));
  TestClient poker;
  ASSERT_TRUE(poker.Connect(server->port()));
  // The worker is held: the poker's session is accepted but not attached
  // yet, its bytes and its end of stream wait in the socket together.
  ASSERT_TRUE(poker.SendPacket(kPokeId, {}));
  poker.Close();
  race.released.store(1);
  ASSERT_TRUE(WaitFor([&] { return race.poker_closing.load(); }));
  {
    std::lock_guard lock(race.mu);
    race.target->Disconnect(DisconnectReason::kLocal);
  }
  race.released.store(2);
  int marks = 0;
  while (std::optional<Packet> packet = target.ReadPacket()) {
    EXPECT_EQ(packet->id, kMarkId);
    ++marks;
  }
  EXPECT_EQ(marks, 1) << "the poked packet, written once";
  EXPECT_EQ(made.load(), 2);
  server->Stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, SendPathTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
