// SessionHarness (src/testing/session_harness.h) with GameServer's real
// sessions: the harness itself (reads, writes whole and partial, closes,
// timers on its clock), and the fuzzer's driver (tests/fuzz/
// game_session_driver.h) on its seeds and on the checked-in corpus, so both
// run in every build, sanitizers included, not only in the fuzz preset.
//
// SERVERCORE_WRITE_SEEDS=DIR writes the seeds into DIR as corpus files;
// CORPUS=DIR runs the files of DIR instead of the checked-in corpus (say, a
// crash the fuzzer wrote, for a build with a debugger).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "game_session.h"
#include "game_session_driver.h"
#include "room_directory.h"
#include "servercore/disconnect_reason.h"
#include "servercore/job_queue.h"
#include "testing/session_harness.h"

namespace servercore::testing {
namespace {

using Bytes = std::vector<std::byte>;

Bytes Packet(uint16_t id, std::string_view payload) {
  const size_t size = 4 + payload.size();
  Bytes out = {std::byte(size & 0xff), std::byte(size >> 8),
               std::byte(id & 0xff), std::byte(id >> 8)};
  for (char c : payload) out.push_back(std::byte(c));
  return out;
}

Bytes Join(uint32_t room) {
  std::string payload;
  for (int i = 0; i < 4; ++i) payload.push_back(char(room >> (8 * i)));
  return Packet(3, payload);
}

class HarnessTest : public ::testing::Test {
 protected:
  std::shared_ptr<game::GameSession> Connect() {
    auto session = std::make_shared<game::GameSession>(rooms_, 4096);
    harness_.Add(session);
    harness_.RunRound();
    return session;
  }

  game::RoomDirectory rooms_{
      game::WorldOptions{.tick = std::chrono::seconds(60)}};
  SessionHarness harness_{ServiceOptions{.recv_buffer_size = 16 * 1024}};
};

TEST_F(HarnessTest, EchoesWhatItReceives) {
  auto session = Connect();
  const Bytes echo = Packet(1, "hello");
  EXPECT_EQ(harness_.Receive(*session, echo), echo.size());
  ASSERT_TRUE(harness_.RunUntilQuiet());
  EXPECT_EQ(harness_.Written(*session), Packet(2, "hello"));
}

// Echoes are gathered into one buffer per delivery (game_session.h): the
// replies keep their order around everything else the session does, and
// the replies to the packets before a bad one still go out.
TEST_F(HarnessTest, GatheredEchoesKeepTheirPlaceAmongOtherReplies) {
  auto session = Connect();
  Bytes in;
  Bytes want;
  auto add = [](Bytes& to, const Bytes& packet) {
    to.insert(to.end(), packet.begin(), packet.end());
  };
  for (int i = 0; i < 40; ++i) {
    add(in, Packet(1, "e" + std::to_string(i)));
    add(want, Packet(2, "e" + std::to_string(i)));
  }
  add(in, Join(9));
  for (int i = 40; i < 50; ++i) add(in, Packet(1, "e" + std::to_string(i)));
  add(in, Packet(2, "bad"));  // S_ECHO from a client: a protocol error
  add(in, Packet(1, "never answered"));
  harness_.Receive(*session, in);
  ASSERT_TRUE(harness_.RunUntilQuiet());
  const Bytes& out = harness_.Written(*session);
  ASSERT_GE(out.size(), want.size() + 12);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), out.begin()));
  // Then S_JOIN for room 9, then the ten echoes after it, then nothing.
  EXPECT_EQ(out[want.size() + 2], std::byte{4});
  EXPECT_EQ(out[want.size() + 4], std::byte{9});
  for (int i = 40; i < 50; ++i) add(want, Packet(2, "e" + std::to_string(i)));
  Bytes rest(out.begin() + static_cast<ptrdiff_t>(want.size() - 10 * 7 + 12),
             out.end());
  Bytes tail_want(want.end() - 10 * 7, want.end());
  EXPECT_EQ(rest, tail_want);
  EXPECT_FALSE(session->IsConnected());
}

