#include "game_session_driver.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "game.pb.h"
#include "game_session.h"
#include "game_session_oracle.h"
#include "room_directory.h"
#include "servercore/service.h"
#include "testing/session_harness.h"

namespace game::fuzz {
namespace {

using servercore::testing::SessionHarness;

constexpr size_t kMaxSlots = 4;
constexpr size_t kMaxClients = 16;  // reconnects included
constexpr auto kTick = std::chrono::seconds(60);

// An echo's length byte from here on asks for a large payload (1 KiB and
// more on average is what GameServer writes from the receive memory with
// Session::SendNow): (byte - 239) * 512 bytes, made from a one-byte seed so
// a short input says it.
constexpr unsigned kLargeEcho = 240;

Bytes Pattern(size_t size, unsigned seed) {
  Bytes bytes(size);
  for (size_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<std::byte>(seed + i * 131 + (i >> 8));
  }
  return bytes;
}

Bytes MakePacket(uint16_t id, std::span<const std::byte> payload) {
  Bytes packet;
  Put(packet, 4 + payload.size(), 2);
  Put(packet, id, 2);
  packet.insert(packet.end(), payload.begin(), payload.end());
  return packet;
}

template <typename Message>
Bytes MakeTyped(uint16_t id, const Message& message) {
  const std::string bytes = message.SerializeAsString();
  return MakePacket(
      id, {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()});
}

// --- The conversation
// ----------------------------------------------------------

class Conversation {
 public:
  Conversation(std::span<const std::byte> setup)
      : slots_(1 + Byte(setup.data(), 0) % kMaxSlots),
        max_packet_(Byte(setup.data(), 2) % 3 == 0   ? 4096
                    : Byte(setup.data(), 2) % 3 == 1 ? 64
                                                     : 65535),
        max_read_(Byte(setup.data(), 3)),
        rooms_(WorldOptions{.tick = kTick}),
        harness_(servercore::ServiceOptions{
            .recv_buffer_size = std::max<size_t>(16 * 1024, 2 * max_packet_)}) {
    harness_.SetMaxWrite(Byte(setup.data(), 1) & 0x7f);
    harness_.SetRefuseEveryOtherWriteNow((Byte(setup.data(), 1) & 0x80) != 0);
    for (size_t i = 0; i < slots_; ++i) slot_.push_back(Connect());
  }

  void Run(std::span<const std::byte> ops);

 private:
  size_t Connect() {
    auto client = std::make_unique<Client>();
    client->session = std::make_shared<GameSession>(rooms_, max_packet_);
    harness_.Add(client->session);
    harness_.RunRound();  // it reaches the worker and reads
    clients_.push_back(std::move(client));
    return clients_.size() - 1;
  }

  void Send(Client& c, std::span<const std::byte> bytes) {
    const size_t piece = max_read_ == 0 ? bytes.size() : max_read_;
    for (size_t at = 0; at < bytes.size(); at += piece) {
      const auto read = bytes.subspan(at, std::min(piece, bytes.size() - at));
      c.sent.insert(c.sent.end(), read.begin(), read.end());
      c.reads.push_back(c.sent.size());
      harness_.Receive(*c.session, read);
    }
    Model(c, max_packet_);
  }

  void Control(Client& c, size_t slot, unsigned what);
  void Settle();
  void CheckRunning();
  void CheckStopped();

