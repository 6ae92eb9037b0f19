#include "tests/apps/fake_game_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <map>
#include <span>
#include <vector>

#include "game.packets.h"
#include "servercore/packet_framer.h"
#include "tests/apps/app_test_util.h"

namespace servercore::test {

// One connection (the SESSION of the generated pb::Dispatch).
class FakeConn {
 public:
  FakeGameServer::World* world = nullptr;
  int fd = -1;
  uint64_t id = 0;
  uint32_t room = 0;
  bool handshaken = false;
  bool dead = false;
  std::vector<std::byte> in;
  // The world: the latest move, and what snapshots showed of it.
  bool in_world = false;
  bool need_full = false;
  bool moved = false;
  game::pb::Entity latest;
  game::pb::Entity shown;
  int64_t frozen_until_ns = 0;  // kLate
};

namespace {

using game::pb::Entity;
using game::pb::S_SNAPSHOT;

constexpr uint64_t kPhantomBase = 1'000'000;  // + room
constexpr uint64_t kIdleBase = 2'000'000;     // big_full's idle entities
constexpr int kIdleEntities = 9000;
constexpr size_t kSplitAt = 64'000;  // bytes of one S_SNAPSHOT, about
constexpr int kFaultTick = 10;       // world ticks before a world fault

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SendAll(FakeConn& c, std::span<const std::byte> bytes) {
  size_t done = 0;
  while (!c.dead && done < bytes.size()) {
    const ssize_t n =
        ::send(c.fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) c.dead = true;
    if (n > 0) done += static_cast<size_t>(n);
  }
}

void SendBuffer(FakeConn& c, const SendBufferRef& buffer) {
  SendAll(c, buffer->Data());
}

void SendRaw(FakeConn& c, uint16_t id, std::span<const std::byte> payload) {
  std::vector<std::byte> packet(kPacketHeaderSize + payload.size());
  WritePacketHeader(packet.data(), static_cast<uint16_t>(packet.size()), id);
  std::copy(payload.begin(), payload.end(), packet.begin() + kPacketHeaderSize);
  SendAll(c, packet);
}

void AppendLe(std::vector<std::byte>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
  }
}

Entity Phantom(uint32_t room, uint32_t seq, bool gone = false) {
  Entity e;
  e.set_session_id(kPhantomBase + room);
  e.set_last_seq(seq);
  e.set_gone(gone);
  return e;
}

}  // namespace

class FakeGameServer::World {
 public:
  World(const FakeGameOptions& options, std::atomic<int>& faults)
      : options_(options), faults_(faults) {}

  bool Is(WorldFault f) const { return options_.fault == f; }
  // Applies the fault once: true the first time it is asked.
  bool Once(WorldFault f) {
    if (!Is(f) || applied_) return false;
    applied_ = true;
    ++faults_;
    return true;
  }

  void Handle(FakeConn& c, uint16_t id, std::span<const std::byte> payload);
  void Tick(std::vector<FakeConn*>& conns);

  uint32_t tick_ = 0;  // shared by all rooms: never decreases in any
  uint32_t phantom_seq_ = 0;
  // kChatSwapped: the S_CHAT held back, for whom, from whom (ids; 0: none).
  std::vector<std::byte> held_chat_;
  uint64_t held_for_ = 0;
  uint64_t held_from_ = 0;
  std::map<uint32_t, std::vector<uint64_t>> gone_;  // room -> left members
  std::vector<FakeConn*>* conns_ = nullptr;

 private:
  void AfterHandshake(FakeConn& c);
  void Chat(FakeConn& c, std::span<const std::byte> message);
  void SendSnapshot(FakeConn& to, S_SNAPSHOT& s);
  void SendFull(FakeConn& to, const std::vector<FakeConn*>& members);

  const FakeGameOptions options_;
  std::atomic<int>& faults_;
  bool applied_ = false;
  int world_ticks_ = 0;
};

}  // namespace servercore::test

