// The Boost.Asio peer of GameServer (bench/peers/asio_game_server.cc): the
// same docs/PROTOCOL.md written the way a competent Asio user would, as the bar
// ServerCore is measured against. Nothing here uses ServerCore.
//
// Threading: one io_context per worker thread, each run by exactly one thread
// (the "io_context per CPU" pattern of Asio's HTTP server 2 example), rather
// than one io_context run by N threads. With one shared io_context every
// completion of every session goes through one scheduler queue and its mutex,
// a session's handlers may run on any thread, so each session needs a strand
// and rooms need a lock held across each broadcast; that is the slower of the
// two on Linux's epoll reactor. Per-thread contexts keep every session
// confined to the thread that accepted it for, so a session needs no strand
// and no lock at all. Rooms are kept per worker too: a worker knows only its
// own sessions' memberships, and a broadcast is delivered by the sender's
// worker to its local members and posted (one post, one copy of the packet)
// to each other worker, which delivers to its local members. Posts from one
// thread run in order, so every receiver sees one sender's chats in order.
// With --threads 1 everything, signals and stats included, runs on the main
// thread: no post, no lock on any per-message path.
//
// Memory, the way a competent Asio user keeps it for many mostly idle
// connections: a session waits for readability (async_wait) instead of
// parking a read buffer in an async_read_some, then reads with a
// non-blocking read_some into its worker's one 64 KiB buffer; only a packet
// split across reads is kept per session. Output is one contiguous buffer
// per session that replies are appended to (two, swapped: one being
// written, one filling); a broadcast is one pooled buffer that every
// member's write gathers (or, --broadcast copy, is copied into each output).
// Operation memory is recycled per worker (asio_handler_memory.h), so
// steady state allocates nothing.
#ifndef SERVERCORE_BENCH_PEERS_ASIO_PEER_H_
#define SERVERCORE_BENCH_PEERS_ASIO_PEER_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#pragma GCC diagnostic pop

namespace asio_peer {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// How a room broadcast reaches its members' output. Both allocate nothing
// per message. In the runner's chat scenarios (S3, S4, S4s; four
// interleaved runs) kShared took as much or up to 7% less server CPU per
// message than kCopy in 9 of 11 comparisons, within this machine's ~10%
// noise: about equal, kShared slightly ahead, hence the default.
enum class Broadcast {
  // One immutable buffer shared by every receiver (reference counted, from
  // the worker's pool), the members' writes gathering it with their own
  // replies: one iovec per packet, no copy per receiver.
  kShared,
  // Copied into each member's contiguous output buffer: one memcpy per
  // receiver, and a write stays one buffer however many packets it carries.
  kCopy,
};

struct Config {
  std::string host = "0.0.0.0";
  int port = 7777;
  int threads = 0;  // 0: one per core
  size_t max_packet = 4096;
  size_t max_pending = 4 * 1024 * 1024;
  uint64_t max_sessions = 100'000;
  double stats_interval = 5;
  Broadcast broadcast = Broadcast::kShared;
};

enum class CloseReason { kPeer, kReset, kSlow, kProtocol, kStopped };
inline constexpr size_t kCloseReasons = 5;

// Written by one thread only (its worker), read by any (the stats line):
// a relaxed load and store, no locked instruction on the per-message path.
class Counter {
 public:
  void Add(uint64_t n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n,
                 std::memory_order_relaxed);
  }
  uint64_t Get() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> value_{0};
};

// One worker's counters. "writes" counts the writes of a whole output side;
// "write_somes" counts the async_write_some operations (sendmsg calls, short
// of EAGAIN retries) they took.
struct Counters {
  Counter accepted;
  Counter rejected;  // over --max-sessions
  Counter packets_in;
  Counter packets_out;
  Counter bytes_in;
  Counter bytes_out;
  Counter recvs;
  Counter writes;
  Counter write_somes;
  Counter buffers_written;
  Counter partial_writes;  // writes that needed more than one write_some
  std::array<Counter, kCloseReasons> closed;
};

// A plain copy of the counters summed over every worker.
struct Totals {
  uint64_t accepted = 0, rejected = 0, packets_in = 0, packets_out = 0,
           bytes_in = 0, bytes_out = 0, recvs = 0, writes = 0, write_somes = 0,
           buffers_written = 0, partial_writes = 0;
  std::array<uint64_t, kCloseReasons> closed{};
  uint64_t Closed() const noexcept {
    uint64_t sum = 0;
    for (uint64_t c : closed) sum += c;
    return sum;
  }
  uint64_t ClosedBy(CloseReason r) const noexcept {
    return closed[static_cast<size_t>(r)];
  }
};

}  // namespace asio_peer

#endif  // SERVERCORE_BENCH_PEERS_ASIO_PEER_H_
