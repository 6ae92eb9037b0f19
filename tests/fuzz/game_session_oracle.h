// The oracle of the GameSession fuzzer (game_session_driver.h): what the
// server owes each client, worked out from the bytes the client sent by
// docs/PROTOCOL.md's rules alone (its own framing, ids and checks, not the
// server's code), and the checks of what each client received against it.
#ifndef SERVERCORE_TESTS_FUZZ_GAME_SESSION_ORACLE_H_
#define SERVERCORE_TESTS_FUZZ_GAME_SESSION_ORACLE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "game_session.h"

namespace game::fuzz {

using Bytes = std::vector<std::byte>;

// The wire ids, from docs/PROTOCOL.md, written again here on purpose: the
// checks are an oracle of their own, not the server's headers.
enum : uint16_t {
  kCEcho = 1,
  kSEcho = 2,
  kCJoin = 3,
  kSJoin = 4,
  kCChat = 5,
  kSChat = 6,
  kCPing = 1000,
  kSPong = 1001,
  kCMove = 1002,
  kSSnapshot = 1003,
  kSBye = 1005,
};
constexpr uint32_t kByeProtocolError = 1;
constexpr uint32_t kByeStopping = 4;

// Prints what broke and aborts (a crash, to a fuzzer).
[[noreturn]] __attribute__((format(printf, 1, 2))) void Fail(const char* format,
                                                             ...);

inline unsigned Byte(const std::byte* p, size_t i) {
  return std::to_integer<unsigned>(p[i]);
}
inline uint16_t U16(const std::byte* p) {
  return static_cast<uint16_t>(Byte(p, 0) | Byte(p, 1) << 8);
}
inline uint32_t U32(const std::byte* p) {
  return U16(p) | uint32_t{U16(p + 2)} << 16;
}
inline uint64_t U64(const std::byte* p) {
  return U32(p) | uint64_t{U32(p + 4)} << 32;
}
// Appends the low `bytes` bytes of `value`, little-endian.
inline void Put(Bytes& out, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) {
    out.push_back(static_cast<std::byte>(value >> (8 * i)));
  }
}

// --- What the server owes each client --------------------------------------

struct Reply {
  uint16_t id = 0;  // kSEcho, kSPong or kSJoin
  Bytes echo;
  uint64_t time = 0;
  uint32_t room = 0;
};
struct Chat {
  Bytes payload;
  uint32_t room;  // the sender's room (its latest C_JOIN) when it sent it
};
struct Move {
  float x, y;
  uint32_t seq;
};

// One client: what it sent, and the contract applied to it (docs/PROTOCOL.md
// "Bad input", "Packet ids", "Typed packets"), up to its first protocol error.
struct Client {
  std::shared_ptr<GameSession> session;
  Bytes sent;
  std::vector<size_t> reads;  // where each read the server got ended in `sent`
  size_t parsed = 0;
  bool error = false;
  bool typed = false;  // a packet with id >= 1000 (valid or not)
  bool closed_by_peer = false;
  // Closed by its peer between two packets, with no error: the replies and
  // own chats it was owed then, every one of which it must get (the end of
  // its stream loses none: Session::OnPeerClosed). SIZE_MAX otherwise.
  size_t replies_at_close = SIZE_MAX;
  size_t chats_at_close = SIZE_MAX;
  bool connected_at_end = false;
  uint32_t room = 0;
  uint32_t next_seq = 0;
  std::vector<Reply> replies;
  std::vector<Chat> chats;
  std::vector<Move> moves;

  uint64_t id() const { return session->id(); }
};

// Frames what the client sent since the last call, independently of the
// server's framer, and applies each whole packet.
void Model(Client& c, size_t max_packet);

// --- What each client received, checked --------------------------------------

struct Received {
  size_t replies = 0;
  size_t own_chats = 0;
  bool bye = false;
  uint32_t bye_reason = 0;
  std::map<uint64_t, Move> view;  // the world, as the snapshots told it
};

// Checks one client's received bytes; aborts on a broken rule.
class Checker {
 public:
  explicit Checker(const std::vector<std::unique_ptr<Client>>& clients)
      : clients_(clients) {}

  const Client* Find(uint64_t id) const;
  Received Check(const Client& c, const Bytes& out) const;

 private:
  struct State {
    uint32_t room = 0;        // from the latest S_JOIN
    bool stay_begins = true;  // no snapshot yet in this stay
    uint64_t tick = 0;
    std::map<uint64_t, size_t> chat_cursor;  // per sender
  };

  const Reply& NextReply(const Client& c, Received& r, uint16_t id) const;
  void OnPacket(const Client& c, uint16_t id, std::span<const std::byte> p,
                Received& r, State& s) const;
  // From a sender, in its order, of the receiver's room at the time.
  void OnChat(const Client& c, std::span<const std::byte> p, Received& r,
              State& s) const;
  void OnSnapshot(const Client& c, std::span<const std::byte> p, Received& r,
                  State& s) const;

  const std::vector<std::unique_ptr<Client>>& clients_;
};

}  // namespace game::fuzz

#endif  // SERVERCORE_TESTS_FUZZ_GAME_SESSION_ORACLE_H_
