// Session::SendNow on both backends: bytes the caller holds, written at once
// by the session's worker when nothing is pending, copied and queued
// otherwise, and in every case in order with everything else sent:
//
//  - with nothing pending, on the worker: one gather write straight from the
//    caller's memory, nothing left pending when it returns;
//  - behind queued output: copied, queued, and written after it;
//  - a write the kernel takes only in part: the rest is copied and written
//    next, before what was sent after it;
//  - racing Sends from another thread, which land during the direct write
//    and must queue behind it and behind its rest: every message whole;
//  - from another thread, or on a closed session: as Send.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
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

// The raw stream of these tests: [u32 size][u32 source][u32 seq] then
// size - 12 bytes, byte i of the body being Pattern(source, i).
constexpr size_t kFrameHeader = 12;

std::byte Pattern(uint32_t source, size_t i) {
  return static_cast<std::byte>((i * 131 + i / 251 + source * 61) & 0xFF);
}

std::array<std::byte, kFrameHeader> FrameHeader(uint32_t source, uint32_t seq,
                                                size_t body) {
  std::array<std::byte, kFrameHeader> header;
  const auto size = static_cast<uint32_t>(kFrameHeader + body);
  std::memcpy(header.data(), &size, 4);
  std::memcpy(header.data() + 4, &source, 4);
  std::memcpy(header.data() + 8, &seq, 4);
  return header;
}

std::vector<std::byte> Frame(uint32_t source, uint32_t seq, size_t body) {
  std::vector<std::byte> frame(kFrameHeader + body);
  const auto header = FrameHeader(source, seq, body);
  std::memcpy(frame.data(), header.data(), kFrameHeader);
  for (size_t i = 0; i < body; ++i)
    frame[kFrameHeader + i] = Pattern(source, i);
  return frame;
}

SendBufferRef FrameBuffer(uint32_t source, uint32_t seq, size_t body) {
  const std::vector<std::byte> frame = Frame(source, seq, body);
  SendBufferRef buffer =
      SendBufferManager::Instance().Open(static_cast<uint32_t>(frame.size()));
  std::memcpy(buffer->Buffer(), frame.data(), frame.size());
  buffer->Close(static_cast<uint32_t>(frame.size()));
  return buffer;
}

// `frame` as SendNow parts: its header from one place and its body cut in
// `pieces` parts of the same memory, so a partial write can stop anywhere.
std::vector<iovec> Parts(std::vector<std::byte>& frame, size_t pieces) {
  std::vector<iovec> parts;
  parts.push_back({frame.data(), kFrameHeader});
  const size_t body = frame.size() - kFrameHeader;
  size_t at = 0;
  for (size_t p = 0; p < pieces; ++p) {
    const size_t end = body * (p + 1) / pieces;
    parts.push_back({frame.data() + kFrameHeader + at, end - at});
    at = end;
  }
  return parts;
}

// Reads and checks the frames of one connection: each whole, its body the
// pattern, each source's seq counting from 0.
class FrameReader {
 public:
  // Appends `bytes` and checks every frame they complete; false (with
  // `error` set) on a bad one.
  bool Add(std::span<const std::byte> bytes) {
    pending_.insert(pending_.end(), bytes.begin(), bytes.end());
    size_t at = 0;
    while (pending_.size() - at >= kFrameHeader) {
      uint32_t size;
      uint32_t source;
      uint32_t seq;
      std::memcpy(&size, pending_.data() + at, 4);
      std::memcpy(&source, pending_.data() + at + 4, 4);
      std::memcpy(&seq, pending_.data() + at + 8, 4);
      if (size < kFrameHeader || size > (64u << 20) || source >= kSources) {
        error = "a frame header that is not one (size " + std::to_string(size) +
                ", source " + std::to_string(source) + ") after " +
                std::to_string(frames_) + " frames";
        return false;
      }
      if (seq != next_[source]) {
        error = "source " + std::to_string(source) + ": frame " +
                std::to_string(seq) + " where " +
                std::to_string(next_[source]) + " was due";
        return false;
      }
      if (pending_.size() - at < size) break;
      for (size_t i = 0; i < size - kFrameHeader; ++i) {
        if (pending_[at + kFrameHeader + i] != Pattern(source, i)) {
          error = "source " + std::to_string(source) + ", frame " +
                  std::to_string(seq) + ": byte " + std::to_string(i) +
                  " of its body is wrong";
          return false;
        }
      }
      ++next_[source];
      ++frames_;
      sources.push_back(source);
      at += size;
    }
    pending_.erase(pending_.begin(),
                   pending_.begin() + static_cast<std::ptrdiff_t>(at));
    return true;
  }