TEST_F(HarnessTest, ByteByByteReadsAndThreeByteWrites) {
  auto a = Connect();
  auto b = Connect();
  harness_.SetMaxWrite(3);
  const Bytes chat = Packet(5, "split");
  for (std::byte byte : chat) harness_.Receive(*a, {&byte, 1});
  ASSERT_TRUE(harness_.RunUntilQuiet());
  // S_CHAT: the sender's id, then the message, to both.
  std::string payload;
  for (int i = 0; i < 8; ++i) payload.push_back(char(a->id() >> (8 * i)));
  payload += "split";
  EXPECT_EQ(harness_.Written(*a), Packet(6, payload));
  EXPECT_EQ(harness_.Written(*b), Packet(6, payload));
}

// Echoes of 1 KiB and more go out with Session::SendNow, written during the
// delivery itself (the harness's fake backend takes SendNow's bytes as the
// kernel would): the first 100 bytes are written before any worker round,
// the rest is kept and written next, and what the session sends after it
// (a small echo, copied and queued) follows it.
TEST_F(HarnessTest, LargeEchoIsWrittenAtOnceAndItsRestBeforeWhatFollows) {
  auto session = Connect();
  harness_.SetMaxWrite(100);
  const std::string large(3000, 'x');
  Bytes in = Packet(1, large);
  const Bytes small = Packet(1, "after");
  EXPECT_EQ(harness_.Receive(*session, in), in.size());
  // Written during the delivery: a queued reply would wait for a round.
  EXPECT_EQ(harness_.Written(*session).size(), 100u);
  EXPECT_EQ(harness_.Receive(*session, small), small.size());
  ASSERT_TRUE(harness_.RunUntilQuiet());
  Bytes want = Packet(2, large);
  const Bytes small_reply = Packet(2, "after");
  want.insert(want.end(), small_reply.begin(), small_reply.end());
  EXPECT_EQ(harness_.Written(*session), want);
  EXPECT_TRUE(session->IsConnected());
}

// A direct write the socket refuses (-EAGAIN) keeps all of it, copied, for
// the worker to write; the next large echo is written at once again.
TEST_F(HarnessTest, RefusedDirectWriteIsKeptWholeAndWrittenNext) {
  auto session = Connect();
  harness_.SetRefuseEveryOtherWriteNow(true);
  const std::string first(2000, 'a');
  const std::string second(1500, 'b');
  const Bytes in = Packet(1, first);
  EXPECT_EQ(harness_.Receive(*session, in), in.size());
  EXPECT_TRUE(harness_.Written(*session).empty());
  ASSERT_TRUE(harness_.RunUntilQuiet());
  Bytes want = Packet(2, first);
  EXPECT_EQ(harness_.Written(*session), want);
  const Bytes again = Packet(1, second);
  EXPECT_EQ(harness_.Receive(*session, again), again.size());
  const Bytes second_reply = Packet(2, second);
  want.insert(want.end(), second_reply.begin(), second_reply.end());
  EXPECT_EQ(harness_.Written(*session), want);  // before any round
  EXPECT_TRUE(session->IsConnected());
}

TEST_F(HarnessTest, AProtocolErrorClosesOnlyThatSession) {
  auto bad = Connect();
  auto good = Connect();
  harness_.Receive(*bad, Packet(2, "S_ECHO is the server's"));
  ASSERT_TRUE(harness_.RunUntilQuiet());
  EXPECT_FALSE(bad->IsConnected());
  EXPECT_EQ(harness_.Closed(DisconnectReason::kProtocolError), 1u);
  EXPECT_EQ(harness_.Receive(*bad, Packet(1, "late")), 0u) << "not reading";
  harness_.Receive(*good, Packet(1, "still here"));
  ASSERT_TRUE(harness_.RunUntilQuiet());
  EXPECT_TRUE(good->IsConnected());
  EXPECT_EQ(harness_.Written(*good), Packet(2, "still here"));
}