  const size_t slots_;
  const size_t max_packet_;
  const size_t max_read_;
  RoomDirectory rooms_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<size_t> slot_;  // slot -> index in clients_
  SessionHarness harness_;
  uint64_t ping_time_ = 0;
};

void Conversation::Control(Client& c, size_t slot, unsigned what) {
  switch (what % 4) {
    case 0:
      harness_.RunRound();
      break;
    case 1:
      // Past the time a session is kept for what it owes after its peer's
      // end of stream (2 s): one still open may be closed before its rooms
      // answered, and then only a prefix is owed.
      for (auto& other : clients_) {
        if (other->session->IsConnected()) {
          other->replies_at_close = SIZE_MAX;
          other->chats_at_close = SIZE_MAX;
        }
      }
      harness_.Advance(kTick);
      harness_.RunRound();
      break;
    case 2:
      // (Still connected after its end of stream while its rooms answer.)
      if (c.session->IsConnected() && !c.closed_by_peer) {
        c.closed_by_peer = true;
        if (!c.error && c.parsed == c.sent.size()) {
          c.replies_at_close = c.replies.size();
          c.chats_at_close = c.chats.size();
        }
        harness_.PeerClose(*c.session);
      }
      break;
    case 3:
      if (!c.session->IsConnected() && clients_.size() < kMaxClients) {
        slot_[slot] = Connect();
      }
      break;
  }
}

void Conversation::Run(std::span<const std::byte> ops) {
  size_t at = 0;
  const auto take = [&](size_t n) -> std::span<const std::byte> {
    if (ops.size() - at < n) {
      at = ops.size();
      return {};
    }
    at += n;
    return ops.subspan(at - n, n);
  };
  while (at < ops.size()) {
    const unsigned op = Byte(ops.data(), at++);
    const size_t slot = (op / 8) % slots_;
    Client& c = *clients_[slot_[slot]];
    const unsigned kind = op % 8;
    if (kind == 7) {
      const auto arg = take(1);
      if (arg.empty()) break;
      Control(c, slot, Byte(arg.data(), 0));
      continue;
    }
    Bytes packet;
    if (kind == 0 || kind == 1 || kind == 3 || kind == 6) {
      unsigned id = kind == 1 ? kCEcho : kCChat;
      if (kind == 6) {
        const auto which = take(1);
        if (which.empty()) break;
        id = kCPing + Byte(which.data(), 0) % 8;
      }
      const auto n = take(1);
      if (n.empty()) break;
      const unsigned length = Byte(n.data(), 0);
      Bytes body;
      if (kind == 1 && length >= kLargeEcho) {
        const auto seed = take(1);
        if (seed.empty()) break;
        body = Pattern((length - kLargeEcho + 1) * 512, Byte(seed.data(), 0));
      } else {
        const auto bytes = take(length);
        if (bytes.size() != length) break;
        body.assign(bytes.begin(), bytes.end());
      }
      packet = kind == 0 ? std::move(body)
                         : MakePacket(static_cast<uint16_t>(id), body);
    } else if (kind == 2) {
      const auto r = take(1);
      if (r.empty()) break;
      uint32_t room = Byte(r.data(), 0) % 4;
      if (Byte(r.data(), 0) == 255) {
        const auto big = take(4);
        if (big.empty()) break;
        room = U32(big.data());
      }
      Bytes payload;
      Put(payload, room, 4);
      packet = MakePacket(kCJoin, payload);
    } else if (kind == 4) {
      const auto xy = take(4);
      if (xy.empty()) break;
      pb::C_MOVE move;
      move.set_x(static_cast<int16_t>(U16(xy.data())) / 3.0F);
      move.set_y(static_cast<int16_t>(U16(xy.data() + 2)) / 3.0F);
      move.set_seq(++c.next_seq);
      packet = MakeTyped(kCMove, move);
    } else {  // kind == 5
      const auto t = take(1);
      if (t.empty()) break;
      pb::C_PING ping;
      ping.set_client_time_us(++ping_time_ * 256 + Byte(t.data(), 0));
      packet = MakeTyped(kCPing, ping);
    }
    Send(c, packet);
  }
  Settle();
  CheckRunning();
  harness_.Stop();
  CheckStopped();
}

// Everything in flight done; then two ticks, so every world member has seen
// every other one's latest move (PROTOCOL.md: within two ticks).
void Conversation::Settle() {
  for (int tick = 0; tick <= 2; ++tick) {
    if (tick > 0) harness_.Advance(kTick);
    if (!harness_.RunUntilQuiet()) Fail("the worker never went quiet");
  }
}

void Conversation::CheckRunning() {
  const Checker checker(clients_);
  for (const auto& client : clients_) {
    Client& c = *client;
    c.connected_at_end = c.session->IsConnected();
    const Received r = checker.Check(c, harness_.Written(*c.session));
    if (c.error && c.connected_at_end) {
      Fail("client %llu: a protocol error, and still connected",
           static_cast<unsigned long long>(c.id()));
    }
    if (c.closed_by_peer) {
      // What it got is a prefix (checked); between two packets, all it was
      // owed, and no goodbye (it closed first).
      if (c.replies_at_close != SIZE_MAX &&
          (r.replies != c.replies_at_close || r.own_chats != c.chats_at_close ||
           r.bye)) {
        Fail(
            "client %llu, closed by its peer: %zu of %zu replies, %zu of %zu "
            "own chats%s",
            static_cast<unsigned long long>(c.id()), r.replies,
            c.replies_at_close, r.own_chats, c.chats_at_close,
            r.bye ? ", and an S_BYE" : "");
      }
      continue;
    }
    if (!c.error && !c.connected_at_end) {
      Fail("client %llu: closed, with no error of its own",
           static_cast<unsigned long long>(c.id()));
    }
    if (r.replies != c.replies.size() || r.own_chats != c.chats.size()) {
      Fail("client %llu: %zu of %zu replies, %zu of %zu own chats",
           static_cast<unsigned long long>(c.id()), r.replies, c.replies.size(),
           r.own_chats, c.chats.size());
    }
    if (c.error && r.bye != c.typed) {
      Fail("client %llu: closed for its error %s S_BYE",
           static_cast<unsigned long long>(c.id()),
           r.bye ? "with an unasked" : "without its");
    }
    if (r.bye && r.bye_reason != kByeProtocolError) {
      Fail("client %llu: S_BYE reason %u",
           static_cast<unsigned long long>(c.id()), r.bye_reason);
    }
    if (c.error || c.moves.empty()) continue;
    // The world as it saw it: every connected world member of its room, at
    // its latest position.
    size_t expected = 0;
    for (const auto& other : clients_) {
      const Client& o = *other;
      if (!o.session->IsConnected() || o.moves.empty() || o.room != c.room) {
        continue;
      }
      ++expected;
      auto it = r.view.find(o.id());
      const Move& last = o.moves.back();
      if (it == r.view.end() || it->second.x != last.x ||
          it->second.y != last.y || it->second.seq != last.seq) {
        Fail("client %llu: does not see %llu at its latest move (seq %u)",
             static_cast<unsigned long long>(c.id()),
             static_cast<unsigned long long>(o.id()), last.seq);
      }
    }
    if (r.view.size() != expected) {
      Fail("client %llu: sees %zu world members, %zu are in room %u",
           static_cast<unsigned long long>(c.id()), r.view.size(), expected,
           c.room);
    }
  }
}

// Every client still connected at the stop got its goodbye (reason 4) if it
// ever sent a typed packet, and nothing after it.
void Conversation::CheckStopped() {
  const Checker checker(clients_);
  for (const auto& client : clients_) {
    const Client& c = *client;
    if (c.session->IsConnected()) Fail("a client still connected after Stop");
    const Received r = checker.Check(c, harness_.Written(*c.session));
    if (!c.connected_at_end) continue;
    if (r.bye != c.typed || (r.bye && r.bye_reason != kByeStopping)) {
      Fail("client %llu: at the stop, %s (reason %u)",
           static_cast<unsigned long long>(c.id()),
           r.bye ? "an S_BYE" : "no S_BYE", r.bye_reason);
    }
  }
}

}  // namespace

void RunConversation(std::span<const std::byte> input) {
  if (input.size() < 4) return;
  Conversation conversation(input.first(4));
  conversation.Run(input.subspan(4));
}

// --- Seeds -------------------------------------------------------------------

namespace {

// Writes operations in the input format above.
class Script {
 public:
  Script(unsigned clients, unsigned max_write, unsigned max_packet_choice,
         unsigned max_read) {
    for (unsigned b : {clients - 1, max_write, max_packet_choice, max_read}) {
      Put(bytes_, b, 1);
    }
  }
  Script& Raw(unsigned slot, std::string_view data) {
    return Op(0, slot, data);
  }
  Script& Echo(unsigned slot, std::string_view data) {
    return Op(1, slot, data);
  }
  // A C_ECHO of `kilobytes` KiB (1..8) of pattern: written at once with
  // Session::SendNow when nothing else is pending.
  Script& LargeEcho(unsigned slot, unsigned kilobytes, unsigned seed) {
    Head(1, slot);
    Put(bytes_, kLargeEcho - 1 + 2 * kilobytes, 1);
    Put(bytes_, seed, 1);
    return *this;
  }
  Script& Join(unsigned slot, unsigned room) {
    Head(2, slot);
    Put(bytes_, room, 1);
    return *this;
  }
  Script& Chat(unsigned slot, std::string_view data) {
    return Op(3, slot, data);
  }
  Script& Move(unsigned slot, int16_t x, int16_t y) {
    Head(4, slot);
    Put(bytes_, static_cast<uint16_t>(x), 2);
    Put(bytes_, static_cast<uint16_t>(y), 2);
    return *this;
  }
  Script& Ping(unsigned slot) {
    Head(5, slot);
    Put(bytes_, 7, 1);
    return *this;
  }
  Script& Typed(unsigned slot, unsigned id, std::string_view data) {
    Head(6, slot);
    Put(bytes_, id - 1000, 1);
    Put(bytes_, data.size(), 1);
    bytes_.insert(
        bytes_.end(), reinterpret_cast<const std::byte*>(data.data()),
        reinterpret_cast<const std::byte*>(data.data()) + data.size());
    return *this;
  }
  Script& Control(unsigned slot, unsigned what) {
    Head(7, slot);
    Put(bytes_, what, 1);
    return *this;
  }
  Script& Round() { return Control(0, 0); }
  Script& Tick() { return Control(0, 1); }
  Script& Close(unsigned slot) { return Control(slot, 2); }
  Script& Reconnect(unsigned slot) { return Control(slot, 3); }
  Bytes Done() { return std::move(bytes_); }

