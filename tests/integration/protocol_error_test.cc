// Bad framing from one peer (docs/PROTOCOL.md, "Bad input"): the packets before
// the bad one are handled normally (so their echoes reach the client), then
// that one connection closes with kProtocolError; every other session goes on.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "service_test_util.h"
#include "tests/support/test_client.h"

namespace servercore::test {
namespace {

class ProtocolErrorTest : public BackendTest {};

constexpr size_t kGoodBefore = 5;

// Good packets from client `index`, then a header with size `bad_size`, then
// more good packets (which must never be handled), as one byte stream.
std::vector<std::byte> StreamWithBadPacket(uint32_t index, uint16_t bad_size) {
  std::vector<std::byte> stream;
  for (uint32_t seq = 0; seq < kGoodBefore; ++seq) {
    const auto packet = EncodePacket(1, SequencedPayload(index, seq));
    stream.insert(stream.end(), packet.begin(), packet.end());
  }
  stream.push_back(std::byte(bad_size & 0xFF));
  stream.push_back(std::byte(bad_size >> 8));
  stream.push_back(std::byte{1});
  stream.push_back(std::byte{0});
  stream.resize(stream.size() + 64, std::byte{0x5A});  // bytes of the bad one
  for (uint32_t seq = kGoodBefore; seq < kGoodBefore + 3; ++seq) {
    const auto packet = EncodePacket(1, SequencedPayload(index, seq));
    stream.insert(stream.end(), packet.begin(), packet.end());
  }
  return stream;
}

// Sends `count` packets from client `index` starting at `first` and checks
// their echoes, byte for byte.
void ExpectEchoes(TestClient& client, uint32_t index, uint32_t first,
                  uint32_t count) {
  for (uint32_t seq = first; seq < first + count; ++seq) {
    ASSERT_TRUE(client.SendPacket(1, SequencedPayload(index, seq)));
  }
  for (uint32_t seq = first; seq < first + count; ++seq) {
    auto echo = client.ReadPacket();
    ASSERT_TRUE(echo.has_value()) << "client " << index << " seq " << seq;
    EXPECT_EQ(echo->id, 1);
    EXPECT_TRUE(echo->payload == SequencedPayload(index, seq))
        << "client " << index << " seq " << seq;
  }
}

// Client 1 of 3 sends good packets, a packet with a bad size and more good
// packets in one write (so they arrive in one read): it gets exactly the
// echoes of the packets before the bad one, then the connection closes.
void RunBadSizeCase(ServerService& server, SessionTracker& tracker,
                    uint16_t bad_size) {
  std::vector<TestClient> clients(3);
  ASSERT_TRUE(ConnectTagged(server.port(), clients));
  const auto sessions = tracker.WaitForTags(3);
  ASSERT_EQ(sessions.size(), 3u);
  ExpectEchoes(clients[0], 0, 0, 3);
  ExpectEchoes(clients[2], 2, 0, 3);

  ASSERT_TRUE(clients[1].SendAll(StreamWithBadPacket(1, bad_size)));
  for (uint32_t seq = 0; seq < kGoodBefore; ++seq) {
    auto echo = clients[1].ReadPacket(std::chrono::seconds(5));
    if (!echo) {
      ADD_FAILURE() << "size " << bad_size << ": the echo of good packet "
                    << seq << " (sent before the bad one) never arrived";
      break;
    }
    EXPECT_TRUE(echo->payload == SequencedPayload(1, seq)) << "seq " << seq;
  }
  EXPECT_TRUE(clients[1].WaitForClose()) << "bad client not closed";
  ASSERT_TRUE(WaitFor([&] { return sessions[1]->disconnects() == 1; }));
  EXPECT_EQ(sessions[1]->reason(), DisconnectReason::kProtocolError);

  // The others go on unaffected.
  ExpectEchoes(clients[0], 0, 3, 50);
  ExpectEchoes(clients[2], 2, 3, 50);
  EXPECT_TRUE(sessions[0]->IsConnected());
  EXPECT_TRUE(sessions[2]->IsConnected());
  // The count goes down, and a read's packets are counted, just after what
  // the clients saw: wait for both.
  EXPECT_TRUE(WaitFor([&] { return server.SessionCount() == 2u; }));
  EXPECT_TRUE(WaitFor([&] {
    return server.GetStats().packets_in >= 3 + kGoodBefore + 2 * 53;
  }));
  const NetStats stats = server.GetStats();
  EXPECT_EQ(stats.closed(DisconnectReason::kProtocolError), 1u);
  EXPECT_EQ(stats.sessions_closed(), 1u);
  // Tags, the good packets before the bad one, the others' packets.
  EXPECT_EQ(stats.packets_in, 3 + kGoodBefore + 2 * 53);
}

TEST_P(ProtocolErrorTest, SizeBelowHeaderClosesOnlyThatSession) {
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(), Options());
  RunBadSizeCase(*server, tracker, 3);
}

TEST_P(ProtocolErrorTest, SizeZeroClosesOnlyThatSession) {
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(), Options());
  RunBadSizeCase(*server, tracker, 0);
}

