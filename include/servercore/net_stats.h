// NetStats: a Service's counters, read at any time without stopping the
// workers (each counter is exact; the set is not one instant's snapshot).
#ifndef SERVERCORE_NET_STATS_H_
#define SERVERCORE_NET_STATS_H_

#include <array>
#include <cstdint>

#include "servercore/disconnect_reason.h"
#include "servercore/send_buffer_manager.h"

namespace servercore {

struct NetStats {
  uint64_t sessions_open = 0;
  uint64_t sessions_accepted = 0;   // server side
  uint64_t sessions_connected = 0;  // client side
  uint64_t sessions_rejected = 0;   // accepted past max_sessions and closed
  uint64_t accept_errors = 0;       // EMFILE/ENFILE and the like (backed off)
  std::array<uint64_t, kDisconnectReasonCount> closed_by_reason{};

  uint64_t packets_in = 0;   // whole packets (PacketSession)
  uint64_t packets_out = 0;  // send buffers fully written
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t recv_syscalls = 0;   // reads / recv completions with data or EOF
                                // (io_uring: a read cut over provided buffers,
                                // in several completions, counts once)
  uint64_t write_syscalls = 0;  // gather writes completed
  uint64_t iovecs_written = 0;  // iovecs those writes carried
  uint64_t partial_writes = 0;  // writes that took less than offered
  // io_uring: receives that found the provided-buffer ring empty and were
  // armed again (the worker's buffers were all in use at once).
  uint64_t recv_buffer_waits = 0;

  // ServiceOptions::max_memory: bytes counted against it now, and overload.
  uint64_t memory_used = 0;
  uint64_t memory_receive = 0;  // of memory_used: receive tails (messages
                                // begun and not yet whole)
  uint64_t memory_budget = 0;
  bool accept_paused = false;         // past 90% of the budget, not below 80%
  uint64_t budget_accept_pauses = 0;  // times accepting paused for it
  uint64_t budget_kicks = 0;  // sessions cut to stay within it (also counted
                              // as kSlowReceiver)

  // The process-wide chunk pool; bytes_pinned includes the chunks that queued
  // output of slow or stalled sessions keeps alive.
  SendBufferManager::Stats send_buffers;

  uint64_t sessions_closed() const noexcept {
    uint64_t total = 0;
    for (uint64_t n : closed_by_reason) total += n;
    return total;
  }
  uint64_t closed(DisconnectReason reason) const noexcept {
    return closed_by_reason[static_cast<size_t>(reason)];
  }
  double IovecsPerWrite() const noexcept {
    return write_syscalls == 0 ? 0.0
                               : static_cast<double>(iovecs_written) /
                                     static_cast<double>(write_syscalls);
  }
};

}  // namespace servercore

#endif  // SERVERCORE_NET_STATS_H_
