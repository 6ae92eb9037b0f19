// Shared pieces of the network contract suite: sessions used by the tests and
// a fixture that runs each test once per backend. Packets are built with
// servercore's MakePacket / PacketWriter (servercore/packet_writer.h).
#ifndef SERVERCORE_TESTS_INTEGRATION_SERVICE_TEST_UTIL_H_
#define SERVERCORE_TESTS_INTEGRATION_SERVICE_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "servercore/packet_session.h"
#include "servercore/packet_writer.h"
#include "servercore/send_buffer_manager.h"
#include "servercore/service.h"
#include "tests/support/test_client.h"

namespace servercore::test {

// Sanitizers slow everything down 5-10x: loops that push volume use Scaled()
// so they stay fast there while still crossing the same code paths.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

constexpr size_t Scaled(size_t release, size_t sanitized) noexcept {
  return kSanitized ? sanitized : release;
}

// Answers every packet with the same packet (id and payload unchanged).
class EchoSession : public PacketSession {
 public:
  using PacketSession::PacketSession;

 protected:
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    Send(MakePacket(id, payload));
  }
};

// Polls `condition` until it holds or `timeout` passes.
inline bool WaitFor(
    const std::function<bool()>& condition,
    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// The most a TCP socket's send buffer may grow to (tcp_wmem's maximum): what
// the kernel may take of a session's output before any of it stays queued.
inline size_t MaxSocketSendBuffer() {
  size_t min = 0, def = 0, max = 4 * 1024 * 1024;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_wmem", "r")) {
    if (std::fscanf(f, "%zu %zu %zu", &min, &def, &max) != 3) {
      max = 4 * 1024 * 1024;
    }
    std::fclose(f);
  }
  return max;
}

class SessionTracker;

// An EchoSession that reports to a SessionTracker: OnConnected and
// OnDisconnected are counted (per session and in total), and the first 4
// payload bytes of the first packet it receives (a little-endian u32) become
// its tag, so a test can find the server session of one of its clients. With
// echo off it swallows what it receives (still taking the tag).
class TrackedSession : public EchoSession {
 public:
  TrackedSession(SessionTracker* tracker, bool echo, size_t max_packet)
      : EchoSession(max_packet), tracker_(tracker), echo_(echo) {}

  static constexpr int64_t kNoTag = -1;
  int64_t tag() const noexcept { return tag_.load(std::memory_order_acquire); }
  int connects() const noexcept { return connects_.load(); }
  int disconnects() const noexcept { return disconnects_.load(); }
  DisconnectReason reason() const noexcept { return reason_.load(); }

 protected:
  inline void OnConnected() override;
  inline void OnRecvPacket(uint16_t id,
                           std::span<const std::byte> payload) override;
  inline void OnDisconnected(DisconnectReason reason) override;

 private:
  SessionTracker* const tracker_;
  const bool echo_;
  std::atomic<int64_t> tag_{kNoTag};
  std::atomic<int> connects_{0};
  std::atomic<int> disconnects_{0};
  std::atomic<DisconnectReason> reason_{DisconnectReason::kCount};
};

// Remembers every session its factory made (keeping a SessionRef, as an
// application may) and counts their hooks. Declare it before the server so
// it outlives the server's workers.
class SessionTracker {
 public:
  Service::SessionFactory Factory(bool echo = true, size_t max_packet = 4096) {
    return [this, echo, max_packet] {
      auto session = std::make_shared<TrackedSession>(this, echo, max_packet);
      std::lock_guard lock(mu_);
      sessions_.push_back(session);
      return session;
    };
  }

