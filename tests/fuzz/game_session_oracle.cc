#include "game_session_oracle.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "game.pb.h"

namespace game::fuzz {

void Fail(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::fputs("game_session_driver: ", stderr);
  std::vfprintf(stderr, format, args);
  std::fputc('\n', stderr);
  va_end(args);
  std::abort();
}

namespace {

template <typename Message>
bool Parse(Message& message, std::span<const std::byte> payload) {
  return message.ParseFromArray(payload.data(),
                                static_cast<int>(payload.size()));
}

bool SameBytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

const char* Who(const Client& c) {
  static thread_local char name[48];
  std::snprintf(name, sizeof(name), "client %llu",
                static_cast<unsigned long long>(c.id()));
  return name;
}

}  // namespace

namespace {

void Apply(Client& c, uint16_t id, std::span<const std::byte> payload) {
  if (id >= kCPing) c.typed = true;
  switch (id) {
    case kCEcho:
      c.replies.push_back({.id = kSEcho,
                           .echo = {payload.begin(), payload.end()},
                           .time = 0,
                           .room = 0});
      return;
    case kCJoin:
      if (payload.size() != 4) break;
      c.room = U32(payload.data());
      c.replies.push_back(
          {.id = kSJoin, .echo = {}, .time = 0, .room = c.room});
      return;
    case kCChat:
      if (4 + 8 + payload.size() > 65535) break;
      c.chats.push_back({{payload.begin(), payload.end()}, c.room});
      return;
    case kCPing: {
      pb::C_PING ping;
      if (!Parse(ping, payload)) break;
      c.replies.push_back(
          {.id = kSPong, .echo = {}, .time = ping.client_time_us(), .room = 0});
      return;
    }
    case kCMove: {
      pb::C_MOVE move;
      if (!Parse(move, payload)) break;
      const auto valid = [](float v) {
        return std::isfinite(v) && std::fabs(v) <= 10000.0F;
      };
      if (!valid(move.x()) || !valid(move.y())) break;
      c.moves.push_back({move.x(), move.y(), move.seq()});
      return;
    }
    default:
      break;
  }
  c.error = true;
}

}  // namespace

// Frames what arrived since the last call, independently of the server's
// framer, and applies each whole packet.
void Model(Client& c, size_t max_packet) {
  while (!c.error && c.sent.size() - c.parsed >= 2) {
    const std::byte* p = c.sent.data() + c.parsed;
    const size_t size = U16(p);
    if (size < 4 || size > max_packet) {
      // A bad header counts by the id it carries (PROTOCOL.md "Goodbye")
      // when the server saw it. The read that brought the header's first
      // byte either brought its size too, and then the framing broke there,
      // with the id only if its four bytes were in; or it brought that one
      // byte alone, which the server keeps as its receive tail and completes
      // to a whole header (four bytes) before framing it: the error comes
      // then, with the id.
      const auto read =
          std::upper_bound(c.reads.begin(), c.reads.end(), c.parsed);
      const bool alone = read != c.reads.end() && *read < c.parsed + 2;
      if (alone && c.sent.size() < c.parsed + 4) return;  // not framed yet
      c.error = true;
      const bool seen =
          alone || (read != c.reads.end() && *read >= c.parsed + 4);
      if (seen && U16(p + 2) >= kCPing) c.typed = true;
      return;
    }
    if (c.sent.size() - c.parsed < size) {
      // A packet begun counts by its id too, once its four header bytes are
      // in: the server frames them as soon as they are (its receive tail
      // holds a shorter start until they are).
      if (c.sent.size() - c.parsed >= 4 && U16(p + 2) >= kCPing) {
        c.typed = true;
      }
      return;
    }
    c.parsed += size;
    Apply(c, U16(p + 2), {p + 4, size - 4});
  }
}

// --- Checks ------------------------------------------------------------------

const Client* Checker::Find(uint64_t id) const {
  for (const auto& c : clients_) {
    if (c->id() == id) return c.get();
  }
  return nullptr;
}

Received Checker::Check(const Client& c, const Bytes& out) const {
  Received r;
  State s;
  size_t pos = 0;
  while (pos < out.size()) {
    if (out.size() - pos < 4) Fail("%s: output ends in a header", Who(c));
    const size_t size = U16(&out[pos]);
    const uint16_t id = U16(&out[pos + 2]);
    if (size < 4 || size > out.size() - pos) {
      Fail("%s: packet of size %zu at %zu, %zu bytes left", Who(c), size, pos,
           out.size() - pos);
    }
    if (r.bye) Fail("%s: packet id %u after S_BYE", Who(c), unsigned{id});
    const std::span<const std::byte> payload(&out[pos + 4], size - 4);
    OnPacket(c, id, payload, r, s);
    pos += size;
  }
  return r;
}

const Reply& Checker::NextReply(const Client& c, Received& r,
                                uint16_t id) const {
  if (r.replies >= c.replies.size()) {
    Fail("%s: reply id %u it did not ask for", Who(c), unsigned{id});
  }
  const Reply& want = c.replies[r.replies++];
  if (want.id != id) {
    Fail("%s: reply %zu is id %u, expected %u", Who(c), r.replies - 1,
         unsigned{id}, unsigned{want.id});
  }
  return want;
}

void Checker::OnPacket(const Client& c, uint16_t id,
                       std::span<const std::byte> p, Received& r,
                       State& s) const {
  switch (id) {
    case kSEcho:
      if (!SameBytes(NextReply(c, r, id).echo, p)) {
        Fail("%s: S_ECHO payload differs", Who(c));
      }
      return;
    case kSPong: {
      pb::S_PONG pong;
      if (!Parse(pong, p)) Fail("%s: S_PONG does not parse", Who(c));
      if (NextReply(c, r, id).time != pong.client_time_us()) {
        Fail("%s: S_PONG time differs", Who(c));
      }
      return;
    }
    case kSJoin: {
      if (p.size() != 8) Fail("%s: S_JOIN of %zu bytes", Who(c), p.size());
      const uint32_t room = U32(p.data());
      const uint32_t count = U32(p.data() + 4);
      if (NextReply(c, r, id).room != room) {
        Fail("%s: S_JOIN for room %u, not the one asked", Who(c), room);
      }
      if (count < 1 || count > clients_.size()) {
        Fail("%s: S_JOIN says %u members", Who(c), count);
      }
      s.room = room;
      s.stay_begins = true;
      s.tick = 0;
      r.view.clear();
      return;
    }
    case kSChat:
      OnChat(c, p, r, s);
      return;
    case kSSnapshot:
      OnSnapshot(c, p, r, s);
      return;
    case kSBye: {
      pb::S_BYE bye;
      if (!Parse(bye, p)) Fail("%s: S_BYE does not parse", Who(c));
      r.bye = true;
      r.bye_reason = bye.reason();
      return;
    }
    default:
      Fail("%s: packet id %u, which the server never sends", Who(c),
           unsigned{id});
  }
}

void Checker::OnChat(const Client& c, std::span<const std::byte> p, Received& r,
                     State& s) const {
  if (p.size() < 8) Fail("%s: S_CHAT of %zu bytes", Who(c), p.size());
  const uint64_t sender_id = U64(p.data());
  const Client* sender = Find(sender_id);
  if (sender == nullptr) Fail("%s: S_CHAT from no client", Who(c));
  const std::span<const std::byte> message = p.subspan(8);
  size_t& cursor = s.chat_cursor[sender_id];
  size_t k = cursor;
  while (k < sender->chats.size() &&
         (sender->chats[k].room != s.room ||
          !SameBytes(sender->chats[k].payload, message))) {
    ++k;
  }
  if (k == sender->chats.size()) {
    Fail(
        "%s: S_CHAT from %llu (in room %u) matches none of its chats to "
        "that room from #%zu on",
        Who(c), static_cast<unsigned long long>(sender_id), s.room, cursor);
  }
  if (sender == &c) {
    if (k != cursor) Fail("%s: its own chat #%zu was skipped", Who(c), cursor);
    ++r.own_chats;
  }
  cursor = k + 1;
}

void Checker::OnSnapshot(const Client& c, std::span<const std::byte> p,
                         Received& r, State& s) const {
  pb::S_SNAPSHOT snapshot;
  if (!Parse(snapshot, p)) Fail("%s: S_SNAPSHOT does not parse", Who(c));
  if (c.moves.empty()) Fail("%s: a snapshot, never having moved", Who(c));
  if (snapshot.room() != s.room) {
    Fail("%s: snapshot of room %u while in room %u", Who(c), snapshot.room(),
         s.room);
  }
  if (s.stay_begins && !snapshot.full()) {
    Fail("%s: first snapshot in room %u is not full", Who(c), s.room);
  }
  if (snapshot.tick() < s.tick) Fail("%s: tick went back", Who(c));
  s.tick = snapshot.tick();
  s.stay_begins = false;
  if (snapshot.full()) r.view.clear();
  bool self = false;
  for (const pb::Entity& e : snapshot.entities()) {
    const Client* who = Find(e.session_id());
    if (who == nullptr) Fail("%s: entity of no client", Who(c));
    if (e.gone()) {
      if (snapshot.full()) Fail("%s: gone entity in a full snapshot", Who(c));
      r.view.erase(e.session_id());
      continue;
    }
    const Move seen{e.x(), e.y(), e.last_seq()};
    const bool sent =
        std::any_of(who->moves.begin(), who->moves.end(), [&](const Move& m) {
          return m.x == seen.x && m.y == seen.y && m.seq == seen.seq;
        });
    if (!sent) {
      Fail("%s: entity %llu at (%g, %g) seq %u, never sent", Who(c),
           static_cast<unsigned long long>(e.session_id()),
           static_cast<double>(seen.x), static_cast<double>(seen.y), seen.seq);
    }
    r.view[e.session_id()] = seen;
    self |= who == &c;
  }
  if (snapshot.full() && !self) Fail("%s: full snapshot without it", Who(c));
}

}  // namespace game::fuzz