 private:
  void Head(unsigned kind, unsigned slot) { Put(bytes_, slot * 8 + kind, 1); }
  Script& Op(unsigned kind, unsigned slot, std::string_view data) {
    Head(kind, slot);
    Put(bytes_, data.size(), 1);
    bytes_.insert(
        bytes_.end(), reinterpret_cast<const std::byte*>(data.data()),
        reinterpret_cast<const std::byte*>(data.data()) + data.size());
    return *this;
  }
  Bytes bytes_;
};

}  // namespace

std::vector<Bytes> SeedConversations() {
  std::vector<Bytes> seeds;
  // Echo, pings, chat in room 0, then two rooms.
  seeds.push_back(Script(3, 0, 0, 0)
                      .Echo(0, "hello")
                      .Ping(1)
                      .Chat(2, "to everyone")
                      .Round()
                      .Join(0, 1)
                      .Join(1, 1)
                      .Chat(0, "room one")
                      .Echo(1, "after the join")
                      .Chat(2, "room zero")
                      .Round()
                      .Join(2, 1)
                      .Chat(2, "arrived")
                      .Done());
  // The world: moves in room 0, ticks, a move to room 2 and back.
  seeds.push_back(Script(2, 0, 0, 0)
                      .Move(0, 300, -300)
                      .Move(1, 3000, 6000)
                      .Tick()
                      .Move(0, 330, -330)
                      .Join(1, 2)
                      .Move(1, -30, 30)
                      .Tick()
                      .Join(1, 0)
                      .Chat(1, "back")
                      .Move(1, 0, 0)
                      .Tick()
                      .Done());
  // Partial writes and reads of 3 bytes; a close, a reconnect.
  seeds.push_back(Script(4, 7, 0, 3)
                      .Join(0, 3)
                      .Join(1, 3)
                      .Move(0, 1, 2)
                      .Chat(1, "split into pieces")
                      .Echo(2, "echo")
                      .Ping(3)
                      .Round()
                      .Close(2)
                      .Round()
                      .Reconnect(2)
                      .Chat(2, "new here")
                      .Move(3, 5, 5)
                      .Tick()
                      .Done());
  // Bad input: an unknown typed id, a short C_JOIN, a size below 4, a
  // C_MOVE out of bounds; the others go on.
  seeds.push_back(Script(4, 0, 1, 0)
                      .Echo(0, "fine")
                      .Typed(1, 1003, "\x08\x01")
                      .Raw(2, std::string_view("\x06\x00\x03\x00\x01\x02", 6))
                      .Raw(3, std::string_view("\x02\x00", 2))
                      .Move(0, 32000, 0)
                      .Chat(3, "after the error")
                      .Round()
                      .Reconnect(1)
                      .Ping(1)
                      .Done());
  // Large echoes, written at once from the receive memory, into a socket
  // that takes 100 bytes a write (the rest kept and written next, before
  // what comes after), read 200 bytes at a time (payloads from the receive
  // tail), with chats and pings of other clients between them.
  seeds.push_back(Script(2, 100, 0, 200)
                      .LargeEcho(0, 2, 1)
                      .LargeEcho(0, 1, 2)
                      .Chat(1, "between")
                      .Round()
                      .LargeEcho(1, 3, 3)
                      .Echo(1, "small")
                      .Ping(0)
                      .LargeEcho(0, 3, 4)
                      .Round()
                      .Done());
  // The same where every other direct write takes nothing, the others all.
  seeds.push_back(Script(2, 0x80, 0, 0)
                      .LargeEcho(0, 2, 5)
                      .Round()
                      .LargeEcho(0, 1, 6)
                      .Chat(1, "between")
                      .LargeEcho(1, 3, 7)
                      .Round()
                      .LargeEcho(1, 2, 8)
                      .Done());
  return seeds;
}

}  // namespace game::fuzz