  // Reads from `fd` until `done` holds for this reader, or the deadline.
  template <typename Done>
  bool ReadUntil(int fd, Done done,
                 std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::vector<std::byte> buf(256 * 1024);
    const auto deadline = Clock::now() + timeout;
    while (!done(*this)) {
      if (Clock::now() > deadline) {
        error = "timed out";
        return false;
      }
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n == 0) {
        error = "end of stream";
        return false;
      }
      if (n < 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      if (!Add(std::span(buf.data(), static_cast<size_t>(n)))) return false;
    }
    return true;
  }

  uint64_t frames(uint32_t source) const { return next_[source]; }
  bool idle() const { return pending_.empty(); }

  static constexpr uint32_t kSources = 4;
  std::string error;
  std::vector<uint32_t> sources;  // of every frame, in arrival order

 private:
  std::vector<std::byte> pending_;
  uint64_t next_[kSources] = {};
  uint64_t frames_ = 0;
};

// What a session's handler saw right after each SendNow.
struct Observed {
  std::atomic<int> calls{0};
  std::atomic<int> refused{0};
  // PendingSendBytes() right after the last SendNow returned.
  std::atomic<size_t> pending_after{SIZE_MAX};
};

// On each byte received, a request: 'n' SendNow of one frame (source 0) with
// nothing else pending; 'q' a queued Send (source 1) first, then the SendNow;
// 'c' Disconnect(kLocal), then the SendNow. Frames of source 0 have a body of
// `body` bytes in three parts.
class SendNowSession : public Session {
 public:
  SendNowSession(Observed* observed, size_t body)
      : observed_(observed), body_(body) {}

 protected:
  size_t OnRecv(std::span<const std::byte> data) override {
    for (const std::byte request : data) {
      if (request == std::byte{'q'}) Send(FrameBuffer(1, queued_++, 100));
      if (request == std::byte{'c'}) Disconnect(DisconnectReason::kLocal);
      std::vector<std::byte> frame = Frame(0, now_++, body_);
      const std::vector<iovec> parts = Parts(frame, 3);
      if (!SendNow(parts)) observed_->refused.fetch_add(1);
      // The frame's memory goes right after the call: what was not written
      // must have been copied.
      frame.assign(frame.size(), std::byte{0xEE});
      observed_->pending_after.store(PendingSendBytes());
      observed_->calls.fetch_add(1);
    }
    return data.size();
  }

 private:
  Observed* const observed_;
  const size_t body_;
  uint32_t now_ = 0;
  uint32_t queued_ = 0;
};

class SendNowTest : public BackendTest {};

// Makes SendNowSessions of `body`-byte frames reporting to `observed`.
Service::SessionFactory SendNowSessions(Observed& observed, size_t body) {
  return [&observed, body] {
    return std::make_shared<SendNowSession>(&observed, body);
  };
}

bool Request(TestClient& client, char what) {
  const std::byte byte{static_cast<unsigned char>(what)};
  return client.SendAll(std::span(&byte, 1));
}

// Sends request `what` and waits for the handler to have made its
// `calls`-th SendNow.
bool RequestAndWait(TestClient& client, char what, const Observed& observed,
                    int calls) {
  return Request(client, what) &&
         WaitFor([&] { return observed.calls.load() == calls; });
}

