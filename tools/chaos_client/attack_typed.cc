// typed (attacks.h): ids 1000 and 1002, valid and not.
#include <array>
#include <cmath>
#include <limits>

#include "attacks.h"

namespace chaos {
namespace {

constexpr double kTypedRate = 60;  // connections a second

// Payloads protobuf's parser rejects, whatever the message.
const std::vector<Bytes>& Malformed() {
  static const std::vector<Bytes> kAll = {
      {0x08},                                // a varint field with no value
      {0x08, 0x80},                          // a varint cut short
      {0x0D, 0x00, 0x00},                    // a fixed32 cut short
      {0x00, 0x01},                          // field number 0
      {0x12, 0x05, 0x01},                    // a length past the end
      {0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F},  // a 4 GiB length
      {0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
       0x01},        // an 11-byte varint
      {0x0E},        // wire type 6
      {0x0F, 0x00},  // wire type 7
      {0x0C},        // an end-group with no group
      {0x80},        // a tag cut short
  };
  return kAll;
}

float InvalidCoordinate(Rng& rng) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const std::array<float, 8> values = {std::numeric_limits<float>::quiet_NaN(),
                                       kInf,
                                       -kInf,
                                       std::nextafter(10000.0f, kInf),
                                       std::nextafter(-10000.0f, -kInf),
                                       1e30f,
                                       -std::numeric_limits<float>::max(),
                                       10001.0f};
  return values[Uniform(rng, 0, values.size() - 1)];
}

float ValidCoordinate(Rng& rng) {
  const std::array<float, 6> values = {
      10000.0f,
      -10000.0f,
      -0.0f,
      0.0f,
      1e-40f,  // a denormal
      static_cast<float>(Uniform(rng, 0, 20000)) - 10000.0f};
  return values[Uniform(rng, 0, values.size() - 1)];
}

enum class Case {
  kPing,
  kMove,
  kBadMove,
  kMalformed,
  kServerId,
  kEchoThenBad,
  kRandom
};

class Typed {
 public:
  explicit Typed(Chaos& chaos)
      : chaos_(chaos),
        o_(chaos.options()),
        stats_(chaos.stats(Kind::kTyped)),
        rng_(chaos.MakeRng(Kind::kTyped)) {}

  void Run();

 private:
  void Once(Case c);
  // A valid packet must get its answer (S_PONG or S_SNAPSHOT).
  void ExpectAnswer(RawConn& conn, uint16_t id, uint64_t ping_time,
                    const char* what);
  // A bad packet: S_ECHO of `echo` first if any, then S_BYE reason 1, then
  // the close (docs/PROTOCOL.md "Bad input", "Goodbye").
  void ExpectBye(RawConn& conn, const Bytes* echo, const std::string& what);