TEST_P(ProtocolErrorTest, SizeAboveMaxPacketClosesOnlyThatSession) {
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(), Options());
  RunBadSizeCase(*server, tracker, 4097);  // max_packet is 4096
}

// The same with the good packets already answered before the bad header
// arrives in a read of its own.
TEST_P(ProtocolErrorTest, BadSizeInALaterReadClosesOnlyThatSession) {
  SessionTracker tracker;
  SERVERCORE_START_SERVER(server, tracker.Factory(), Options());
  std::vector<TestClient> clients(2);
  ASSERT_TRUE(ConnectTagged(server->port(), clients));
  const auto sessions = tracker.WaitForTags(2);
  ASSERT_EQ(sessions.size(), 2u);
  ExpectEchoes(clients[1], 1, 0, 10);
  const std::byte bad[] = {std::byte{0xFF}, std::byte{0xFF}, std::byte{1},
                           std::byte{0}};
  ASSERT_TRUE(clients[1].SendAll(bad));
  EXPECT_TRUE(clients[1].WaitForClose());
  ASSERT_TRUE(WaitFor([&] { return sessions[1]->disconnects() == 1; }));
  EXPECT_EQ(sessions[1]->reason(), DisconnectReason::kProtocolError);
  ExpectEchoes(clients[0], 0, 0, 10);
  EXPECT_EQ(server->GetStats().closed(DisconnectReason::kProtocolError), 1u);
  EXPECT_TRUE(WaitFor([&] { return server->SessionCount() == 1u; }));
}

// The boundary: packets of exactly max_packet bytes are good, even with a
// receive buffer no larger than one of them, split at every kind of byte.
TEST_P(ProtocolErrorTest, MaxSizePacketsPassThroughATightReceiveBuffer) {
  SessionTracker tracker;
  ServiceOptions options = Options();
  options.recv_buffer_size = 4096;
  SERVERCORE_START_SERVER(server, tracker.Factory(), options);
  TestClient client;
  ASSERT_TRUE(client.Connect(server->port()));
  std::vector<std::byte> stream;
  const size_t sizes[] = {4096, 5, 4096, 4095, 4, 4096, 1000, 4096};
  for (size_t n = 0; n < std::size(sizes); ++n) {
    std::vector<std::byte> payload(sizes[n] - 4);
    for (size_t i = 0; i < payload.size(); ++i) {
      payload[i] = PatternByte(n, i);
    }
    const auto packet = EncodePacket(1, payload);
    stream.insert(stream.end(), packet.begin(), packet.end());
  }
  // Pieces of 1, 7, 4093, ... bytes, with pauses so they arrive apart.
  const size_t pieces[] = {1, 7, 4093, 3, 4096, 2, 4000, 5000, 1};
  size_t at = 0;
  for (size_t p = 0; at < stream.size(); ++p) {
    const size_t n =
        std::min(pieces[p % std::size(pieces)], stream.size() - at);
    ASSERT_TRUE(client.SendAll(std::span(stream).subspan(at, n)));
    at += n;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto echoed = client.ReadExactly(stream.size());
  ASSERT_TRUE(echoed.has_value())
      << "closed early? " << server->GetStats().sessions_closed();
  EXPECT_TRUE(*echoed == stream);
  EXPECT_EQ(server->GetStats().sessions_closed(), 0u);
  EXPECT_EQ(server->GetStats().packets_in, std::size(sizes));
}

INSTANTIATE_TEST_SUITE_P(Backends, ProtocolErrorTest,
                         ::testing::Values(Backend::kEpoll, Backend::kUring),
                         BackendName);

}  // namespace
}  // namespace servercore::test
