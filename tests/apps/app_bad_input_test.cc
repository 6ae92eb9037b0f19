// docs/PROTOCOL.md "Bad input" and "Slow receivers", checked against the real
// GameServer: a protocol error or a slow receiver closes that one connection
// (logged with the session and why), everyone else goes on, and the server
// keeps running.
#include <poll.h>

#include <atomic>
#include <cstdio>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/apps/app_fixture.h"

namespace servercore::test {
namespace {

struct BadCase {
  std::string name;
  std::vector<std::string> flags;
  std::vector<std::byte> bytes;
};

std::vector<std::byte> Filler(size_t n) {
  return std::vector<std::byte>(n, std::byte{0x5A});
}

std::vector<BadCase> AllBadCases() {
  std::vector<BadCase> cases;
  for (uint16_t size = 0; size < 4; ++size) {
    auto bytes = RawHeader(size, kCEcho);
    Append(bytes, Filler(8));  // more bytes after it change nothing
    cases.push_back({"SizeIs" + std::to_string(size), {}, bytes});
  }
  {
    auto bytes = RawHeader(101, kCEcho);
    Append(bytes, Filler(97));
    cases.push_back({"SizeOverMaxPacketFlag", {"--max-packet", "100"}, bytes});
  }
  {
    auto bytes = RawHeader(4097, kCEcho);
    Append(bytes, Filler(4093));
    cases.push_back({"SizeOverDefaultMaxPacket", {}, bytes});
  }
  // Server-to-client ids, ids that were never assigned, the edges.
  for (uint16_t id : std::vector<uint16_t>{2, 4, 6, 0, 7, 999, 1001, 1003, 1004,
                                           1005, 65535}) {
    cases.push_back({"Id" + std::to_string(id), {}, EncodePacket(id, {})});
  }
  cases.push_back({"Id2WithPayload", {}, EncodePacket(kSEcho, Filler(10))});
  cases.push_back({"Id6WithPayload", {}, EncodePacket(kSChat, Filler(20))});
  for (size_t n : std::vector<size_t>{0, 3, 5, 8}) {
    cases.push_back({"JoinPayloadOf" + std::to_string(n),
                     {},
                     EncodePacket(kCJoin, Filler(n))});
  }
  // Typed packets whose payload protobuf rejects, or whose C_MOVE position
  // is out of bounds. (A known field with another wire type is not one:
  // protobuf keeps it as an unknown field.)
  const std::vector<std::pair<std::string, std::vector<std::byte>>> typed = {
      {"PingVarintCutShort", Bytes("\x08\x80")},
      {"PingLengthPastPayload", Bytes("\x0A\x05\x01")},
      {"PingWireType7", Bytes("\x0F\x01")},
      {"PingFieldNumber0", Bytes(std::string("\x00\x01", 2))},
      {"MoveFloatCutShort", Bytes(std::string("\x0D\x00\x00", 3))},
  };
  for (const auto& [name, payload] : typed) {
    const uint16_t id = name.starts_with("Ping") ? kCPing : kCMove;
    cases.push_back({name, {}, EncodePacket(id, payload)});
  }
  const std::vector<std::pair<std::string, std::vector<std::byte>>> moves = {
      {"MoveXNaN", ProtoFloat(1, std::numeric_limits<float>::quiet_NaN())},
      {"MoveYInfinity", ProtoFloat(2, std::numeric_limits<float>::infinity())},
      {"MoveXOver10000", ProtoFloat(1, 10000.5F)},
      {"MoveYUnderMinus10000", ProtoFloat(2, -10001.0F)},
  };
  for (const auto& [name, payload] : moves) {
    cases.push_back({name, {}, EncodePacket(kCMove, payload)});
  }
  // size + 8 > 65535: C_CHAT of 65528 bytes (S_CHAT 65536) and of 65535.
  cases.push_back({"ChatWhoseSChatExceeds65535",
                   {"--max-packet", "65535"},
                   EncodePacket(kCChat, Filler(65528 - 4))});
  cases.push_back({"ChatOfLargestPacket",
                   {"--max-packet", "65535"},
                   EncodePacket(kCChat, Filler(65535 - 4))});
  return cases;
}

// Joins `room` again and again (each join leaves and re-enters it) until
// it reports `members`: a closed session leaves its room just after its
// socket closes.
bool JoinUntilMembers(TestClient& client, uint32_t room, uint32_t members) {
  const auto deadline = std::chrono::steady_clock::now() + Seconds(5);
  for (;;) {
    const auto now = Join(client, room);
    if (now == members) return true;
    if (!now || std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

class BadInputTest
    : public GameServerTestBase<std::tuple<std::string, BadCase>> {
 protected:
  const BadCase& Case() const { return std::get<1>(GetParam()); }
};

// Waits until the server log has a line with "protocol error" naming
// session `id`.
bool LogNamesProtocolError(GameServer& server, uint64_t id) {
  const auto deadline = std::chrono::steady_clock::now() + Seconds(10);
  const std::string session = std::to_string(id);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string out = server.Output();
    size_t start = 0;
    while (start < out.size()) {
      size_t end = out.find('\n', start);
      if (end == std::string::npos) break;  // a line still being written
      const std::string line = out.substr(start, end - start);
      if (line.find("protocol error") != std::string::npos &&
          line.find(session) != std::string::npos) {
        return true;
      }
      start = end + 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST_P(BadInputTest, ClosesOnlyThatConnection) {
  StartGameServer(server_, std::get<0>(GetParam()), Case().flags);
  if (IsSkipped() || HasFatalFailure()) return;
  const uint16_t port = server_.port();

  TestClient bystander, bad;
  ASSERT_TRUE(ConnectReady(bystander, port));
  ASSERT_EQ(Join(bystander, 42), 1u);
  ASSERT_TRUE(ConnectReady(bad, port));
  ASSERT_EQ(Join(bad, 1000), 1u);
  const auto bad_id = ChatForId(bad, Bytes("who am I"));
  ASSERT_TRUE(bad_id.has_value());

  ASSERT_TRUE(bad.SendAll(Case().bytes));
  EXPECT_TRUE(bad.WaitForClose(Seconds(10)))
      << "the server did not close the connection that sent bad input";
  EXPECT_TRUE(LogNamesProtocolError(server_, *bad_id))
      << "no log line with 'protocol error' and session " << *bad_id << ":\n"
      << server_.Output();

  // Everyone else goes on; the server keeps serving new sessions.
  const auto ping = Bytes("still there?");
  ASSERT_TRUE(bystander.SendPacket(kCEcho, ping));
  auto reply = bystander.ReadPacket(Seconds(10));
  ASSERT_TRUE(reply.has_value()) << "bystander lost";
  EXPECT_EQ(reply->id, kSEcho);
  EXPECT_EQ(reply->payload, ping);
  TestClient late;
  ASSERT_TRUE(ConnectReady(late, port)) << "server stopped serving";
  ASSERT_EQ(Join(late, 42), 2u) << "the bad session left room 1000 only";
  const auto late_id = ChatForId(late, Bytes("hi"));
  ASSERT_TRUE(late_id.has_value());
  EXPECT_NE(*late_id, *bad_id);
  auto chat = bystander.ReadPacket(Seconds(10));
  ASSERT_TRUE(chat.has_value());
  EXPECT_EQ(chat->id, kSChat);
  // The bad session leaves its room (soon after its close).
  TestClient probe;
  ASSERT_TRUE(ConnectReady(probe, port));
  EXPECT_TRUE(JoinUntilMembers(probe, 1000, 1))
      << "the closed session is still in its room";
}

INSTANTIATE_TEST_SUITE_P(All, BadInputTest,
                         ::testing::Combine(::testing::ValuesIn(AllBackends()),
                                            ::testing::ValuesIn(AllBadCases())),
                         [](const auto& tp) {
                           return std::get<0>(tp.param) + "_" +
                                  std::get<1>(tp.param).name;
                         });

// ---- Packets before the bad one are handled first --------------------------

using BadTailTest = GameServerTestBase<std::string>;

// docs/PROTOCOL.md: "The packets that arrived before the bad one are handled
// normally first." Guards a bug found here: the answers to those packets were
// queued and then dropped, because the close discards the send queue unsent
// (the write path stopped once Disconnect left kOpen, and finalizing closed
// the fd and cleared the send queue), so the client saw only the close. Now
// Session::StartClosing drains what was queued first.
TEST_P(BadTailTest, PacketsBeforeTheBadOneAreHandledFirst) {
  START_SERVER();
  const std::vector<std::pair<std::string, std::vector<std::byte>>> tails = {
      {"size < 4", RawHeader(2, kCEcho)},
      {"size > max", RawHeader(5000, kCEcho)},
      {"id 9", EncodePacket(9, Bytes("zz"))},
      {"short C_JOIN", EncodePacket(kCJoin, Bytes("abc"))},
      {"cut C_PING", EncodePacket(kCPing, Bytes("\x08\x80"))},
      {"id 1001", EncodePacket(kSPong, {})},
  };
  uint32_t room = 77;
  for (const auto& [what, tail] : tails) {
    SCOPED_TRACE(what);
    // A room of its own each time: the previous session leaves its room only
    // when the server finalises it, which may be just after its client saw
    // the close.
    ++room;
    TestClient client;
    ASSERT_TRUE(client.Connect(server_.port()));
    std::vector<std::byte> write;
    Append(write, EncodePacket(kCEcho, Bytes("first")));
    Append(write, EncodePacket(kCJoin, U32(room)));
    Append(write, EncodePacket(kCChat, Bytes("last words")));
    Append(write, tail);
    ASSERT_TRUE(client.SendAll(write));  // one write
    auto echo = client.ReadPacket(Seconds(10));
    ASSERT_TRUE(echo.has_value()) << "echo before the bad packet lost";
    EXPECT_EQ(echo->id, kSEcho);
    EXPECT_EQ(Text(echo->payload), "first");
    auto join = client.ReadPacket(Seconds(10));
    ASSERT_TRUE(join.has_value()) << "join before the bad packet lost";
    EXPECT_EQ(join->id, kSJoin);
    ASSERT_EQ(join->payload.size(), 8u);
    EXPECT_EQ(ReadU32(join->payload, 0), room);
    EXPECT_EQ(ReadU32(join->payload, 4), 1u);
    auto chat = client.ReadPacket(Seconds(10));
    ASSERT_TRUE(chat.has_value()) << "chat before the bad packet lost";
    EXPECT_EQ(chat->id, kSChat);
    ASSERT_EQ(chat->payload.size(), 8u + 10);
    EXPECT_EQ(Text(std::span(chat->payload).subspan(8)), "last words");
    EXPECT_TRUE(client.WaitForClose(Seconds(10)));
  }
  TestClient after;
  EXPECT_TRUE(ConnectReady(after, server_.port()));
}

INSTANTIATE_TEST_SUITE_P(Backends, BadTailTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

// ---- Logs under a burst of errors ------------------------------------------

using LogLimitTest = GameServerTestBase<std::string>;

// Milliseconds since midnight of a log line's "W HH:MM:SS.mmm" stamp.
std::optional<int64_t> LineStampMs(const std::string& line) {
  int h = 0, m = 0, sec = 0, ms = 0;
  char level = 0;
  if (std::sscanf(line.c_str(), "%c %d:%d:%d.%d", &level, &h, &m, &sec, &ms) !=
      5) {
    return std::nullopt;
  }
  return ((int64_t{h} * 60 + m) * 60 + sec) * 1000 + ms;
}

// docs/PROTOCOL.md "Logs": each protocol error on one line, at most 20 such
// lines in any one second, and past that one line a second saying how many
// more of each kind there were. 60 sessions err at once: at most 20 lines
// in any second, and the lines and the counts of those left out add up to
// 60.
TEST_P(LogLimitTest, ABurstOfErrorsIsLoggedTwentyLinesASecondAndCounted) {
  START_SERVER();
  constexpr size_t kBad = 60;
  constexpr size_t kMaxLines = 20;  // a second
  std::vector<TestClient> clients(kBad);
  for (TestClient& client : clients) {
    ASSERT_TRUE(ConnectReady(client, server_.port()));
  }
  const auto bad = RawHeader(2, kCEcho);  // size < 4
  for (TestClient& client : clients) ASSERT_TRUE(client.SendAll(bad));
  for (TestClient& client : clients) {
    ASSERT_TRUE(client.WaitForClose(Seconds(10)));
  }
  std::vector<int64_t> stamps;
  uint64_t left_out = 0;
  const auto deadline = std::chrono::steady_clock::now() + Seconds(10);
  for (;;) {
    stamps.clear();
    left_out = 0;
    std::istringstream out(server_.Output());
    for (std::string line; std::getline(out, line);) {
      if (line.find(": protocol error: ") != std::string::npos) {
        const auto stamp = LineStampMs(line);
        ASSERT_TRUE(stamp.has_value()) << line;
        stamps.push_back(*stamp);
      }
      const size_t summary = line.find("suppressed since the last summary: ");
      if (summary != std::string::npos) {
        unsigned long long errors = 0;
        ASSERT_EQ(std::sscanf(line.c_str() + summary,
                              "suppressed since the last summary: %llu "
                              "protocol errors",
                              &errors),
                  1)
            << line;
        left_out += errors;
      }
    }
    if (stamps.size() + left_out >= kBad) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << stamps.size() << " lines and " << left_out << " left out of " << kBad
        << " protocol errors:\n"
        << server_.Output();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(stamps.size() + left_out, kBad) << server_.Output();
  EXPECT_GT(left_out, 0u) << "60 errors at once, all logged";
  // Any 21 lines span at least a second (stamps are to the millisecond).
  for (size_t i = 0; i + kMaxLines < stamps.size(); ++i) {
    EXPECT_GE(stamps[i + kMaxLines] - stamps[i], 999)
        << "more than 20 lines within a second:\n"
        << server_.Output();
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, LogLimitTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

// ---- Slow receivers ---------------------------------------------------------

class SlowReceiverTest : public GameServerTestBase<std::string> {
 protected:
  void TearDown() override;
};

// One member of a room never reads while another floods chats to it: the
// slow one is disconnected, the reader in the same room gets every chat in
// order, and the server keeps running.
TEST_P(SlowReceiverTest, SlowMemberIsDroppedOthersGetEverything) {
  START_SERVER("--max-pending", "65536", "--stats-interval", "0.1");
  const uint16_t port = server_.port();
  TestClient flooder, fast, slow;
  slow.SetReceiveBuffer(4096);
  ASSERT_TRUE(ConnectReady(slow, port));
  ASSERT_TRUE(ConnectReady(fast, port));
  ASSERT_TRUE(ConnectReady(flooder, port));
  ASSERT_EQ(Join(slow, 5), 1u);
  ASSERT_EQ(Join(fast, 5), 2u);
  ASSERT_EQ(Join(flooder, 5), 3u);
  const auto flooder_id = ChatForId(flooder, Bytes("start"));
  ASSERT_TRUE(flooder_id.has_value());
  auto first = fast.ReadPacket(Seconds(10));
  ASSERT_TRUE(first && first->id == kSChat);

  constexpr size_t kMessage = 2000;
  auto make = [&](uint32_t seq) {
    auto m = U32(seq);
    Append(m, std::vector<std::byte>(kMessage - 4, std::byte(seq & 0xFF)));
    return m;
  };
  std::atomic<uint32_t> fast_got{0};
  std::atomic<uint32_t> target{UINT32_MAX};
  std::atomic<bool> fast_failed{false};
  std::string fast_error;  // written by the reader before fast_failed
  std::thread reader([&] {
    const auto give_up = std::chrono::steady_clock::now() + Seconds(40);
    for (uint32_t seq = 0; seq < target.load();) {
      // Wait for data in short steps: the flood may end (target set) while
      // this waits for a chat that was never sent.
      pollfd pfd{.fd = fast.fd(), .events = POLLIN, .revents = 0};
      if (::poll(&pfd, 1, 50) == 0) {
        if (std::chrono::steady_clock::now() < give_up) continue;
      }
      auto p = fast.ReadPacket(Seconds(20));
      if (!p) {
        fast_error = "no packet (closed or timed out)";
      } else if (p->id != kSChat || p->payload.size() != 8 + kMessage ||
                 ReadU64(p->payload, 0) != *flooder_id) {
        fast_error = "id " + std::to_string(p->id) + ", " +
                     std::to_string(p->payload.size()) + " bytes";
      } else if (ReadU32(p->payload, 8) != seq ||
                 !std::equal(p->payload.begin() + 8, p->payload.end(),
                             make(seq).begin())) {
        fast_error = "got seq " + std::to_string(ReadU32(p->payload, 8));
      }
      if (!fast_error.empty()) {
        fast_failed = true;
        return;
      }
      fast_got.store(++seq);
    }
  });

  // Flood in batches of 32 KB, reading the flooder's own copies back and
  // waiting for the fast reader, until the server counts a kick (its
  // stats line) or 32 MiB went out.
  constexpr uint32_t kBatch = 16;
  constexpr uint32_t kMax = (32u << 20) / kMessage;
  uint32_t sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + Seconds(20);
  bool kicked = false;
  while (sent < kMax && !fast_failed && !kicked &&
         std::chrono::steady_clock::now() < deadline) {
    std::vector<std::byte> batch;
    for (uint32_t i = 0; i < kBatch; ++i) {
      Append(batch, EncodePacket(kCChat, make(sent + i)));
    }
    ASSERT_TRUE(flooder.SendAll(batch));
    for (uint32_t i = 0; i < kBatch; ++i) {
      auto p = flooder.ReadPacket(Seconds(10));
      ASSERT_TRUE(p && p->id == kSChat) << "flooder lost its own chats";
    }
    sent += kBatch;
    // Lockstep: --max-pending is small, and a reader lagging by more than
    // the kernel's socket buffers would rightly be dropped too.
    while (fast_got.load() < sent && !fast_failed &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    kicked = server_.Output().find("kicks 1 ") != std::string::npos;
  }
  target = sent;
  reader.join();
  EXPECT_FALSE(fast_failed) << "the fast reader, at chat " << fast_got.load()
                            << ": " << fast_error << "\n"
                            << server_.Output();
  EXPECT_EQ(fast_got.load(), sent);
  EXPECT_TRUE(slow.WaitForClose(Seconds(10)))
      << "the slow receiver was not disconnected after " << sent << " chats of "
      << kMessage << " bytes";
  // By --max-pending's rule, not another (the chunks its output pins, or
  // output not taken for a while): its log line gives what it held unsent,
  // at most the 64 KiB given.
  std::optional<unsigned long long> unsent;
  const auto logged_by = std::chrono::steady_clock::now() + Seconds(10);
  while (!unsent && std::chrono::steady_clock::now() < logged_by) {
    const std::string out = server_.Output();
    if (const size_t at = out.find(": slow receiver: "); at != out.npos) {
      unsigned long long bytes = 0;
      if (std::sscanf(out.c_str() + at, ": slow receiver: %llu bytes unsent",
                      &bytes) == 1) {
        unsent = bytes;
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ASSERT_TRUE(unsent.has_value())
      << "no 'slow receiver: N bytes unsent' line:\n"
      << server_.Output();
  EXPECT_LE(*unsent, 65536u);

  // The others go on.
  const auto after = ChatForId(flooder, Bytes("after"));
  ASSERT_TRUE(after.has_value());
  auto p = fast.ReadPacket(Seconds(10));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(Text(std::span(p->payload).subspan(8)), "after");
  TestClient late;
  ASSERT_TRUE(ConnectReady(late, port));
  EXPECT_TRUE(JoinUntilMembers(late, 5, 3))
      << "the slow session is still in its room";
}

// On failure, the server's summary says who was closed and why.
void SlowReceiverTest::TearDown() {
  if (HasFailure() && server_.process().running()) {
    const auto status = server_.Stop(SIGTERM, Seconds(5));
    std::string out = server_.Output();
    if (const size_t at = out.find("[summary]"); at != std::string::npos) {
      out = out.substr(at);
    }
    ADD_FAILURE() << "GameServer "
                  << (status ? ChildProcess::DescribeStatus(*status)
                             : "did not stop")
                  << ":\n"
                  << out;
  }
  GameServerTestBase<std::string>::TearDown();
}

INSTANTIATE_TEST_SUITE_P(Backends, SlowReceiverTest,
                         ::testing::ValuesIn(AllBackends()),
                         [](const auto& tp) { return tp.param; });

}  // namespace
}  // namespace servercore::test