TEST_F(HarnessTest, JoinIsAnsweredAndPeerCloseIsCounted) {
  auto session = Connect();
  harness_.Receive(*session, Join(7));
  ASSERT_TRUE(harness_.RunUntilQuiet());
  const Bytes& out = harness_.Written(*session);
  ASSERT_EQ(out.size(), 12u);
  EXPECT_EQ(out[2], std::byte{4});  // S_JOIN
  EXPECT_EQ(out[4], std::byte{7});  // room 7
  EXPECT_EQ(out[8], std::byte{1});  // one member
  harness_.PeerClose(*session);
  ASSERT_TRUE(harness_.RunUntilQuiet());
  EXPECT_FALSE(session->IsConnected());
  EXPECT_EQ(harness_.Closed(DisconnectReason::kPeerClosed), 1u);
}

// Found by game_session_fuzz: a session that joined a room twice in a row,
// its first stay there still pending, got an S_JOIN counting it twice.
TEST_F(HarnessTest, JoiningARoomTwiceCountsTheSessionOnce) {
  auto session = Connect();
  // Rooms 3, 3, 2, 2, read 3 bytes at a time: each stay is still pending
  // when the next join leaves it for the same room.
  Bytes joins;
  for (uint32_t room : {3u, 3u, 2u, 2u}) {
    const Bytes join = Join(room);
    joins.insert(joins.end(), join.begin(), join.end());
  }
  for (size_t at = 0; at < joins.size(); at += 3) {
    harness_.Receive(*session, std::span(joins).subspan(
                                   at, std::min<size_t>(3, joins.size() - at)));
  }
  ASSERT_TRUE(harness_.RunUntilQuiet());
  const Bytes& out = harness_.Written(*session);
  ASSERT_EQ(out.size(), 4 * 12u) << "four S_JOINs";
  for (size_t at = 0; at < out.size(); at += 12) {
    EXPECT_EQ(out[at + 2], std::byte{4});
    EXPECT_EQ(out[at + 8], std::byte{1}) << "S_JOIN #" << at / 12 + 1;
  }
}

TEST_F(HarnessTest, TimersFireOnTheHarnessClock) {
  auto session = Connect();
  // C_MOVE x=1 (field 1, fixed32 1.0f): the session enters the world; its
  // full snapshot and the tick's delta wait for the clock.
  const Bytes move = Packet(1002, std::string_view("\x0d\x00\x00\x80\x3f", 5));
  harness_.Receive(*session, move);
  ASSERT_TRUE(harness_.RunUntilQuiet());
  harness_.RunRound();
  EXPECT_EQ(harness_.Written(*session).size(), 0u) << "no tick yet";
  harness_.Advance(std::chrono::seconds(60));
  ASSERT_TRUE(harness_.RunUntilQuiet());
  const Bytes& out = harness_.Written(*session);
  ASSERT_GE(out.size(), 4u) << "the tick's snapshots";
  EXPECT_EQ(out[2], std::byte{1003 & 0xff});  // S_SNAPSHOT
  EXPECT_EQ(out[3], std::byte{1003 >> 8});
}

TEST_F(HarnessTest, StopSaysGoodbyeToTypedClients) {
  auto typed = Connect();
  auto plain = Connect();
  harness_.Receive(*typed, Packet(1000, ""));  // C_PING
  harness_.Receive(*plain, Packet(1, "x"));
  ASSERT_TRUE(harness_.RunUntilQuiet());
  const size_t typed_before = harness_.Written(*typed).size();
  const size_t plain_before = harness_.Written(*plain).size();
  harness_.Stop();
  EXPECT_FALSE(typed->IsConnected());
  const Bytes& out = harness_.Written(*typed);
  ASSERT_GT(out.size(), typed_before);
  EXPECT_EQ(out[typed_before + 2], std::byte{1005 & 0xff});  // S_BYE
  EXPECT_EQ(harness_.Written(*plain).size(), plain_before);
  EXPECT_EQ(harness_.Closed(DisconnectReason::kServiceStopped), 2u);
}