namespace game::pb {

using servercore::test::FakeConn;

void Handle_C_PING(FakeConn& c, const C_PING& message) {
  if (c.world->Once(servercore::test::WorldFault::kUnansweredPing)) return;
  S_PONG pong;
  pong.set_client_time_us(message.client_time_us());
  if (c.world->Once(servercore::test::WorldFault::kWrongPong)) {
    pong.set_client_time_us(message.client_time_us() + 1);
  }
  pong.set_server_time_us(1);
  servercore::test::SendBuffer(c, MakeSendBuffer(pong));
}

void Handle_C_MOVE(FakeConn& c, const C_MOVE& message) {
  c.latest.set_session_id(c.id);
  c.latest.set_x(message.x());
  c.latest.set_y(message.y());
  c.latest.set_last_seq(message.seq());
  c.moved = true;
  if (!c.in_world) {
    c.in_world = true;
    c.need_full = true;
  }
}

}  // namespace game::pb

namespace servercore::test {

void FakeGameServer::World::AfterHandshake(FakeConn& c) {
  if (c.handshaken) return;
  c.handshaken = true;
  if (Once(WorldFault::kSnapshotBeforeMove)) {
    S_SNAPSHOT s;
    s.set_room(c.room);
    s.set_tick(1);
    s.set_full(true);
    *s.add_entities() = Phantom(c.room, 1);
    SendBuffer(c, game::pb::MakeSendBuffer(s));
  }
  if (Once(WorldFault::kUnaskedPong)) {
    game::pb::S_PONG pong;
    pong.set_client_time_us(12345);
    SendBuffer(c, game::pb::MakeSendBuffer(pong));
  }
}

void FakeGameServer::World::Chat(FakeConn& c,
                                 std::span<const std::byte> message) {
  std::vector<std::byte> out;
  AppendLe(out, c.id, 8);
  out.insert(out.end(), message.begin(), message.end());
  bool leaked = false;
  for (FakeConn* to : *conns_) {
    if (to->room == c.room && to != &c &&
        Once(WorldFault::kChatOtherSenderId)) {
      // As a cluster node that forwarded it under another node's id would.
      std::vector<std::byte> relabeled;
      AppendLe(relabeled, c.id | uint64_t{1} << 48, 8);
      relabeled.insert(relabeled.end(), message.begin(), message.end());
      SendRaw(*to, 6, relabeled);
    } else if (to->room == c.room && to != &c &&
               Once(WorldFault::kChatDropped)) {
      // As a cluster node does while its broker is away: the later ones
      // come, this one never does.
    } else if (to->room == c.room && to->id == held_for_ &&
               c.id == held_from_) {
      // The chat held back goes after this one.
      SendRaw(*to, 6, out);
      SendRaw(*to, 6, held_chat_);
      held_for_ = held_from_ = 0;
    } else if (to->room == c.room && to != &c &&
               Once(WorldFault::kChatSwapped)) {
      held_chat_ = out;
      held_for_ = to->id;
      held_from_ = c.id;
    } else if (to->room == c.room && to != &c && Once(WorldFault::kChatTwice)) {
      // Never from GameServer (exactly once), nor from a cluster.
      SendRaw(*to, 6, out);
      SendRaw(*to, 6, out);
    } else if (to->room == c.room) {
      SendRaw(*to, 6, out);
    } else if (!leaked && Once(WorldFault::kChatOtherRoom)) {
      leaked = true;
      SendRaw(*to, 6, out);
    }
  }
}

void FakeGameServer::World::Handle(FakeConn& c, uint16_t id,
                                   std::span<const std::byte> payload) {
  switch (id) {
    case 1:  // C_ECHO
      SendRaw(c, 2, payload);
      AfterHandshake(c);
      return;
    case 3: {  // C_JOIN
      if (payload.size() != 4) return;
      const uint32_t room = LoadU32(payload.data());
      if (c.in_world) {
        gone_[c.room].push_back(c.id);
        c.need_full = true;
      }
      c.room = room;
      std::vector<std::byte> reply;
      AppendLe(reply, room, 4);
      AppendLe(reply,
               static_cast<uint64_t>(std::count_if(
                   conns_->begin(), conns_->end(),
                   [&](const FakeConn* o) { return o->room == room; })),
               4);
      SendRaw(c, 4, reply);
      AfterHandshake(c);
      return;
    }
    case 5:  // C_CHAT
      Chat(c, payload);
      return;
    default:
      if (id >= 1000) (void)game::pb::Dispatch(c, id, payload);
  }
}

void FakeGameServer::World::SendSnapshot(FakeConn& to, S_SNAPSHOT& s) {
  if (world_ticks_ >= kFaultTick) {
    if (Once(WorldFault::kTickBack)) s.set_tick(s.tick() - 2);
    if (Once(WorldFault::kOwnSeqBack)) {
      Entity* e = s.add_entities();
      e->set_session_id(to.id);
      e->set_last_seq(0);
    }
    if (Once(WorldFault::kPhantomSeqBack)) {
      *s.add_entities() = Phantom(to.room, phantom_seq_ - 3);
    }
    if (Is(WorldFault::kOtherSeqBack)) {
      // Another member of the room as it was three moves ago: after the
      // snapshots that showed it since, its last_seq goes back.
      for (const FakeConn* m : *conns_) {
        if (m != &to && m->in_world && m->room == to.room &&
            m->shown.last_seq() > 3 && Once(WorldFault::kOtherSeqBack)) {
          Entity e = m->shown;
          e.set_last_seq(e.last_seq() - 3);
          *s.add_entities() = e;
          break;
        }
      }
    }
    if (Once(WorldFault::kWrongRoom)) s.set_room(to.room + 7);
    if (Once(WorldFault::kGoneAndPresent)) {
      *s.add_entities() = Phantom(to.room, phantom_seq_, true);
    }
    if (Once(WorldFault::kEmptyDelta)) s.clear_entities();
    if (Is(WorldFault::kOtherWrongPosition)) {
      // Another member of the room where it is, but one step off.
      for (const FakeConn* m : *conns_) {
        if (m != &to && m->in_world && m->room == to.room &&
            m->shown.last_seq() > 0 && Once(WorldFault::kOtherWrongPosition)) {
          Entity e = m->shown;
          e.set_x(e.x() + 1);
          *s.add_entities() = e;
          break;
        }
      }
    }
    if (to.shown.last_seq() > 0 && Once(WorldFault::kWrongPosition)) {
      Entity* e = s.add_entities();
      *e = to.shown;
      e->set_x(e->x() + 1);
    }
    if (Once(WorldFault::kPacketAfterBye)) {
      game::pb::S_BYE bye;
      bye.set_reason(4);
      bye.set_detail("the fake says goodbye and goes on");
      SendBuffer(to, game::pb::MakeSendBuffer(bye));
    }
    // Longer than the late grace the tests allow a sanitized run (3 s).
    if (Once(WorldFault::kLate)) to.frozen_until_ns = NowNs() + 5'000'000'000;
  }
  SendBuffer(to, game::pb::MakeSendBuffer(s));
}

// Every world member of the room, the phantom, and with big_full the idle
// entities, in packets of at most about kSplitAt bytes; `to` itself last.
void FakeGameServer::World::SendFull(FakeConn& to,
                                     const std::vector<FakeConn*>& members) {
  const bool as_delta = Once(WorldFault::kDeltaFirst);
  const bool without_self = Once(WorldFault::kFullWithoutSelf);
  const bool without_others =
      members.size() > 1 && Once(WorldFault::kFullWithoutOthers);
  std::vector<Entity> all;
  all.push_back(Phantom(to.room, phantom_seq_));
  if (options_.big_full) {
    for (int i = 0; i < kIdleEntities; ++i) {
      Entity e;
      e.set_session_id(kIdleBase + static_cast<uint64_t>(i));
      e.set_x(static_cast<float>(i));
      e.set_y(-static_cast<float>(i));
      all.push_back(e);
    }
  }
  for (const FakeConn* m : members) {
    if (m != &to && !without_others) all.push_back(m->shown);
  }
  if (!without_self) all.push_back(to.shown);
  S_SNAPSHOT s;
  auto flush = [&] {
    s.set_room(to.room);
    s.set_tick(tick_);
    s.set_full(!as_delta);
    SendBuffer(to, game::pb::MakeSendBuffer(s));
    s.Clear();
  };
  for (size_t i = 0; i < all.size(); ++i) {
    *s.add_entities() = all[i];
    if (i % 50 == 49 && s.ByteSizeLong() > kSplitAt) flush();
  }
  flush();
}

void FakeGameServer::World::Tick(std::vector<FakeConn*>& conns) {
  ++tick_;
  ++phantom_seq_;
  const int64_t now = NowNs();
  std::map<uint32_t, std::vector<FakeConn*>> rooms;
  for (FakeConn* c : conns) {
    if (c->in_world) rooms[c->room].push_back(c);
  }
  if (!rooms.empty()) ++world_ticks_;
  for (auto& [room, members] : rooms) {
    S_SNAPSHOT delta;
    delta.set_room(room);
    delta.set_tick(tick_);
    for (FakeConn* m : members) {
      if (!m->moved || now < m->frozen_until_ns) continue;
      m->moved = false;
      m->shown = m->latest;
      *delta.add_entities() = m->shown;
    }
    *delta.add_entities() = Phantom(room, phantom_seq_);
    for (uint64_t id : gone_[room]) {
      Entity* e = delta.add_entities();
      e->set_session_id(id);
      e->set_gone(true);
    }
    gone_[room].clear();
    for (FakeConn* m : members) {
      if (m->need_full) {
        m->need_full = false;
        SendFull(*m, members);
      } else {
        S_SNAPSHOT copy = delta;
        SendSnapshot(*m, copy);
      }
    }
  }
}

FakeGameServer::FakeGameServer(const FakeGameOptions& options)
    : options_(options) {
  listen_fd_ = ListenOnLoopback(&port_);
  if (listen_fd_ >= 0) thread_ = std::thread([this] { Run(); });
}

FakeGameServer::~FakeGameServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void FakeGameServer::Run() {
  World world(options_, faults_);
  std::vector<std::unique_ptr<FakeConn>> owned;
  std::vector<FakeConn*> conns;
  world.conns_ = &conns;
  const int64_t tick_ns = int64_t{options_.tick_ms} * 1'000'000;
  int64_t next_tick = NowNs() + tick_ns;
  uint64_t next_id = 1;
  std::byte buf[65536];
  while (!stop_) {
    std::vector<pollfd> fds{{.fd = listen_fd_, .events = POLLIN, .revents = 0}};
    for (FakeConn* c : conns) {
      fds.push_back({.fd = c->fd, .events = POLLIN, .revents = 0});
    }
    const int64_t wait_ms =
        std::clamp<int64_t>((next_tick - NowNs()) / 1'000'000, 0, 20);
    const int r = ::poll(fds.data(), fds.size(), static_cast<int>(wait_ms));
    if (r < 0 && errno != EINTR) return;
    if (r > 0 && (fds[0].revents & POLLIN) != 0) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        owned.push_back(std::make_unique<FakeConn>());
        owned.back()->world = &world;
        owned.back()->fd = fd;
        owned.back()->id = next_id++;
        conns.push_back(owned.back().get());
      }
    }
    for (size_t i = 1; r > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      FakeConn& c = *conns[i - 1];
      const ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        c.dead = true;
        continue;
      }
      c.in.insert(c.in.end(), buf, buf + n);
      size_t at = 0;
      while (!c.dead && c.in.size() - at >= kPacketHeaderSize) {
        const uint16_t size = LoadU16(c.in.data() + at);
        const uint16_t id = LoadU16(c.in.data() + at + 2);
        if (size < kPacketHeaderSize) c.dead = true;
        if (c.dead || c.in.size() - at < size) break;
        world.Handle(c, id,
                     std::span(c.in).subspan(at + kPacketHeaderSize,
                                             size - kPacketHeaderSize));
        at += size;
      }
      c.in.erase(c.in.begin(), c.in.begin() + static_cast<long>(at));
    }
    if (NowNs() >= next_tick) {
      world.Tick(conns);
      next_tick += tick_ns;
    }
    for (FakeConn* c : conns) {
      if (c->dead && c->in_world) world.gone_[c->room].push_back(c->id);
    }
    std::erase_if(conns, [](FakeConn* c) {
      if (c->dead) ::close(c->fd);
      return c->dead;
    });
  }
  for (FakeConn* c : conns) ::close(c->fd);
}

}  // namespace servercore::test
