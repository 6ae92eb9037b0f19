#include "stats_printer.h"

#include <cstdio>

namespace game {
namespace {

using servercore::DisconnectReason;

double PerSecond(uint64_t now, uint64_t before, double seconds) {
  return seconds > 0 ? static_cast<double>(now - before) / seconds : 0.0;
}

}  // namespace

StatsPrinter::StatsPrinter(const servercore::Service& service,
                           const RoomManager& rooms)
    : service_(service),
      rooms_(rooms),
      start_(std::chrono::steady_clock::now()),
      last_time_(start_),
      last_(service.GetStats()) {}

void StatsPrinter::Print() {
  const auto now = std::chrono::steady_clock::now();
  const servercore::NetStats stats = service_.GetStats();
  const double seconds =
      std::chrono::duration<double>(now - last_time_).count();
  const uint64_t writes = stats.write_syscalls - last_.write_syscalls;
  const uint64_t iovecs = stats.iovecs_written - last_.iovecs_written;
  std::printf(
      "[stats] sessions %llu rooms %llu | in %.0f pkt/s out %.0f pkt/s "
      "%.2f MB/s | writes %.0f/s %.1f iov/write | chunks %llu in use %llu "
      "pooled %.1f MiB pinned | memory %.1f/%.0f MiB%s budget-kicks %llu | "
      "kicks %llu protocol-errors %llu timeouts %llu\n",
      static_cast<unsigned long long>(stats.sessions_open),
      static_cast<unsigned long long>(rooms_.RoomCount()),
      PerSecond(stats.packets_in, last_.packets_in, seconds),
      PerSecond(stats.packets_out, last_.packets_out, seconds),
      PerSecond(stats.bytes_out, last_.bytes_out, seconds) / 1e6,
      PerSecond(stats.write_syscalls, last_.write_syscalls, seconds),
      writes > 0 ? static_cast<double>(iovecs) / static_cast<double>(writes)
                 : 0.0,
      static_cast<unsigned long long>(stats.send_buffers.chunks_in_use),
      static_cast<unsigned long long>(stats.send_buffers.chunks_pooled),
      static_cast<double>(stats.send_buffers.bytes_pinned) / (1 << 20),
      static_cast<double>(stats.memory_used) / (1 << 20),
      static_cast<double>(stats.memory_budget) / (1 << 20),
      stats.accept_paused ? " OVERLOAD (not accepting)" : "",
      static_cast<unsigned long long>(stats.budget_kicks),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kSlowReceiver)),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kProtocolError)),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kIdleTimeout) +
          stats.closed(DisconnectReason::kPacketTimeout)));
  std::fflush(stdout);
  last_ = stats;
  last_time_ = now;
}

void StatsPrinter::PrintSummary() const {
  const servercore::NetStats stats = service_.GetStats();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  std::printf(
      "[summary] %.1f s | accepted %llu closed %llu (peer %llu, reset %llu, "
      "slow %llu, protocol %llu, idle %llu, half-sent %llu, stopped %llu) | "
      "memory budget: %llu kicks, accepting paused %llu times | "
      "packets in %llu out %llu | "
      "bytes in %llu out %llu | writes %llu, %.1f iov/write, %llu partial | "
      "recvs %llu\n",
      seconds, static_cast<unsigned long long>(stats.sessions_accepted),
      static_cast<unsigned long long>(stats.sessions_closed()),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kPeerClosed)),
      static_cast<unsigned long long>(stats.closed(DisconnectReason::kReset)),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kSlowReceiver)),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kProtocolError)),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kIdleTimeout)),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kPacketTimeout)),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kServiceStopped)),
      static_cast<unsigned long long>(stats.budget_kicks),
      static_cast<unsigned long long>(stats.budget_accept_pauses),
      static_cast<unsigned long long>(stats.packets_in),
      static_cast<unsigned long long>(stats.packets_out),
      static_cast<unsigned long long>(stats.bytes_in),
      static_cast<unsigned long long>(stats.bytes_out),
      static_cast<unsigned long long>(stats.write_syscalls),
      stats.IovecsPerWrite(),
      static_cast<unsigned long long>(stats.partial_writes),
      static_cast<unsigned long long>(stats.recv_syscalls));
  std::fflush(stdout);
}

}  // namespace game
