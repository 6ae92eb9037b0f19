// fuzz and split (attacks.h): byte streams.
#include <array>
#include <functional>
#include <thread>
#include <vector>

#include "attacks.h"

namespace chaos {
namespace {

constexpr double kFuzzRate = 150;  // connections a second
constexpr double kSplitRate = 40;

// A valid position, away from DummyClient's paths (within ±9000).
float ValidCoordinate(Rng& rng) {
  return static_cast<float>(Uniform(rng, 0, 20000)) - 10000.0f;
}

Bytes ValidPacket(Rng& rng, const ChaosOptions& o) {
  switch (Uniform(rng, 0, 4)) {
    case 0: {
      static constexpr std::array<size_t, 4> kClasses = {0, 1, 64, 0};
      size_t n = kClasses[Uniform(rng, 0, 3)];
      if (n == 0 && Chance(rng, 0.5)) n = Uniform(rng, 0, 300);
      if (Chance(rng, 0.05)) n = o.max_packet - kHeaderSize;  // the largest
      return Packet(kCEcho, RandomBytes(rng, n));
    }
    case 1:
      return JoinPacket(Chance(rng, 0.3) ? 0
                                         : static_cast<uint32_t>(Uniform(
                                               rng, o.attack_rooms.first,
                                               o.attack_rooms.last)));
    case 2:
      return Packet(kCChat, RandomBytes(rng, Uniform(rng, 0, 300)));
    case 3:
      return Packet(kCPing, PingPayload(rng()));
    default:
      return Packet(kCMove,
                    MovePayload(ValidCoordinate(rng), ValidCoordinate(rng),
                                static_cast<uint32_t>(rng())));
  }
}

uint16_t SizeClass(Rng& rng, size_t max_packet) {
  const auto max = static_cast<uint16_t>(max_packet);
  const std::array<uint16_t, 14> classes = {
      0,     1,
      2,     3,
      4,     5,
      8,     static_cast<uint16_t>(max - 1),
      max,   static_cast<uint16_t>(max + 1),
      32767, 32768,
      65535, static_cast<uint16_t>(rng())};
  return classes[Uniform(rng, 0, classes.size() - 1)];
}

uint16_t IdClass(Rng& rng) {
  static constexpr std::array<uint16_t, 17> kClasses = {
      0,    1,    2,    3,    4,    5,    6,    7,    999,
      1000, 1001, 1002, 1003, 1004, 1005, 1006, 65535};
  return Chance(rng, 0.1) ? static_cast<uint16_t>(rng())
                          : kClasses[Uniform(rng, 0, kClasses.size() - 1)];
}

void Put16At(Bytes& s, size_t at, uint16_t value) {
  s[at] = static_cast<uint8_t>(value & 0xFF);
  s[at + 1] = static_cast<uint8_t>(value >> 8);
}

void Mutate(Rng& rng, const ChaosOptions& o, Bytes& s,
            const std::vector<size_t>& starts) {
  const size_t at = starts[Uniform(rng, 0, starts.size() - 1)];
  switch (Uniform(rng, 0, 6)) {
    case 0:
      s = RandomBytes(rng, Uniform(rng, 1, 1500));
      break;
    case 1:
      for (uint64_t n = Uniform(rng, 1, 8); n > 0; --n) {
        uint8_t& byte = s[Uniform(rng, 0, s.size() - 1)];
        byte = static_cast<uint8_t>(byte ^ (1u << Uniform(rng, 0, 7)));
      }
      break;
    case 2:
      if (s.size() > 1) s.resize(Uniform(rng, 1, s.size() - 1));
      break;
    case 3:
      Put16At(s, at, SizeClass(rng, o.max_packet));
      break;
    case 4:
      Put16At(s, at + 2, IdClass(rng));
      break;
    case 5: {
      const Bytes more = RandomBytes(rng, Uniform(rng, 1, 16));
      s.insert(
          s.begin() + static_cast<std::ptrdiff_t>(Uniform(rng, 0, s.size())),
          more.begin(), more.end());
      break;
    }
    default:
      break;  // valid: the control
  }
}

// Sends `s` whole, byte by byte or in random pieces; the bytes that went.
size_t SendSomehow(Rng& rng, RawConn& conn, const Bytes& s) {
  const std::span<const uint8_t> all(s);
  const uint64_t how = Uniform(rng, 0, 2);
  if (how == 0) return conn.Send(all) ? s.size() : 0;
  conn.NoDelay();
  size_t sent = 0;
  while (sent < s.size()) {
    const size_t piece =
        how == 1 && sent < 256 ? 1 : Uniform(rng, 1, s.size() - sent);
    if (!conn.Send(all.subspan(sent, piece))) break;
    sent += piece;
    if (how == 2 && Chance(rng, 0.3)) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  }
  return sent;
}

}  // namespace

Bytes MutatedStream(Rng& rng, const ChaosOptions& o) {
  Bytes s;
  std::vector<size_t> starts;
  for (uint64_t n = Uniform(rng, 1, 6); n > 0; --n) {
    starts.push_back(s.size());
    const Bytes packet = ValidPacket(rng, o);
    s.insert(s.end(), packet.begin(), packet.end());
  }
  Mutate(rng, o, s, starts);
  KeepJoinsOut(s, o.keep_out, o.max_packet);
  return s;
}

namespace {

// One fuzz thread: `rate` connections a second with streams of its own.
void FuzzThread(Chaos& chaos, uint64_t thread, double rate) {
  const ChaosOptions& o = chaos.options();
  KindStats& stats = chaos.stats(Kind::kFuzz);
  Rng rng = chaos.MakeRng(Kind::kFuzz, thread);
  Pacer pacer(rate);
  while (chaos.Running()) {
    pacer.Wait();
    const Bytes stream = MutatedStream(rng, o);
    RawConn conn = RawConn::Connect(o.port, milliseconds(2000));
    stats.attacks++;
    if (!conn.ok()) {
      stats.connect_failed++;
      continue;
    }
    stats.bytes_sent += SendSomehow(rng, conn, stream);
    ServerReader reader;
    if (Chance(rng, 0.7)) {
      bool closed = false;
      AwaitPacket(
          conn, reader, [](const ServerPacket&) { return false; },
          milliseconds(10), &closed);
      if (closed) stats.server_closed++;
      stats.notes += reader.packets();
      if (!reader.error().empty()) chaos.Fail(Kind::kFuzz, reader.error());
    }
    if (Chance(rng, 0.5)) conn.Reset();
  }
}

}  // namespace

// One thread per 150 connections a second: each waits up to 10 ms for the
// answers of 70% of its streams.
void RunFuzz(Chaos& chaos) {
  const size_t n = Scaled(1, chaos.options().scale);
  const double rate =
      kFuzzRate * chaos.options().scale / static_cast<double>(n);
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; ++i) {
    threads.emplace_back(FuzzThread, std::ref(chaos), i, rate);
  }
  FuzzThread(chaos, 0, rate);
  for (std::thread& t : threads) t.join();
}

