// The GameSession conversation driver: bytes in, a conversation between a few
// clients and GameServer's real sessions and rooms (run by a SessionHarness,
// with no socket), and every rule of docs/PROTOCOL.md that can be checked from
// the clients' side checked on what each one received. A broken rule prints
// what and where, then aborts, which a fuzzer reports as a crash.
//
// Used by the fuzzer (game_session_fuzz.cc) and by a unit test that runs the
// seeds and the checked-in corpus in every build (tests/unit/
// game_session_harness_test.cc).
//
// Input: four bytes of set-up, then operations until the input ends.
//   [0] clients: 1 + b % 4 (slots 0..n-1)
//   [1] the fake socket's largest write, b % 128: 0 all at once, else that
//       many bytes; with b >= 128 it also refuses every other write made at
//       once for Session::SendNow (-EAGAIN)
//   [2] --max-packet: b % 3 picks 4096, 64 or 65535
//   [3] the largest read: 0 a whole operation's bytes at once, else b bytes
//   then, per operation, one byte: kind = b % 8, slot = (b / 8) % clients
//   0 raw     n=byte, n bytes              sent as they are
//   1 echo    n=byte, n bytes              C_ECHO with that payload; for
//             n >= 240, s=byte instead: a payload of (n - 239) * 512 bytes
//             (512..8192, GameServer's direct write) made from s
//   2 join    r=byte (255: then u32 LE)    C_JOIN r % 4 (or the u32)
//   3 chat    n=byte, n bytes              C_CHAT
//   4 move    i16 x, i16 y (LE)            C_MOVE x/3, y/3, seq counting up
//   5 ping    t=byte                       C_PING
//   6 typed   id=1000 + byte % 8, n=byte, n bytes   any payload
//   7 control c=byte % 4: 0 one worker round; 1 a tick (the clock moves one
//             tick on, then a round); 2 the client closes; 3 a closed slot
//             gets a new client
// After the last operation: rounds until nothing is left to do, two ticks,
// the checks, then the server stops (every client gets its goodbye) and the
// checks again.
#ifndef SERVERCORE_TESTS_FUZZ_GAME_SESSION_DRIVER_H_
#define SERVERCORE_TESTS_FUZZ_GAME_SESSION_DRIVER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace game::fuzz {

// Runs one conversation; aborts on a broken rule.
void RunConversation(std::span<const std::byte> input);

// A few valid conversations (echo, chat in rooms, joins, moves and ticks,
// pings, a protocol error, a close and a reconnect): the fuzzer's seeds.
std::vector<std::vector<std::byte>> SeedConversations();

}  // namespace game::fuzz

#endif  // SERVERCORE_TESTS_FUZZ_GAME_SESSION_DRIVER_H_
