// flood and churn (attacks.h): rooms under broadcast.
#include <cstring>
#include <map>
#include <thread>

#include "attacks.h"

namespace chaos {
namespace {

constexpr double kFlooders = 4;
constexpr double kFloodRate = 50;  // chats a second per flooder
constexpr size_t kFloodPayload = 3000;
constexpr double kNonReaders = 20;
constexpr int kNonReaderRcvBuf = 4096;
// A non-reader stops reading for 5-10 s, then reads to the end: the server
// must have cut it by then (at --max-pending, which the flood passes),
// but only reading shows that: the server's FIN waits behind the unread
// bytes.
constexpr int64_t kNonReaderLifeMs[2] = {5000, 10000};
constexpr uint32_t kFloodMagic = 0x31444C46;  // "FLD1"
constexpr double kChurners = 8;

// A reading flooder. Its chats carry [magic][slot][generation][seq]; every
// reader must see each (slot, generation)'s chats with no gap once it has
// seen one.
struct Flooder {
  RawConn conn;
  ServerReader reader;
  uint32_t slot = 0;
  uint32_t generation = 0;
  uint64_t seq = 0;
  bool joined = false;
  Clock::time_point since;                // when its chats may start
  std::map<uint64_t, uint64_t> expected;  // (slot, generation) -> next seq
};

struct NonReader {
  RawConn conn;
  Clock::time_point until;  // when it reads again
};

class Flood {
 public:
  explicit Flood(Chaos& chaos)
      : chaos_(chaos),
        o_(chaos.options()),
        stats_(chaos.stats(Kind::kFlood)),
        rng_(chaos.MakeRng(Kind::kFlood)),
        room_(o_.attack_rooms.first) {}

  void Run();

 private:
  void OpenFlooder(Flooder& f);
  void OpenNonReader(NonReader& n);
  // Reads what the server queued; whether it ends in the server's close.
  bool WasCut(NonReader& n);
  // Reads and checks; false when the flooder is gone.
  bool Read(Flooder& f);
  void CheckChat(Flooder& f, const Bytes& payload);
  bool SendDue(Flooder& f, Clock::time_point now);

