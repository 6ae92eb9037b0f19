// What ChaosClient's attackers share: the run's options, a counter set per
// attack kind, the failures found, and small helpers (a seeded random
// source per attacker, a pacer, waiting on a connection for an answer).
//
// Each kind (attacks.h) runs on its own thread until the deadline. A
// failure is something the server did that docs/PROTOCOL.md forbids (a
// malformed packet, a wrong or missing answer, a timeout that did not
// fire); what an attacker merely could not do (a connect that timed out
// under a storm) is counted, not failed.
//
// Thread safety: Chaos is safe to share; its options are immutable.
#ifndef SERVERCORE_TOOLS_CHAOS_CLIENT_CHAOS_H_
#define SERVERCORE_TOOLS_CHAOS_CLIENT_CHAOS_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "packets.h"
#include "raw_conn.h"

namespace chaos {

using Clock = std::chrono::steady_clock;
using Rng = std::mt19937_64;
using std::chrono::milliseconds;

enum class Kind { kFuzz, kSplit, kStorm, kSlowloris, kFlood, kChurn, kTyped };
inline constexpr size_t kKinds = 7;
const char* KindName(Kind kind);

struct ChaosOptions {
  uint16_t port = 0;
  uint64_t seed = 1;
  double scale = 1;               // multiplies every kind's rate and pool size
  size_t max_packet = 4096;       // the server's --max-packet
  double packet_timeout = 2;      // the server's --packet-timeout, seconds
  double idle_timeout = 6;        // the server's --idle-timeout, seconds
  double answer_timeout = 10;     // seconds an expected answer may take
  RoomRange attack_rooms{1, 99};  // rooms the attackers use as they like
  RoomRange keep_out;    // the verifiers' rooms: random streams stay out
  RoomRange chat_rooms;  // verifiers' chat rooms: churners only listen
  RoomRange move_rooms;  // verifiers' move rooms: churners move validly
  Clock::time_point deadline;
};

struct KindStats {
  std::atomic<uint64_t> attacks{0};         // connections opened
  std::atomic<uint64_t> connect_failed{0};  // connects refused or timed out
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> server_closed{0};  // closed by the server first
  std::atomic<uint64_t> checked{0};        // answers checked and right
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> notes{0};  // kind-specific: see PrintSummary
};

class Chaos {
 public:
  explicit Chaos(const ChaosOptions& options) : options_(options) {}

  const ChaosOptions& options() const noexcept { return options_; }
  bool Running() const { return Clock::now() < options_.deadline; }
  KindStats& stats(Kind kind) { return stats_[static_cast<size_t>(kind)]; }
  // The random source of one attacker thread: the seed and the kind.
  Rng MakeRng(Kind kind, uint64_t thread = 0) const;
  // Counts a failure and prints the first ones with what went wrong.
  void Fail(Kind kind, const std::string& what);
  uint64_t Failures() const;
  // One line per kind and the total; the run's verdict.
  void PrintSummary(double seconds) const;

 private:
  const ChaosOptions options_;
  std::array<KindStats, kKinds> stats_;
  std::mutex mu_;
  uint64_t shown_ = 0;  // guarded by mu_
};

// Spaces out attacks at `per_second` (on average), never bursting to
// catch up more than a second.
class Pacer {
 public:
  explicit Pacer(double per_second);
  void Wait();

 private:
  Clock::duration period_;
  Clock::time_point next_;
};

// `base` times `scale`, rounded, at least 1: a pool's size.
size_t Scaled(double base, double scale);
// A uniform integer in [lo, hi].
uint64_t Uniform(Rng& rng, uint64_t lo, uint64_t hi);
// True with probability p.
bool Chance(Rng& rng, double p);
Bytes RandomBytes(Rng& rng, size_t n);
milliseconds Seconds(double s);

// Reads until `done(packet)` returns true for a packet (true), or the
// server closes, or `timeout` passes (false). *closed says whether the
// connection ended. Framing errors end the wait (see reader.error()).
bool AwaitPacket(RawConn& conn, ServerReader& reader,
                 const std::function<bool(const ServerPacket&)>& done,
                 milliseconds timeout, bool* closed);
// Reads until the server closes (true) or `timeout` passes (false);
// `each` sees every packet.
bool AwaitClose(RawConn& conn, ServerReader& reader, milliseconds timeout,
                const std::function<void(const ServerPacket&)>& each);

}  // namespace chaos

#endif  // SERVERCORE_TOOLS_CHAOS_CLIENT_CHAOS_H_