  Chaos& chaos_;
  const ChaosOptions& o_;
  KindStats& stats_;
  Rng rng_;
};

void Typed::ExpectAnswer(RawConn& conn, uint16_t id, uint64_t ping_time,
                         const char* what) {
  ServerReader reader;
  bool closed = false;
  const bool got = AwaitPacket(
      conn, reader,
      [&](const ServerPacket& p) {
        return p.id == id &&
               (id != kSPong || ProtoField(p.payload, 1) == ping_time);
      },
      Seconds(o_.answer_timeout), &closed);
  if (got) {
    stats_.checked++;
    return;
  }
  chaos_.Fail(Kind::kTyped, std::string(what) + ": " +
                                (!reader.error().empty() ? reader.error()
                                 : closed ? "closed by the server"
                                          : "no answer in time"));
}

void Typed::ExpectBye(RawConn& conn, const Bytes* echo,
                      const std::string& what) {
  ServerReader reader;
  std::vector<ServerPacket> seen;  // all but room 0's chats
  const bool closed = AwaitClose(conn, reader, Seconds(o_.answer_timeout),
                                 [&](const ServerPacket& p) {
                                   if (p.id != kSChat) seen.push_back(p);
                                 });
  std::string wrong;
  if (!reader.error().empty()) {
    wrong = reader.error();
  } else if (!closed) {
    wrong = "not closed in time";
  } else if (seen.empty() || seen.back().id != kSBye) {
    wrong = "closed without S_BYE";
  } else if (ProtoField(seen.back().payload, 1) != 1) {
    wrong = "S_BYE reason is not 1";
  } else if (echo != nullptr && (seen.size() != 2 || seen[0].id != kSEcho ||
                                 seen[0].payload != *echo)) {
    wrong = "the echo before the bad packet was not answered first";
  } else if (echo == nullptr && seen.size() != 1) {
    wrong = "packets other than S_BYE";
  }
  if (wrong.empty()) {
    stats_.checked++;
    stats_.notes++;
    return;
  }
  // What came, in order (room 0's chats left out), for the log.
  std::string ids;
  for (const ServerPacket& p : seen) {
    ids += (ids.empty() ? "" : ",") + std::to_string(p.id) + ":" +
           std::to_string(p.payload.size()) + "B";
    if (p.id == kSEcho && echo != nullptr && p.payload != *echo) ids += "(!)";
  }
  chaos_.Fail(Kind::kTyped, what + ": " + wrong + " (got ids [" + ids + "])");
}

void Typed::Once(Case c) {
  RawConn conn = RawConn::Connect(o_.port, milliseconds(2000));
  stats_.attacks++;
  if (!conn.ok()) {
    stats_.connect_failed++;
    return;
  }
  const uint16_t id = Chance(rng_, 0.5) ? kCPing : kCMove;
  Bytes bytes;
  Bytes echo;
  std::string what;
  switch (c) {
    case Case::kPing: {
      const uint64_t t = rng_();
      bytes = Packet(kCPing, PingPayload(t));
      if (!conn.Send(bytes)) return;
      stats_.bytes_sent += bytes.size();
      return ExpectAnswer(conn, kSPong, t, "C_PING");
    }
    case Case::kMove:
      bytes = Packet(
          kCMove, MovePayload(ValidCoordinate(rng_), ValidCoordinate(rng_), 1));
      if (!conn.Send(bytes)) return;
      stats_.bytes_sent += bytes.size();
      return ExpectAnswer(conn, kSSnapshot, 0, "valid C_MOVE");
    case Case::kBadMove: {
      const bool x_bad = Chance(rng_, 0.5);
      const float bad = InvalidCoordinate(rng_);
      bytes = Packet(kCMove,
                     MovePayload(x_bad ? bad : 1.0f, x_bad ? 1.0f : bad, 1));
      what = "C_MOVE at " + std::to_string(bad);
      break;
    }
    case Case::kMalformed: {
      const size_t which = Uniform(rng_, 0, Malformed().size() - 1);
      bytes = Packet(id, Malformed()[which]);
      what = "malformed protobuf #" + std::to_string(which) + " as id " +
             std::to_string(id);
      break;
    }
    case Case::kServerId: {
      static constexpr std::array<uint16_t, 7> kIds = {1001, 1003, 1004, 1005,
                                                       1006, 1999, 65535};
      const uint16_t bad = kIds[Uniform(rng_, 0, kIds.size() - 1)];
      bytes = Packet(bad, PingPayload(1));
      what = "typed id " + std::to_string(bad);
      break;
    }
    case Case::kEchoThenBad: {
      echo = RandomBytes(rng_, Uniform(rng_, 0, 100));
      bytes = Packet(kCEcho, echo);
      const Bytes bad =
          Packet(kCMove, MovePayload(InvalidCoordinate(rng_), 0, 1));
      bytes.insert(bytes.end(), bad.begin(), bad.end());
      what = "an echo, then a bad C_MOVE";
      break;
    }
    case Case::kRandom: {  // valid or not: only the framing is checked
      bytes = Packet(id, RandomBytes(rng_, Uniform(rng_, 0, 40)));
      if (!conn.Send(bytes)) return;
      stats_.bytes_sent += bytes.size();
      ServerReader reader;
      bool closed = false;
      AwaitPacket(
          conn, reader, [](const ServerPacket&) { return false; },
          milliseconds(20), &closed);
      if (!reader.error().empty()) chaos_.Fail(Kind::kTyped, reader.error());
      return;
    }
  }
  if (!conn.Send(bytes)) return;
  stats_.bytes_sent += bytes.size();
  ExpectBye(conn, c == Case::kEchoThenBad ? &echo : nullptr, what);
}

void Typed::Run() {
  Pacer pacer(kTypedRate * o_.scale);
  while (chaos_.Running()) {
    pacer.Wait();
    Once(static_cast<Case>(Uniform(rng_, 0, 6)));
  }
}

}  // namespace

void RunTyped(Chaos& chaos) { Typed(chaos).Run(); }

}  // namespace chaos