// docs/PROTOCOL.md "Goodbye": a header carrying an id of 1000 or more
// counts, valid or not, and so also when the rest of its packet never came.
// Guards a bug: only whole packets and headers that broke the framing
// counted, so a client whose one typed packet was still incomplete (the
// very case of a packet timeout) was closed without S_BYE.
TEST_F(HarnessTest, BegunTypedPacketEarnsAGoodbye) {
  auto begun = Connect();
  auto split = Connect();
  auto plain = Connect();
  const Bytes move = Packet(1002, "0123456789");  // C_MOVE, 14 bytes
  harness_.Receive(*begun, std::span(move).first(5));
  // The header itself split: the first two bytes, then the next two.
  harness_.Receive(*split, std::span(move).first(2));
  ASSERT_TRUE(harness_.RunUntilQuiet());
  harness_.Receive(*split, std::span(move).subspan(2, 2));
  const Bytes echo = Packet(1, "0123456789");
  harness_.Receive(*plain, std::span(echo).first(5));
  ASSERT_TRUE(harness_.RunUntilQuiet());
  harness_.Stop();
  for (const auto& session : {begun, split}) {
    const Bytes& out = harness_.Written(*session);
    ASSERT_GE(out.size(), 4u) << "no S_BYE for session " << session->id();
    EXPECT_EQ(out[2], std::byte{1005 & 0xff});  // S_BYE
    EXPECT_EQ(out[3], std::byte{1005 >> 8});
  }
  EXPECT_TRUE(harness_.Written(*plain).empty());
}

TEST(GameSessionDriverTest, Seeds) {
  const auto seeds = game::fuzz::SeedConversations();
  ASSERT_FALSE(seeds.empty());
  const char* dir = std::getenv("SERVERCORE_WRITE_SEEDS");
  for (size_t i = 0; i < seeds.size(); ++i) {
    SCOPED_TRACE(i);
    game::fuzz::RunConversation(seeds[i]);
    if (dir != nullptr) {
      std::ofstream out(std::string(dir) + "/seed-" + std::to_string(i),
                        std::ios::binary);
      out.write(reinterpret_cast<const char*>(seeds[i].data()),
                static_cast<std::streamsize>(seeds[i].size()));
    }
  }
}

// `n` GameSessions of `rooms`, added to `harness` and at its worker.
std::vector<std::shared_ptr<game::GameSession>> AddSessions(
    SessionHarness& harness, game::RoomDirectory& rooms, size_t n) {
  std::vector<std::shared_ptr<game::GameSession>> sessions;
  for (size_t i = 0; i < n; ++i) {
    sessions.push_back(std::make_shared<game::GameSession>(rooms, 4096));
    harness.Add(sessions.back());
  }
  harness.RunRound();
  return sessions;
}

// Runs `deliver` inside a job, as if the rooms were busy on another worker
// meanwhile: a push to an idle queue then does not run the job on the spot
// but hands the queue on, and the rooms' jobs wait.
template <typename F>
void WhileTheRoomsWait(F deliver) {
  std::make_shared<JobQueue>()->DoAsync(std::move(deliver));
}

