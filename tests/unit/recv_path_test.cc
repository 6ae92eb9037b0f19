// The receive path a session sees (SocketState::Received), through the
// SessionHarness: reads land in a buffer the backend reuses, the session
// consumes what it can straight from there, and only the unfinished message
// at the end is kept, as the session's receive tail, counted in the memory
// budget while it exists and given back once the session is quiet.
//   - packets split at every byte boundary arrive whole and in order;
//   - a session that cannot tell message sizes is offered its unconsumed
//     bytes again, joined with the next read;
//   - only the bytes that finish a message are copied into the tail, whose
//     storage is sized by the message's header;
//   - a message that cannot fit the receive limit closes the session as a
//     protocol error, whatever way it arrives;
//   - the tail's storage goes back at the first of the worker's sweeps to
//     find the session quiet since the one before.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "servercore/packet_session.h"
#include "testing/session_harness.h"

namespace servercore::testing {
namespace {

using Bytes = std::vector<std::byte>;

// The payload counts up from the id's low byte, so any mix-up shows.
Bytes Packet(uint16_t id, size_t payload_size) {
  const auto fill = static_cast<uint8_t>(id);
  const size_t size = 4 + payload_size;
  Bytes out = {std::byte(size & 0xff), std::byte(size >> 8),
               std::byte(id & 0xff), std::byte(id >> 8)};
  for (size_t i = 0; i < payload_size; ++i) {
    out.push_back(std::byte(static_cast<uint8_t>(fill + i)));
  }
  return out;
}

// Records every packet, checking that its payload is what Packet() made.
class RecordingSession final : public PacketSession {
 public:
  explicit RecordingSession(size_t max_packet) : PacketSession(max_packet) {}
  std::vector<std::pair<uint16_t, size_t>> packets;
  bool corrupt = false;

 protected:
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    const auto fill = static_cast<uint8_t>(id);
    for (size_t i = 0; i < payload.size(); ++i) {
      if (payload[i] != std::byte(static_cast<uint8_t>(fill + i))) {
        corrupt = true;
      }
    }
    packets.emplace_back(id, payload.size());
  }
};

// Consumes whole lines ending in '\n' and cannot tell a line's length
// before its end (BegunMessageSize stays 0).
class LineSession final : public Session {
 public:
  std::vector<std::string> lines;
  size_t offers = 0;