namespace {

// One split attack: echoes `a` then `b`, the stream cut after `cut` bytes
// (0: byte by byte); both answers must come back exact, in order.
void SplitOnce(Chaos& chaos, const Bytes& a, const Bytes& b, size_t cut) {
  const ChaosOptions& o = chaos.options();
  KindStats& stats = chaos.stats(Kind::kSplit);
  Bytes stream = Packet(kCEcho, a);
  const Bytes second = Packet(kCEcho, b);
  stream.insert(stream.end(), second.begin(), second.end());
  RawConn conn = RawConn::Connect(o.port, milliseconds(2000));
  stats.attacks++;
  if (!conn.ok()) {
    stats.connect_failed++;
    return;
  }
  conn.NoDelay();
  const std::span<const uint8_t> all(stream);
  bool sent = true;
  for (size_t at = 0; sent && at < stream.size();) {
    const size_t piece = cut == 0 ? 1 : (at == 0 ? cut : stream.size() - at);
    sent = conn.Send(all.subspan(at, piece));
    at += piece;
    if (cut != 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!sent) return;  // the server went away: the probes will tell
  stats.bytes_sent += stream.size();
  ServerReader reader;
  std::vector<Bytes> echoes;
  bool closed = false;
  const bool done = AwaitPacket(
      conn, reader,
      [&](const ServerPacket& p) {
        if (p.id == kSEcho) echoes.push_back(p.payload);
        return echoes.size() == 2;
      },
      Seconds(o.answer_timeout), &closed);
  if (!done || echoes[0] != a || echoes[1] != b) {
    chaos.Fail(Kind::kSplit, "echoes of " + std::to_string(a.size()) + " and " +
                                 std::to_string(b.size()) + " bytes cut at " +
                                 std::to_string(cut) + ": " +
                                 (!reader.error().empty() ? reader.error()
                                  : done                  ? "answers differ"
                                  : closed ? "closed by the server"
                                           : "no answer in time"));
    return;
  }
  stats.checked++;
}

}  // namespace

void RunSplit(Chaos& chaos) {
  const ChaosOptions& o = chaos.options();
  Rng rng = chaos.MakeRng(Kind::kSplit);
  Pacer pacer(kSplitRate * o.scale);
  static constexpr std::array<size_t, 5> kSizes = {0, 1, 2, 7, 60};
  size_t pair = 0;
  size_t cut = 1;
  for (uint64_t n = 0; chaos.Running(); ++n) {
    pacer.Wait();
    if (n % 16 == 15) {  // the largest packet, cut anywhere
      SplitOnce(chaos, RandomBytes(rng, o.max_packet - kHeaderSize),
                RandomBytes(rng, 5), Uniform(rng, 1, o.max_packet + 8));
      continue;
    }
    const Bytes a = RandomBytes(rng, kSizes[pair % kSizes.size()]);
    const Bytes b =
        RandomBytes(rng, kSizes[(pair / kSizes.size()) % kSizes.size()]);
    if (n % 8 == 7) {
      SplitOnce(chaos, a, b, 0);
      continue;
    }
    const size_t total = 2 * kHeaderSize + a.size() + b.size();
    SplitOnce(chaos, a, b, cut);
    if (++cut >= total) {  // every offset of this pair done: the next pair
      cut = 1;
      ++pair;
    }
  }
}

}  // namespace chaos