// Flow control across sessions (RoomWork): ten clients each pipeline 2,000
// chats into room 0 while the room runs nothing. One alone may queue 1,024
// jobs; together they stop near the cap (a quarter of --max-memory, here
// 4 MiB / 4 / RoomWork::kJobBytes = 4,096 jobs), then lose nothing.
// Before, they queued 1,024 each, whatever the memory: a thousand such
// clients held about 100 KiB each outside the budget.
TEST(RoomWorkTest, FloodersTogetherStopNearTheCap) {
  constexpr size_t kFlooders = 10;
  constexpr int kChats = 2000;
  game::RoomDirectory rooms{
      game::WorldOptions{.tick = std::chrono::seconds(60)}, 4u << 20};
  SessionHarness harness{ServiceOptions{.recv_buffer_size = 16 * 1024}};
  const auto sessions = AddSessions(harness, rooms, kFlooders);
  const uint64_t cap_jobs =
      rooms.work().cap_bytes() / game::RoomWork::kJobBytes;
  ASSERT_EQ(cap_jobs, 4096u);
  Bytes burst;
  for (int i = 0; i < kChats; ++i) {
    const Bytes chat = Packet(5, std::to_string(i));
    burst.insert(burst.end(), chat.begin(), chat.end());
  }
  uint64_t peak = 0;
  size_t taken = 0;
  WhileTheRoomsWait([&] {
    for (const auto& session : sessions) {
      taken += harness.Receive(*session, burst);
      peak = std::max(peak, rooms.work().jobs());
    }
  });
  ASSERT_EQ(taken, kFlooders * burst.size());
  EXPECT_GT(peak, cap_jobs / 2) << "the cap never mattered";
  EXPECT_LE(peak, cap_jobs + kFlooders * 17);
  ASSERT_TRUE(harness.RunUntilQuiet(1'000'000));
  EXPECT_EQ(rooms.work().jobs(), 0u);
  // Every member got every chat, each sender's in order.
  for (const auto& receiver : sessions) {
    const Bytes& out = harness.Written(*receiver);
    std::vector<int> next(kFlooders, 0);
    size_t chats = 0;
    for (size_t at = 0; at + 4 <= out.size();) {
      const size_t size = size_t(out[at]) | size_t(out[at + 1]) << 8;
      ASSERT_EQ(out[at + 2], std::byte{6});
      uint64_t sender = 0;
      for (size_t b = 8; b-- > 0;) {
        sender = sender << 8 | uint64_t(out[at + 4 + b]);
      }
      const std::string text(reinterpret_cast<const char*>(&out[at + 12]),
                             size - 12);
      const size_t from = static_cast<size_t>(
          std::find_if(sessions.begin(), sessions.end(),
                       [&](const auto& s) { return s->id() == sender; }) -
          sessions.begin());
      ASSERT_LT(from, kFlooders);
      ASSERT_EQ(text, std::to_string(next[from]++));
      ++chats;
      at += size;
    }
    EXPECT_EQ(chats, kFlooders * kChats);
  }
}

// Joins not yet announced count too: each may hold a Room until the stay
// before it is over (RoomWork::kJoinBytes). Ten clients each pipeline 300
// joins to fresh rooms while no room runs: one alone may have 64 pending
// (640 in all); together they stop near the cap (a quarter of 1 MiB, each
// join 2 KiB and its two jobs 256 bytes each), then every join is answered,
// in order. (500 clients held 32,000 rooms, 32 MB, by heaptrack.)
TEST(RoomWorkTest, PendingJoinsTogetherStopNearTheCap) {
  constexpr size_t kFlooders = 10;
  constexpr uint32_t kJoins = 300;
  game::RoomDirectory rooms{
      game::WorldOptions{.tick = std::chrono::seconds(60)}, 1u << 20};
  SessionHarness harness{ServiceOptions{.recv_buffer_size = 16 * 1024}};
  const auto sessions = AddSessions(harness, rooms, kFlooders);
  const uint64_t cap = rooms.work().cap_bytes();
  constexpr uint64_t kPerJoin =
      game::RoomWork::kJoinBytes + 2 * game::RoomWork::kJobBytes;
  uint64_t peak = 0;
  size_t taken = 0;
  WhileTheRoomsWait([&] {
    for (size_t i = 0; i < kFlooders; ++i) {
      Bytes burst;
      for (uint32_t j = 0; j < kJoins; ++j) {
        const Bytes join = Join(1 + static_cast<uint32_t>(i) * kJoins + j);
        burst.insert(burst.end(), join.begin(), join.end());
      }
      taken += harness.Receive(*sessions[i], burst);
      peak = std::max(peak, rooms.work().bytes());
    }
  });
  ASSERT_EQ(taken, kFlooders * kJoins * 8);
  EXPECT_GT(peak, cap / 2) << "the cap never mattered";
  EXPECT_LE(peak, cap + kFlooders * 5 * kPerJoin);
  EXPECT_LT(peak, kFlooders * 64 * kPerJoin);
  ASSERT_TRUE(harness.RunUntilQuiet(1'000'000));
  EXPECT_EQ(rooms.work().joins(), 0u);
  EXPECT_EQ(rooms.work().jobs(), 0u);
  for (size_t i = 0; i < kFlooders; ++i) {
    const Bytes& out = harness.Written(*sessions[i]);
    ASSERT_EQ(out.size(), kJoins * 12u);
    for (uint32_t j = 0; j < kJoins; ++j) {
      uint32_t room = 0;
      std::memcpy(&room, &out[j * 12 + 4], 4);
      ASSERT_EQ(room, 1 + i * kJoins + j) << "session " << i << " join " << j;
    }
  }
}

