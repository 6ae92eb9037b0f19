// storm and slowloris (attacks.h): connections as attackers open, hold and
// drop them.
#include <algorithm>
#include <thread>

#include "attacks.h"

namespace chaos {
namespace {

constexpr double kStormBursts = 10;  // bursts a second
constexpr size_t kStormBurst = 16;   // connections a burst
constexpr double kLorisPool = 40;    // slow connections held at once

// What one storm connection does (RunStorm).
void StormOne(Rng& rng, const ChaosOptions& o, KindStats& stats,
              RawConn& conn) {
  const uint64_t action = Uniform(rng, 0, 5);
  if (action == 0) return conn.Reset();  // perhaps before the handshake
  if (action == 1) return conn.Close();
  if (!conn.WaitConnected(milliseconds(1000))) {
    stats.connect_failed++;
    return conn.Reset();
  }
  Bytes bytes;
  switch (action) {
    case 2:  // a packet's first part, then RST
      bytes = Packet(kCEcho, RandomBytes(rng, Uniform(rng, 1, 200)));
      bytes.resize(Uniform(rng, 1, bytes.size() - 1));
      stats.notes++;
      break;
    case 3: {  // a whole echo, part of the next, then FIN
      bytes = Packet(kCEcho, RandomBytes(rng, 20));
      Bytes next = Packet(kCChat, RandomBytes(rng, 100));
      bytes.insert(bytes.end(), next.begin(),
                   next.begin() + static_cast<std::ptrdiff_t>(
                                      Uniform(rng, 1, next.size() - 1)));
      stats.notes++;
      break;
    }
    case 4:  // a chat to room 0's crowd, then RST
      bytes = Packet(kCChat, RandomBytes(rng, Uniform(rng, 0, 500)));
      break;
    default:  // a join, then RST during the hand-over
      bytes = JoinPacket(static_cast<uint32_t>(
          Uniform(rng, o.attack_rooms.first, o.attack_rooms.last)));
      break;
  }
  if (conn.Send(bytes, milliseconds(200))) stats.bytes_sent += bytes.size();
  if (action == 3) return conn.Close();
  conn.Reset();
}

}  // namespace

void RunStorm(Chaos& chaos) {
  const ChaosOptions& o = chaos.options();
  KindStats& stats = chaos.stats(Kind::kStorm);
  Rng rng = chaos.MakeRng(Kind::kStorm);
  Pacer pacer(kStormBursts * o.scale);
  std::vector<RawConn> burst;
  while (chaos.Running()) {
    pacer.Wait();
    for (size_t i = 0; i < kStormBurst; ++i) {
      burst.push_back(RawConn::StartConnect(o.port));
      stats.attacks++;
      if (!burst.back().ok()) stats.connect_failed++;
    }
    for (RawConn& conn : burst) {
      if (conn.ok()) StormOne(rng, o, stats, conn);
    }
    burst.clear();
  }
}

namespace {

// One slow connection and what the server must do with it.
struct Loris {
  enum Mode { kHalfSent, kPartialHeader, kDripSlow, kIdle, kDripFast };
  Mode mode = kIdle;
  RawConn conn;
  ServerReader reader;
  Bytes drip;  // bytes still to send, one at a time
  size_t drip_at = 0;
  Clock::duration drip_every{};
  Clock::time_point next_drip;
  Clock::time_point begun;  // first byte of the packet underway, or connect
  Clock::time_point last_complete;  // kDripFast: last packet completed
  Clock::time_point end;            // kDripFast: when to stop by itself
  std::vector<Bytes> echoes;        // kDripFast: answers still due
};

const char* ModeName(Loris::Mode mode) {
  switch (mode) {
    case Loris::kHalfSent:
      return "half-sent packet";
    case Loris::kPartialHeader:
      return "partial header";
    case Loris::kDripSlow:
      return "packet dripped too slowly";
    case Loris::kIdle:
      return "idle connection";
    case Loris::kDripFast:
      return "packet dripped in time";
  }
  return "?";
}

class Slowloris {
 public:
  explicit Slowloris(Chaos& chaos)
      : chaos_(chaos),
        o_(chaos.options()),
        stats_(chaos.stats(Kind::kSlowloris)),
        rng_(chaos.MakeRng(Kind::kSlowloris)) {}

  void Run();

 private:
  void Open(Loris& l);
  void NextFastPacket(Loris& l, Clock::time_point now);
  // Checks one connection; false when it is done (closed).
  bool Step(Loris& l, Clock::time_point now);
  bool OnClosed(Loris& l, Clock::time_point now);
  // The window in which the server must close `l`: [earliest, latest].
  Clock::duration Timeout(const Loris& l) const;