// With nothing pending, on the worker: one sendmsg carrying the header and
// the three parts, the whole frame taken before SendNow returns.
TEST_P(SendNowTest, WithNothingPendingWritesAtOnceInOneGatherWrite) {
  Observed observed;
  SERVERCORE_START_SERVER(server, SendNowSessions(observed, 4096), Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  FrameReader reader;
  for (uint32_t round = 0; round < 3; ++round) {
    const NetStats before = server->GetStats();
    ASSERT_TRUE(Request(client, 'n'));
    ASSERT_TRUE(reader.ReadUntil(client.fd(), [&](const FrameReader& r) {
      return r.frames(0) == round + 1 && r.idle();
    })) << reader.error;
    ASSERT_TRUE(WaitFor(
        [&] { return observed.calls.load() == static_cast<int>(round + 1); }));
    EXPECT_EQ(observed.pending_after.load(), 0u)
        << "the frame was queued, not written at once";
    const NetStats after = server->GetStats();
    EXPECT_EQ(after.write_syscalls - before.write_syscalls, 1u);
    EXPECT_EQ(after.iovecs_written - before.iovecs_written, 4u)
        << "the header and three parts, uncopied";
    EXPECT_EQ(after.bytes_out - before.bytes_out, kFrameHeader + 4096);
    EXPECT_EQ(after.packets_out - before.packets_out, 1u);
  }
  EXPECT_EQ(observed.refused.load(), 0);
  EXPECT_TRUE(client.IsQuiet(std::chrono::milliseconds(20)));
}

// Behind a buffer queued in the same handler: the frame is copied, queued
// after it and written after it.
TEST_P(SendNowTest, BehindQueuedOutputIsCopiedAndWrittenAfterIt) {
  Observed observed;
  SERVERCORE_START_SERVER(server, SendNowSessions(observed, 4096), Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  ASSERT_TRUE(RequestAndWait(client, 'q', observed, 1));
  FrameReader reader;
  ASSERT_TRUE(reader.ReadUntil(client.fd(), [&](const FrameReader& r) {
    return r.frames(0) == 1 && r.frames(1) == 1 && r.idle();
  })) << reader.error;
  EXPECT_EQ(reader.sources, (std::vector<uint32_t>{1, 0}))
      << "the SendNow frame overtook the queued one";
  EXPECT_EQ(observed.pending_after.load(), kFrameHeader * 2 + 100 + 4096)
      << "both frames pending, neither written, when the handler went on";
  EXPECT_EQ(observed.refused.load(), 0);
}

// The kernel takes only part of a frame larger than the socket can hold:
// the rest, copied (the frame's memory is overwritten right after the call),
// is written next, before the frame of the next request, which is then
// copied and queued too.
TEST_P(SendNowTest, PartialWriteKeepsTheRestAndWritesItFirst) {
  constexpr size_t kBody = 8 << 20;
  Observed observed;
  ServiceOptions options = Options();
  options.max_pending_bytes = 64 << 20;
  options.worker_threads = 1;
  SERVERCORE_START_SERVER(server, SendNowSessions(observed, kBody), options);
  TestClient client;
  client.SetReceiveBuffer(64 * 1024);
  ASSERT_TRUE(client.Connect(server->port()));
  ASSERT_TRUE(RequestAndWait(client, 'n', observed, 1));
  const size_t pending = observed.pending_after.load();
  EXPECT_GT(pending, 0u) << "8 MiB cannot all fit a fresh socket";
  EXPECT_LT(pending, kFrameHeader + kBody) << "the kernel took none of it";
  EXPECT_GE(server->GetStats().partial_writes, 1u);
  ASSERT_TRUE(Request(client, 'n'));
  FrameReader reader;
  ASSERT_TRUE(reader.ReadUntil(client.fd(), [&](const FrameReader& r) {
    return r.frames(0) == 2 && r.idle();
  })) << reader.error;
  EXPECT_EQ(observed.refused.load(), 0);
}

// A closed session refuses, as Send does.
TEST_P(SendNowTest, OnAClosedSessionIsRefused) {
  Observed observed;
  SERVERCORE_START_SERVER(server, SendNowSessions(observed, 64), Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  ASSERT_TRUE(RequestAndWait(client, 'c', observed, 1));
  EXPECT_EQ(observed.refused.load(), 1);
  EXPECT_TRUE(client.WaitForClose());
}

// Keeps the session for a test thread.
class KeptSession : public Session {
 public:
  explicit KeptSession(std::atomic<int>* refused) : refused_(refused) {}

 protected:
  // Each byte: SendNow of one frame (source 0): its header, and its body
  // in three parts of memory the session keeps (made once: the worker must
  // not be busy making it while Sends from another thread pile up).
  size_t OnRecv(std::span<const std::byte> data) override {
    for (size_t i = 0; i < data.size(); ++i) {
      // Every third frame is larger than the socket can take at once, so
      // its write is partial and its rest kept, while another thread goes
      // on sending; the others fit.
      const std::vector<std::byte>& body = now_ % 3 == 0 ? large_ : small_;
      const auto header = FrameHeader(0, now_++, body.size());
      std::byte* const at = const_cast<std::byte*>(body.data());
      const size_t third = body.size() / 3;
      const iovec parts[] = {
          {const_cast<std::byte*>(header.data()), header.size()},
          {at, third},
          {at + third, third},
          {at + 2 * third, body.size() - 2 * third},
      };
      if (!SendNow(parts)) refused_->fetch_add(1);
    }
    return data.size();
  }

 private:
  static std::vector<std::byte> Body(size_t size) {
    std::vector<std::byte> body(size);
    for (size_t i = 0; i < size; ++i) body[i] = Pattern(0, i);
    return body;
  }

  std::atomic<int>* const refused_;
  const std::vector<std::byte> large_ = Body(6 << 20);
  const std::vector<std::byte> small_ = Body(3000);
  uint32_t now_ = 0;
};

// The one KeptSession of a test, for the test's thread.
struct KeptSessions {
  std::atomic<int> refused{0};
  std::mutex mu;
  SessionRef session;

  Service::SessionFactory Factory() {
    return [this] {
      auto made = std::make_shared<KeptSession>(&refused);
      std::lock_guard lock(mu);
      session = made;
      return made;
    };
  }
  // The session, once connected; null if it never was.
  SessionRef WaitConnected() {
    SessionRef connected;
    (void)WaitFor([&] {
      std::lock_guard lock(mu);
      if (session != nullptr && session->IsConnected()) connected = session;
      return connected != nullptr;
    });
    return connected;
  }
};

// SendNow from a thread that is not the session's worker copies and queues:
// the frame arrives whole.
TEST_P(SendNowTest, FromAnotherThreadIsCopiedAndQueued) {
  KeptSessions kept;
  SERVERCORE_START_SERVER(server, kept.Factory(), Options());
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  const SessionRef session = kept.WaitConnected();
  ASSERT_NE(session, nullptr);
  std::vector<std::byte> frame = Frame(1, 0, 20000);
  EXPECT_TRUE(session->SendNow(Parts(frame, 4)));
  frame.assign(frame.size(), std::byte{0xEE});
  FrameReader reader;
  ASSERT_TRUE(reader.ReadUntil(client.fd(), [&](const FrameReader& r) {
    return r.frames(1) == 1 && r.idle();
  })) << reader.error;
}

// The worker's SendNow (large frames, written in part) against a thread
// that Sends to the same session all the while: a Send landing during the
// direct write, or before its rest is written, queues behind both. Every
// frame must arrive whole, each source's in order.
TEST_P(SendNowTest, RacingSendsFromAnotherThreadStayBehindEveryFrame) {
  // Rounds of three frames, 6 MiB and two small ones; a sanitized build on
  // a busy machine may take the time limit, with fewer.
  const size_t kRounds = Scaled(40, 12);
  constexpr auto kTimeLimit = std::chrono::seconds(3);
  KeptSessions kept;
  ServiceOptions options = Options();
  options.max_pending_bytes = 256 << 20;
  SERVERCORE_START_SERVER(server, kept.Factory(), options);
  TestClient client;
  client.SetReceiveBuffer(128 * 1024);
  ASSERT_TRUE(client.Connect(server->port()));
  const SessionRef target = kept.WaitConnected();
  ASSERT_NE(target, nullptr);

  std::atomic<bool> stop{false};
  std::atomic<uint32_t> sent{0};
  // A frame every few tens of microseconds, whatever is pending (a check of
  // PendingSendBytes would see a direct write's bytes and keep out of its
  // way): the session's queue is often empty, so the worker writes
  // directly, and a direct write of 6 MiB lasts long enough for Sends to
  // land during it.
  std::thread sender([&] {
    uint32_t seq = 0;
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      if (target->PendingSendBytes() > (64u << 20)) continue;
      if (!target->Send(FrameBuffer(1, seq, 64 + seq % 2000))) break;
      sent.store(++seq);
    }
  });

  FrameReader reader;
  uint32_t requests = 0;
  bool ok = true;
  const auto end = Clock::now() + kTimeLimit;
  for (size_t round = 0; round < kRounds && Clock::now() < end && ok; ++round) {
    // Three frames from a drained session (its output so far read): the
    // large one first, whose write finds the queue empty but for the
    // sender's frames, then two that find its rest pending.
    for (int i = 0; i < 3; ++i) ok = ok && Request(client, 'n');
    requests += 3;
    ok = ok && reader.ReadUntil(client.fd(), [&](const FrameReader& r) {
      return r.frames(0) == requests;
    });
  }
  stop.store(true);
  sender.join();
  ASSERT_TRUE(ok) << reader.error;
  ASSERT_TRUE(reader.ReadUntil(client.fd(),
                               [&](const FrameReader& r) {
                                 return r.frames(0) == requests &&
                                        r.frames(1) == sent.load() && r.idle();
                               }))
      << reader.error << ": " << reader.frames(0) << "/" << requests
      << " direct frames, " << reader.frames(1) << "/" << sent.load()
      << " sent";
  EXPECT_EQ(kept.refused.load(), 0);
  EXPECT_GT(sent.load(), 0u);
  EXPECT_TRUE(WaitFor([&] { return target->PendingSendBytes() == 0; }))
      << target->PendingSendBytes() << " bytes still counted as pending";
  EXPECT_GE(server->GetStats().partial_writes, 1u)
      << "the socket never filled: the rest was never kept";
}

INSTANTIATE_TEST_SUITE_P(Backends, SendNowTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