 protected:
  size_t OnRecv(std::span<const std::byte> data) override {
    ++offers;
    size_t consumed = 0;
    for (size_t i = 0; i < data.size(); ++i) {
      if (data[i] == std::byte{'\n'}) {
        lines.emplace_back(
            reinterpret_cast<const char*>(data.data()) + consumed,
            i - consumed);
        consumed = i + 1;
      }
    }
    return consumed;
  }
};

Bytes Text(std::string_view text) {
  Bytes out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

class RecvPathTest : public ::testing::Test {
 protected:
  explicit RecvPathTest(ServiceOptions options = {.recv_buffer_size = 4096})
      : harness_(options) {}

  template <typename S, typename... Args>
  std::shared_ptr<S> Connect(Args&&... args) {
    auto session = std::make_shared<S>(std::forward<Args>(args)...);
    harness_.Add(session);
    harness_.RunRound();
    return session;
  }

  SessionHarness harness_;
};

TEST_F(RecvPathTest, PacketsSplitAtEveryByteArriveWholeAndInOrder) {
  Bytes stream;
  const size_t sizes[] = {0, 1, 3, 4, 100, 1000, 4092, 7, 0, 2000};
  uint16_t id = 10;
  for (size_t size : sizes) {
    const Bytes p = Packet(id++, size);
    stream.insert(stream.end(), p.begin(), p.end());
  }
  for (size_t split = 1; split < stream.size(); ++split) {
    auto session = Connect<RecordingSession>(4096);
    harness_.Receive(*session, std::span(stream).first(split));
    harness_.Receive(*session, std::span(stream).subspan(split));
    ASSERT_EQ(session->packets.size(), std::size(sizes)) << "split " << split;
    for (size_t i = 0; i < std::size(sizes); ++i) {
      EXPECT_EQ(session->packets[i].first, 10 + i);
      EXPECT_EQ(session->packets[i].second, sizes[i]);
    }
    EXPECT_FALSE(session->corrupt) << "split " << split;
    EXPECT_EQ(harness_.ReceiveHeld(*session), 0u);
    session->Disconnect(DisconnectReason::kLocal);
    harness_.RunUntilQuiet();
  }
}

TEST_F(RecvPathTest, OneByteAtATime) {
  auto session = Connect<RecordingSession>(4096);
  Bytes stream = Packet(1, 300);
  const Bytes second = Packet(2, 0);
  stream.insert(stream.end(), second.begin(), second.end());
  for (size_t i = 0; i < stream.size(); ++i) {
    harness_.Receive(*session, std::span(stream).subspan(i, 1));
    EXPECT_EQ(harness_.ReceiveHeld(*session),
              i + 1 < 304 ? i + 1 : (i + 1 - 304) % 4);
  }
  ASSERT_EQ(session->packets.size(), 2u);
  EXPECT_FALSE(session->corrupt);
}

TEST_F(RecvPathTest, ASessionThatCannotTellSizesIsOfferedItsBytesAgain) {
  auto session = Connect<LineSession>();
  harness_.Receive(*session, Text("hel"));
  EXPECT_TRUE(session->lines.empty());
  EXPECT_EQ(harness_.ReceiveHeld(*session), 3u);
  harness_.Receive(*session, Text("lo\nwor"));
  harness_.Receive(*session, Text("ld\n\nlast"));
  ASSERT_EQ(session->lines.size(), 3u);
  EXPECT_EQ(session->lines[0], "hello");
  EXPECT_EQ(session->lines[1], "world");
  EXPECT_EQ(session->lines[2], "");
  EXPECT_EQ(harness_.ReceiveHeld(*session), 4u);
}

TEST_F(RecvPathTest, OnlyTheBytesThatFinishAMessageAreKept) {
  auto session = Connect<RecordingSession>(4096);
  const size_t base = harness_.MemoryUsed();
  // Two whole packets and the first 10 bytes of a third of 1,000 bytes.
  Bytes stream = Packet(1, 50);
  const Bytes second = Packet(2, 50);
  const Bytes third = Packet(3, 996);
  stream.insert(stream.end(), second.begin(), second.end());
  stream.insert(stream.end(), third.begin(), third.begin() + 10);
  harness_.Receive(*session, stream);
  EXPECT_EQ(session->packets.size(), 2u);
  EXPECT_EQ(harness_.ReceiveHeld(*session), 10u);
  // The tail's storage is sized by the header: one packet, not the limit.
  EXPECT_EQ(harness_.MemoryUsed() - base, 1000u);
  // The rest of it, and a fourth packet whole, in one read.
  Bytes rest(third.begin() + 10, third.end());
  const Bytes fourth = Packet(4, 20);
  rest.insert(rest.end(), fourth.begin(), fourth.end());
  harness_.Receive(*session, rest);
  ASSERT_EQ(session->packets.size(), 4u);
  EXPECT_EQ(session->packets[2].second, 996u);
  EXPECT_FALSE(session->corrupt);
  EXPECT_EQ(harness_.ReceiveHeld(*session), 0u);
}

TEST_F(RecvPathTest, AHeaderSplitInsideItselfStillSizesTheTail) {
  auto session = Connect<RecordingSession>(4096);
  const size_t base = harness_.MemoryUsed();
  const Bytes packet = Packet(7, 2000);
  harness_.Receive(*session, std::span(packet).first(1));
  harness_.Receive(*session, std::span(packet).subspan(1, 2));
  harness_.Receive(*session, std::span(packet).subspan(3, 500));
  EXPECT_EQ(harness_.ReceiveHeld(*session), 503u);
  EXPECT_LE(harness_.MemoryUsed() - base, 2004u);
  harness_.Receive(*session, std::span(packet).subspan(503));
  ASSERT_EQ(session->packets.size(), 1u);
  EXPECT_FALSE(session->corrupt);
}

TEST_F(RecvPathTest, AMessageLargerThanTheLimitIsAProtocolError) {
  // A session that never consumes: the limit (4096) is reached in one read.
  auto line = Connect<LineSession>();
  harness_.Receive(*line, Bytes(5000, std::byte{'x'}));
  harness_.RunUntilQuiet();
  EXPECT_EQ(harness_.Closed(DisconnectReason::kProtocolError), 1u);
  // ... or over several, through the tail.
  auto slow = Connect<LineSession>();
  for (int i = 0; i < 5; ++i) {
    harness_.Receive(*slow, Bytes(1000, std::byte{'y'}));
  }
  harness_.RunUntilQuiet();
  EXPECT_EQ(harness_.Closed(DisconnectReason::kProtocolError), 2u);
  // A packet header past max_packet: the framer's own error.
  auto packets = Connect<RecordingSession>(1024);
  const Bytes big = Packet(1, 2000);
  harness_.Receive(*packets, std::span(big).first(600));
  harness_.RunUntilQuiet();
  EXPECT_EQ(harness_.Closed(DisconnectReason::kProtocolError), 3u);
  EXPECT_TRUE(packets->packets.empty());
}

class RecvPathSweepTest : public RecvPathTest {
 protected:
  // The sweep runs every 10 ms (a quarter of the shortest timeout); the
  // send stall timeout never fires here (nothing is ever in flight).
  RecvPathSweepTest()
      : RecvPathTest({.recv_buffer_size = 4096,
                      .send_stall_timeout = std::chrono::milliseconds(40)}) {}
};

TEST_F(RecvPathSweepTest, TheTailIsGivenBackOnceTheSessionIsQuiet) {
  auto session = Connect<RecordingSession>(4096);
  const size_t base = harness_.MemoryUsed();
  const Bytes packet = Packet(1, 3000);
  harness_.Receive(*session, std::span(packet).first(100));
  EXPECT_EQ(harness_.MemoryUsed() - base, 3004u);
  // Sweeps while the message is unfinished keep it.
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    harness_.RunRound();
  }
  EXPECT_EQ(harness_.MemoryUsed() - base, 3004u);
  harness_.Receive(*session, std::span(packet).subspan(100));
  ASSERT_EQ(session->packets.size(), 1u);
  // The first sweep after a read finds the session busy and keeps the
  // storage (a busy session allocates nothing per sweep); the next, after a
  // sweep period with no read, gives it back.
  std::this_thread::sleep_for(std::chrono::milliseconds(15));
  harness_.RunRound();
  EXPECT_EQ(harness_.MemoryUsed() - base, 3004u);
  std::this_thread::sleep_for(std::chrono::milliseconds(15));
  harness_.RunRound();
  EXPECT_EQ(harness_.MemoryUsed(), base);
  EXPECT_EQ(harness_.ReceiveHeld(*session), 0u);
}

}  // namespace
}  // namespace servercore::testing
