// WorkerCounters: the statistics one worker keeps. Each counter has a single
// writer (its worker thread), so an increment is a relaxed load and store
// with no locked instruction; any thread may read them at any time.
#ifndef SERVERCORE_SRC_IO_WORKER_COUNTERS_H_
#define SERVERCORE_SRC_IO_WORKER_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "servercore/disconnect_reason.h"

namespace servercore::internal {

class Counter {
 public:
  // Owner thread only.
  void Add(uint64_t n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n,
                 std::memory_order_relaxed);
  }
  // Any thread.
  uint64_t Get() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> value_{0};
};

struct WorkerCounters {
  Counter accepted;
  Counter connected;
  Counter accept_errors;
  std::array<Counter, kDisconnectReasonCount> closed_by_reason;
  Counter packets_in;
  Counter packets_out;
  Counter bytes_in;
  Counter bytes_out;
  Counter recv_syscalls;
  Counter write_syscalls;
  Counter iovecs_written;
  Counter partial_writes;
  Counter recv_buffer_waits;
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_IO_WORKER_COUNTERS_H_