  Chaos& chaos_;
  const ChaosOptions& o_;
  KindStats& stats_;
  Rng rng_;
};

void Slowloris::Open(Loris& l) {
  l = Loris{};
  l.mode = static_cast<Loris::Mode>(Uniform(rng_, 0, 4));
  l.conn = RawConn::Connect(o_.port, milliseconds(2000));
  stats_.attacks++;
  if (!l.conn.ok()) {
    stats_.connect_failed++;
    return;
  }
  l.conn.NoDelay();
  const auto now = Clock::now();
  l.begun = now;
  l.last_complete = now;
  Bytes first;
  switch (l.mode) {
    case Loris::kHalfSent: {
      const size_t size = Uniform(rng_, 100, o_.max_packet);
      first = Packet(Chance(rng_, 0.5) ? kCEcho : kCChat,
                     RandomBytes(rng_, size - kHeaderSize));
      first.resize(Uniform(rng_, 1, size - 1));
      break;
    }
    case Loris::kPartialHeader:
      first = RandomBytes(rng_, Uniform(rng_, 1, 3));
      first[0] = 8;  // a small size, so the server waits for the rest
      if (first.size() > 1) first[1] = 0;
      break;
    case Loris::kDripSlow:
      l.drip = Packet(kCEcho, RandomBytes(rng_, 40));
      l.drip_every = Seconds(o_.packet_timeout / 8);
      l.next_drip = now;
      break;
    case Loris::kIdle:
      break;
    case Loris::kDripFast:
      l.end =
          now + milliseconds(static_cast<int64_t>(Uniform(rng_, 2000, 8000)));
      NextFastPacket(l, now);
      break;
  }
  if (!first.empty() && l.conn.Send(first)) stats_.bytes_sent += first.size();
}

void Slowloris::NextFastPacket(Loris& l, Clock::time_point now) {
  Bytes payload = RandomBytes(rng_, Uniform(rng_, 0, 30));
  l.drip = Packet(kCEcho, payload);
  l.drip_at = 0;
  // The whole packet within a quarter of the packet timeout.
  l.drip_every =
      Seconds(o_.packet_timeout / 4) / static_cast<int64_t>(l.drip.size());
  l.next_drip = now;
  l.begun = now;
  l.echoes.push_back(std::move(payload));
}

Clock::duration Slowloris::Timeout(const Loris& l) const {
  return Seconds(l.mode == Loris::kIdle ? o_.idle_timeout : o_.packet_timeout);
}

bool Slowloris::OnClosed(Loris& l, Clock::time_point now) {
  stats_.server_closed++;
  const auto since = now - l.begun;
  const auto timeout = Timeout(l);
  if (l.mode == Loris::kDripFast) {
    // Closed although every packet was completed well within the packet
    // timeout and the last one well within the idle timeout.
    if (since < Seconds(o_.packet_timeout / 2) &&
        now - l.last_complete < Seconds(o_.idle_timeout / 2)) {
      chaos_.Fail(Kind::kSlowloris, "a packet dripped in time was cut");
    }
    return false;
  }
  if (since < timeout / 2) {
    chaos_.Fail(
        Kind::kSlowloris,
        std::string(ModeName(l.mode)) + ": closed after " +
            std::to_string(
                std::chrono::duration_cast<milliseconds>(since).count()) +
            " ms, before half the timeout");
  } else {
    stats_.notes++;
  }
  return false;
}

bool Slowloris::Step(Loris& l, Clock::time_point now) {
  if (l.conn.Drain(l.reader) == RawConn::State::kClosed) {
    return OnClosed(l, now);
  }
  while (auto packet = l.reader.Next()) {
    if (packet->id != kSEcho) continue;  // room 0's chats
    if (l.echoes.empty() || packet->payload != l.echoes.front()) {
      chaos_.Fail(Kind::kSlowloris, "a dripped echo came back wrong");
      return false;
    }
    l.echoes.erase(l.echoes.begin());
    stats_.checked++;
  }
  if (!l.reader.error().empty()) {
    chaos_.Fail(Kind::kSlowloris, l.reader.error());
    return false;
  }
  if (l.mode == Loris::kDripFast && now >= l.end &&
      l.drip_at == l.drip.size()) {
    if (l.echoes.empty()) return false;  // done: closed by us
    if (now - l.end > Seconds(o_.answer_timeout)) {
      chaos_.Fail(Kind::kSlowloris, "a dripped echo was never answered");
      return false;
    }
    return true;
  }
  if (l.drip_at < l.drip.size() && now >= l.next_drip) {
    if (l.drip_at == 0 && l.mode == Loris::kDripSlow) l.begun = now;
    if (l.conn.Send(std::span(l.drip).subspan(l.drip_at, 1))) {
      stats_.bytes_sent++;
    }
    ++l.drip_at;
    l.next_drip += l.drip_every;
    if (l.mode == Loris::kDripFast && l.drip_at == l.drip.size()) {
      l.last_complete = now;
      if (now < l.end) NextFastPacket(l, now);
    }
  }
  if (l.mode != Loris::kDripFast &&
      now - l.begun > Timeout(l) + Seconds(std::max(2.0, o_.packet_timeout))) {
    chaos_.Fail(Kind::kSlowloris,
                std::string(ModeName(l.mode)) + ": not closed after " +
                    std::to_string(
                        std::chrono::duration_cast<milliseconds>(now - l.begun)
                            .count()) +
                    " ms");
    return false;
  }
  return true;
}

void Slowloris::Run() {
  std::vector<Loris> pool(Scaled(kLorisPool, o_.scale));
  for (Loris& l : pool) {
    if (!chaos_.Running()) break;
    Open(l);
    std::this_thread::sleep_for(milliseconds(20));  // staggered deadlines
  }
  while (chaos_.Running()) {
    const auto now = Clock::now();
    for (Loris& l : pool) {
      if (!l.conn.ok() || !Step(l, now)) {
        l.conn.Reset();
        Open(l);
      }
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
}

}  // namespace

void RunSlowloris(Chaos& chaos) { Slowloris(chaos).Run(); }

}  // namespace chaos
