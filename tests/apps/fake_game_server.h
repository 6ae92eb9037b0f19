// FakeGameServer: a small GameServer stand-in on plain sockets and one
// thread, for checking that DummyClient notices a server that breaks
// docs/PROTOCOL.md's rooms, chat, ping and world rules. It serves echo,
// C_JOIN, C_CHAT (to the sender's room), C_PING and C_MOVE, and every
// `tick_ms` sends each world member of a room a delta snapshot (the members
// that moved, and a phantom entity per room whose last_seq grows every tick)
// or, right after it entered the world or joined a room, a full one. With
// `big_full`, full snapshots also list thousands of idle entities, so they
// are split into packets of nearly 65535 bytes sharing one tick, the
// receiver itself in the last.
//
// A fault is applied once, to the first session it fits (faults() counts
// it): the world faults to the first world member's snapshot of the tenth
// tick with world members, the others as their names say.
//
// Thread safety: Distinct objects: Safe. Shared objects: port() and
// faults() from any thread.
#ifndef SERVERCORE_TESTS_APPS_FAKE_GAME_SERVER_H_
#define SERVERCORE_TESTS_APPS_FAKE_GAME_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

namespace servercore::test {

enum class WorldFault {
  kNone,
  kSnapshotBeforeMove,  // an S_SNAPSHOT after the handshake, before C_MOVE
  kUnaskedPong,         // an S_PONG after the handshake, never pinged for
  kWrongPong,           // the first S_PONG's client_time_us off by one
  kDeltaFirst,          // the first snapshot in the world not full
  kFullWithoutSelf,     // the first full snapshot leaves the receiver out
  kFullWithoutOthers,   // the first full snapshot that should list another
                        // member of the room leaves the others out
  kTickBack,            // a tick below the previous one
  kOwnSeqBack,          // the receiver's own entity with last_seq 0
  kOtherSeqBack,        // another member's last_seq going back
  kPhantomSeqBack,      // the phantom's last_seq going back (legal: it is
                        // no client of DummyClient's run)
  kLate,                // the receiver's moves unpublished for 5 s
  kWrongRoom,           // a snapshot naming another room
  kGoneAndPresent,      // the phantom both gone and present in one snapshot
  kChatOtherRoom,       // the first S_CHAT also to a session of another room
  kChatOtherSenderId,   // one S_CHAT to another member with another sender id
  kChatDropped,         // one S_CHAT left out for another member
  kChatTwice,           // one S_CHAT sent twice to another member
  kChatSwapped,         // one S_CHAT to another member after the next one
  kEmptyDelta,          // one delta with no entity
  kUnansweredPing,      // the first C_PING never answered
  kPacketAfterBye,      // an S_BYE, and the snapshots go on
  kWrongPosition,       // the receiver's own entity one step off in x
  kOtherWrongPosition,  // another member's entity one step off in x
};

struct FakeGameOptions {
  WorldFault fault = WorldFault::kNone;
  int tick_ms = 20;
  bool big_full = false;
};

class FakeGameServer {
 public:
  explicit FakeGameServer(const FakeGameOptions& options);
  ~FakeGameServer();
  FakeGameServer(const FakeGameServer&) = delete;
  FakeGameServer& operator=(const FakeGameServer&) = delete;

  // 0 when the listening socket could not be set up.
  uint16_t port() const noexcept { return port_; }
  // How many times the fault was applied.
  int faults() const noexcept { return faults_.load(); }

  class World;  // the loop's state, fake_game_server.cc

 private:
  void Run();

  const FakeGameOptions options_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> faults_{0};
  std::thread thread_;
};

}  // namespace servercore::test

#endif  // SERVERCORE_TESTS_APPS_FAKE_GAME_SERVER_H_