// The same by the memory budget: queued chats pin their S_CHAT packets,
// which the budget counts, and a budget full of them would be shed from
// the readers' output. Ten clients pipeline 1,000 chats of 2 KiB each
// (20 MB in all) against a 4 MiB budget while the room runs nothing: past
// half of it each stops at a few, past three quarters at one (RoomWork).
// (What each keeps of its last read counts too: the harness reads 64 KiB
// at a time.) Before, each queued 1,024 (2 MB): past the budget, and the
// Sends shed the largest holders of output.
TEST(RoomWorkTest, FloodersStopWhileTheBudgetIsPastHalf) {
  constexpr size_t kFlooders = 10;
  constexpr int kChats = 1000;
  game::RoomDirectory rooms{
      game::WorldOptions{.tick = std::chrono::seconds(60)}};
  SessionHarness harness{
      ServiceOptions{.recv_buffer_size = 16 * 1024, .max_memory = 4u << 20}};
  const auto sessions = AddSessions(harness, rooms, kFlooders);
  Bytes burst;
  for (int i = 0; i < kChats; ++i) {
    const Bytes chat = Packet(5, std::string(2048, 'a' + char(i % 26)));
    burst.insert(burst.end(), chat.begin(), chat.end());
  }
  double peak = 0;
  size_t taken = 0;
  WhileTheRoomsWait([&] {
    for (const auto& session : sessions) {
      taken += harness.Receive(*session, burst);
      peak = std::max(peak, session->MemoryUse());
    }
  });
  ASSERT_EQ(taken, kFlooders * burst.size());
  EXPECT_GT(peak, 0.5) << "the budget never mattered";
  EXPECT_LT(peak, 1.0);
  // Nobody was cut meanwhile. (The drain is the first test's: this one's
  // budget is too small for a room running its whole backlog in one round,
  // as the harness lets it.)
  for (const auto& session : sessions) EXPECT_TRUE(session->IsConnected());
}

// Attached to a service, RoomWork charges what it counts to the service's
// memory budget, in steps, and gives it all back.
TEST(RoomWorkTest, ChargesTheServiceBudgetInSteps) {
  ServerService service(ServiceOptions{}, [] { return nullptr; });
  const size_t before = service.GetStats().memory_used;
  game::RoomWork work(uint64_t{1} << 30);
  work.Attach(service);
  for (int i = 0; i < 1000; ++i) work.JobPushed();
  for (int i = 0; i < 100; ++i) work.JoinPushed();
  const auto counted = static_cast<int64_t>(work.bytes());
  EXPECT_EQ(counted, static_cast<int64_t>(1000 * game::RoomWork::kJobBytes +
                                          100 * game::RoomWork::kJoinBytes));
  const auto used =
      static_cast<int64_t>(service.GetStats().memory_used - before);
  EXPECT_EQ(used, work.charged());
  EXPECT_LT(counted - used, game::RoomWork::kChargeStep);
  work.JobsDone(1000);
  work.JoinsDone(100);
  EXPECT_EQ(work.charged(), 0);
  EXPECT_EQ(service.GetStats().memory_used, before);
  work.Detach();
  work.JobPushed();
  EXPECT_EQ(work.charged(), 0) << "detached";
}

TEST(GameSessionDriverTest, CheckedInCorpus) {
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           (std::getenv("CORPUS") ? std::getenv("CORPUS")
                                  : GAME_SESSION_CORPUS_DIR))) {
    SCOPED_TRACE(entry.path().string());
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
    game::fuzz::RunConversation(
        {reinterpret_cast<const std::byte*>(data.data()), data.size()});
    ++files;
  }
  EXPECT_GT(files, 0u);
}

}  // namespace
}  // namespace servercore::testing