  std::vector<std::shared_ptr<TrackedSession>> Sessions() const {
    std::lock_guard lock(mu_);
    return sessions_;
  }
  // The session whose first packet carried `tag`, or null.
  std::shared_ptr<TrackedSession> FindByTag(uint32_t tag) const {
    std::lock_guard lock(mu_);
    for (const auto& session : sessions_) {
      if (session->tag() == tag) return session;
    }
    return nullptr;
  }
  // Waits until sessions tagged 0..n-1 all exist; returns them by tag.
  std::vector<std::shared_ptr<TrackedSession>> WaitForTags(
      size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::vector<std::shared_ptr<TrackedSession>> by_tag(n);
    const bool ok = WaitFor(
        [&] {
          std::lock_guard lock(mu_);
          size_t found = 0;
          for (const auto& session : sessions_) {
            const int64_t tag = session->tag();
            if (tag >= 0 && static_cast<size_t>(tag) < n) {
              by_tag[static_cast<size_t>(tag)] = session;
            }
          }
          for (const auto& session : by_tag) found += session != nullptr;
          return found == n;
        },
        timeout);
    if (!ok) by_tag.clear();
    return by_tag;
  }

  int connected() const noexcept { return connected_.load(); }
  int disconnected() const noexcept { return disconnected_.load(); }
  int closed(DisconnectReason reason) const noexcept {
    return by_reason_[static_cast<size_t>(reason)].load();
  }

 private:
  friend class TrackedSession;

  mutable std::mutex mu_;
  std::vector<std::shared_ptr<TrackedSession>> sessions_;
  std::atomic<int> connected_{0};
  std::atomic<int> disconnected_{0};
  std::array<std::atomic<int>, kDisconnectReasonCount + 1> by_reason_{};
};

void TrackedSession::OnConnected() {
  connects_.fetch_add(1);
  tracker_->connected_.fetch_add(1);
}

void TrackedSession::OnRecvPacket(uint16_t id,
                                  std::span<const std::byte> payload) {
  if (echo_) EchoSession::OnRecvPacket(id, payload);
  // Tagged after the echo was queued, so the echo of the tag packet is the
  // first thing its client reads.
  if (tag() == kNoTag && payload.size() >= sizeof(uint32_t)) {
    uint32_t tag;
    std::memcpy(&tag, payload.data(), sizeof(tag));
    tag_.store(tag, std::memory_order_release);
  }
}

void TrackedSession::OnDisconnected(DisconnectReason reason) {
  reason_.store(reason);
  disconnects_.fetch_add(1);
  tracker_->by_reason_[static_cast<size_t>(reason)].fetch_add(1);
  tracker_->disconnected_.fetch_add(1);
}

// The pool's occupancy, to check that every chunk came back: release the
// calling thread's own chunk first, so it does not count.
inline SendBufferManager::Stats PoolStatsWithoutThisThread() {
  SendBufferManager::Instance().ReleaseThreadChunk();
  return SendBufferManager::Instance().GetStats();
}