  Chaos& chaos_;
  const ChaosOptions& o_;
  KindStats& stats_;
  Rng rng_;
  const uint32_t room_;
  uint32_t generations_ = 0;
};

void Flood::OpenFlooder(Flooder& f) {
  const uint32_t slot = f.slot;
  f = Flooder{};
  f.slot = slot;
  f.generation = ++generations_;
  f.conn = RawConn::Connect(o_.port, milliseconds(2000));
  stats_.attacks++;
  if (!f.conn.ok()) {
    stats_.connect_failed++;
    return;
  }
  const Bytes join = JoinPacket(room_);
  if (!f.conn.Send(join)) f.conn.Reset();
}

void Flood::OpenNonReader(NonReader& n) {
  n.conn = RawConn::Connect(o_.port, milliseconds(2000), kNonReaderRcvBuf);
  n.until =
      Clock::now() + milliseconds(static_cast<int64_t>(Uniform(
                         rng_, kNonReaderLifeMs[0], kNonReaderLifeMs[1])));
  stats_.attacks++;
  if (!n.conn.ok()) {
    stats_.connect_failed++;
    return;
  }
  const Bytes join = JoinPacket(room_);
  if (!n.conn.Send(join)) n.conn.Reset();
}

void Flood::CheckChat(Flooder& f, const Bytes& p) {
  // [u64 sender session id][magic][slot][generation][seq]
  if (!f.joined || p.size() < 8 + 20 || GetU32(p.data() + 8) != kFloodMagic) {
    return;  // another attacker's chat, or the old room's
  }
  const uint64_t key =
      (uint64_t{GetU32(p.data() + 12)} << 32) | GetU32(p.data() + 16);
  const uint64_t seq = GetU64(p.data() + 20);
  auto [it, first] = f.expected.try_emplace(key, seq);
  if (it->second != seq) {
    chaos_.Fail(Kind::kFlood, "reader " + std::to_string(f.slot) + " got seq " +
                                  std::to_string(seq) + " of flooder " +
                                  std::to_string(key >> 32) + " where " +
                                  std::to_string(it->second) + " was due");
  } else if (!first) {
    stats_.checked++;
  }
  it->second = seq + 1;
}

bool Flood::Read(Flooder& f) {
  const bool closed = f.conn.Drain(f.reader) == RawConn::State::kClosed;
  while (auto packet = f.reader.Next()) {
    if (packet->id == kSJoin && !f.joined) {
      f.joined = true;
      f.since = Clock::now();
    } else if (packet->id == kSChat) {
      CheckChat(f, packet->payload);
    }
  }
  if (!f.reader.error().empty()) {
    chaos_.Fail(Kind::kFlood, f.reader.error());
    return false;
  }
  if (closed) stats_.server_closed++;  // cut as slow: this thread lagged
  return !closed;
}

bool Flood::WasCut(NonReader& n) {
  ServerReader reader;
  bool closed = false;
  AwaitPacket(
      n.conn, reader, [](const ServerPacket&) { return false; },
      milliseconds(500), &closed);
  if (!reader.error().empty()) chaos_.Fail(Kind::kFlood, reader.error());
  return closed;
}

bool Flood::SendDue(Flooder& f, Clock::time_point now) {
  if (!f.joined) return true;
  const double due =
      std::chrono::duration<double>(now - f.since).count() * kFloodRate;
  while (static_cast<double>(f.seq) < due) {
    Bytes payload;
    PutU32(payload, kFloodMagic);
    PutU32(payload, f.slot);
    PutU32(payload, f.generation);
    PutU64(payload, f.seq);
    payload.resize(kFloodPayload, static_cast<uint8_t>(f.seq));
    const Bytes chat = Packet(kCChat, payload);
    if (!f.conn.Send(chat)) return false;
    stats_.bytes_sent += chat.size();
    ++f.seq;
  }
  return true;
}

void Flood::Run() {
  std::vector<Flooder> flooders(Scaled(kFlooders, o_.scale));
  for (size_t i = 0; i < flooders.size(); ++i) {
    flooders[i].slot = static_cast<uint32_t>(i);
    OpenFlooder(flooders[i]);
  }
  std::vector<NonReader> nonreaders(Scaled(kNonReaders, o_.scale));
  for (NonReader& n : nonreaders) OpenNonReader(n);
  while (chaos_.Running()) {
    const auto now = Clock::now();
    for (Flooder& f : flooders) {
      if (!f.conn.ok() || !Read(f) || !SendDue(f, now)) {
        f.conn.Reset();
        OpenFlooder(f);
      }
    }
    for (NonReader& n : nonreaders) {
      if (n.conn.ok() && now < n.until) continue;
      if (n.conn.ok() && WasCut(n)) {
        stats_.notes++;
        stats_.server_closed++;
      }
      n.conn.Reset();
      OpenNonReader(n);
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
}

// A session wandering between rooms.
struct Churner {
  RawConn conn;
  ServerReader reader;
  std::vector<uint32_t> joins;  // rooms asked for, S_JOIN not yet back
  uint32_t target = 0;          // the room of its last C_JOIN
  uint32_t move_seq = 0;
  Clock::time_point next;
};

class Churn {
 public:
  explicit Churn(Chaos& chaos)
      : chaos_(chaos),
        o_(chaos.options()),
        stats_(chaos.stats(Kind::kChurn)),
        rng_(chaos.MakeRng(Kind::kChurn)) {}

  void Run();

 private:
  void Open(Churner& c);
  uint32_t PickRoom();
  // One action; false when the churner closed itself.
  bool Act(Churner& c);
  // Reads and checks; false when the server closed it.
  bool Read(Churner& c);
  bool Send(Churner& c, const Bytes& bytes);

  Chaos& chaos_;
  const ChaosOptions& o_;
  KindStats& stats_;
  Rng rng_;
};

void Churn::Open(Churner& c) {
  c = Churner{};
  c.conn = RawConn::Connect(o_.port, milliseconds(2000));
  stats_.attacks++;
  if (!c.conn.ok()) stats_.connect_failed++;
  c.next = Clock::now();
}

uint32_t Churn::PickRoom() {
  const uint64_t r = Uniform(rng_, 0, 9);
  const RoomRange& range = r < 3                             ? o_.attack_rooms
                           : r < 6 && !o_.chat_rooms.empty() ? o_.chat_rooms
                           : r < 9 && !o_.move_rooms.empty() ? o_.move_rooms
                                                             : RoomRange{0, 0};
  return static_cast<uint32_t>(Uniform(rng_, range.first, range.last));
}

bool Churn::Send(Churner& c, const Bytes& bytes) {
  if (!c.conn.Send(bytes)) return false;
  stats_.bytes_sent += bytes.size();
  return true;
}

bool Churn::Act(Churner& c) {
  const uint64_t r = Uniform(rng_, 0, 99);
  if (r < 45) {
    c.target = PickRoom();
    c.joins.push_back(c.target);
    stats_.notes++;
    return Send(c, JoinPacket(c.target));
  }
  if (r < 70) {  // valid, seq increasing, far from DummyClient's paths
    const auto x = static_cast<float>(Uniform(rng_, 9200, 9900));
    const auto y = static_cast<float>(Uniform(rng_, 9200, 9900));
    return Send(c, Packet(kCMove, MovePayload(x, -y, ++c.move_seq)));
  }
  if (r < 85) {  // chat only where no verifier is
    if (o_.keep_out.Contains(c.target)) return true;
    return Send(c, Packet(kCChat, RandomBytes(rng_, Uniform(rng_, 0, 200))));
  }
  if (r < 92) return Send(c, Packet(kCEcho, RandomBytes(rng_, 16)));
  if (r < 97) {
    c.conn.Reset();  // RST in the middle of the room's broadcasts
  } else {
    c.conn.Close();
  }
  return false;
}

bool Churn::Read(Churner& c) {
  const bool closed = c.conn.Drain(c.reader) == RawConn::State::kClosed;
  bool bye = false;
  while (auto packet = c.reader.Next()) {
    if (packet->id == kSBye) bye = true;
    if (packet->id != kSJoin) continue;
    const Bytes& p = packet->payload;
    if (c.joins.empty() || p.size() != 8 || GetU32(p.data()) != c.joins[0] ||
        GetU32(p.data() + 4) < 1) {
      chaos_.Fail(
          Kind::kChurn,
          "S_JOIN " +
              (p.size() == 8 ? std::to_string(GetU32(p.data()))
                             : "of " + std::to_string(p.size()) + " bytes") +
              " where " +
              (c.joins.empty() ? "none" : std::to_string(c.joins[0])) +
              " was due");
      return false;
    }
    c.joins.erase(c.joins.begin());
    stats_.checked++;
  }
  if (!c.reader.error().empty()) {
    chaos_.Fail(Kind::kChurn, c.reader.error());
    return false;
  }
  if (closed) {
    stats_.server_closed++;
    // Nothing it sent was wrong and it is never idle: only a cut as a slow
    // receiver (this thread lagging) may close it, and that comes without
    // S_BYE.
    if (bye) chaos_.Fail(Kind::kChurn, "a valid session got S_BYE");
  }
  return !closed;
}

void Churn::Run() {
  std::vector<Churner> churners(Scaled(kChurners, o_.scale));
  for (Churner& c : churners) Open(c);
  while (chaos_.Running()) {
    const auto now = Clock::now();
    for (Churner& c : churners) {
      bool open = c.conn.ok() && Read(c);
      if (open && now >= c.next) {
        open = Act(c);
        c.next =
            now + milliseconds(static_cast<int64_t>(Uniform(rng_, 10, 60)));
      }
      if (!open) {
        c.conn.Reset();
        Open(c);
      }
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
}

}  // namespace

void RunFlood(Chaos& chaos) { Flood(chaos).Run(); }
void RunChurn(Chaos& chaos) { Churn(chaos).Run(); }

}  // namespace chaos
