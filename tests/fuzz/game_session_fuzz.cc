// Coverage-guided fuzzer for GameServer's whole receive path, with no socket:
// a few clients' bytes go through real GameSessions (the framer, the
// handlers, the generated Dispatch and protobuf parsing, C_MOVE's checks) and
// the rooms' jobs (joins handed over between rooms, chat, ticks and their
// snapshots), run by a SessionHarness (src/testing/session_harness.h), and
// what every client received is checked against docs/PROTOCOL.md
// (game_session_driver.h has the input format and the rules checked).
//
// Seeds: tests/fuzz/corpus/game_session_fuzz/ (scripts/test.sh passes it).
//   build/fuzz/tests/fuzz/game_session_fuzz -max_total_time=60 \
//     NEW_CORPUS_DIR tests/fuzz/corpus/game_session_fuzz
#include <cstddef>
#include <cstdint>
#include <span>

#include "game_session_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  game::fuzz::RunConversation({reinterpret_cast<const std::byte*>(data), size});
  return 0;
}