// This process's resident memory, from /proc/self/statm (0 if unreadable).
inline size_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long pages = 0;
  unsigned long resident = 0;
  if (std::fscanf(f, "%lu %lu", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

// Runs `f` when the scope ends (test threads must be joined even when an
// ASSERT returns early).
class ScopeExit {
 public:
  explicit ScopeExit(std::function<void()> f) : f_(std::move(f)) {}
  ~ScopeExit() { f_(); }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;

 private:
  std::function<void()> f_;
};

// Deterministic payload bytes: byte i of stream `key`.
inline std::byte PatternByte(uint64_t key, size_t i) noexcept {
  uint64_t x = key * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<std::byte>(x ^ (x >> 17));
}

// Payload of packet `seq` from sender `sender`: [u32 sender][u32 seq][filler],
// the filler's length (`extra` + 0..299) and bytes fixed by (sender, seq).
inline std::vector<std::byte> SequencedPayload(uint32_t sender, uint32_t seq,
                                               size_t extra = 0) {
  const size_t filler = extra + (sender * 7u + seq * 13u) % 300u;
  std::vector<std::byte> payload(8 + filler);
  std::memcpy(payload.data(), &sender, 4);
  std::memcpy(payload.data() + 4, &seq, 4);
  const uint64_t key = (uint64_t{sender} << 32) | seq;
  for (size_t i = 0; i < filler; ++i) payload[8 + i] = PatternByte(key, i);
  return payload;
}

// Checks packets made by SequencedPayload as they arrive: each sender's must
// come complete and in order. Not thread-safe (one per reading thread).
class SequenceChecker {
 public:
  explicit SequenceChecker(size_t senders, size_t extra = 0)
      : next_(senders, 0), extra_(extra) {}
  // Empty when `packet` is the next one of its sender; else what is wrong.
  std::string Check(const Packet& packet, uint16_t id) {
    if (packet.id != id) return "id " + std::to_string(packet.id);
    if (packet.payload.size() < 8) return "short payload";
    uint32_t sender;
    uint32_t seq;
    std::memcpy(&sender, packet.payload.data(), 4);
    std::memcpy(&seq, packet.payload.data() + 4, 4);
    if (sender >= next_.size()) return "sender " + std::to_string(sender);
    if (seq != next_[sender]) {
      return "sender " + std::to_string(sender) + ": got seq " +
             std::to_string(seq) + ", expected " +
             std::to_string(next_[sender]);
    }
    if (packet.payload != SequencedPayload(sender, seq, extra_)) {
      return "sender " + std::to_string(sender) + " seq " +
             std::to_string(seq) + ": payload corrupted";
    }
    ++next_[sender];
    ++total_;
    return {};
  }
  uint32_t next(size_t sender) const { return next_[sender]; }
  size_t total() const { return total_; }

 private:
  std::vector<uint32_t> next_;
  const size_t extra_;
  size_t total_ = 0;
};

// Connects every client, each tagging its server session with its index
// (see TrackedSession), and reads the tag's echo. False (with a failure
// recorded) on any problem.
inline bool ConnectTagged(uint16_t port, std::vector<TestClient>& clients,
                          size_t first_tag = 0) {
  for (size_t i = 0; i < clients.size(); ++i) {
    const auto tag = static_cast<uint32_t>(first_tag + i);
    if (!clients[i].Connect(port) ||
        !clients[i].SendPacket(1, std::as_bytes(std::span(&tag, 1)))) {
      ADD_FAILURE() << "client " << i << " could not connect";
      return false;
    }
  }
  for (size_t i = 0; i < clients.size(); ++i) {
    auto echo = clients[i].ReadPacket();
    if (!echo || echo->payload.size() != 4) {
      ADD_FAILURE() << "client " << i << ": no echo of its tag";
      return false;
    }
  }
  return true;
}

// Runs every test of a suite once with epoll and once with io_uring; the
// io_uring run skips, saying why, where the kernel refuses rings.
class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  ServiceOptions Options() const {
    return ServiceOptions{.worker_threads = 2, .backend = GetParam()};
  }
  // Starts a server with `factory` listening on 127.0.0.1:0, or skips.
  std::unique_ptr<ServerService> StartServer(Service::SessionFactory factory,
                                             ServiceOptions options) {
    auto server = std::make_unique<ServerService>(options, std::move(factory));
    if (std::error_code error = server->Start()) {
      if (GetParam() == Backend::kUring) {
        skip_reason_ = "io_uring unavailable here: " + error.message();
        return nullptr;
      }
      ADD_FAILURE() << "Start: " << error.message();
      return nullptr;
    }
    if (std::error_code error = server->Listen("127.0.0.1", 0)) {
      ADD_FAILURE() << "Listen: " << error.message();
      return nullptr;
    }
    return server;
  }
  std::string skip_reason_;
};

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(ToString(info.param));
}

#define SERVERCORE_START_SERVER(var, factory, options)     \
  auto var = StartServer(factory, options);                \
  if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_; \
  ASSERT_NE(var, nullptr)

}  // namespace servercore::test

#endif  // SERVERCORE_TESTS_INTEGRATION_SERVICE_TEST_UTIL_H_
