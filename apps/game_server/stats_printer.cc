#include "stats_printer.h"

#include <cstdio>
#include <string>

namespace game {
namespace {

using servercore::DisconnectReason;

double PerSecond(uint64_t now, uint64_t before, double seconds) {
  return seconds > 0 ? static_cast<double>(now - before) / seconds : 0.0;
}

}  // namespace

StatsPrinter::StatsPrinter(const servercore::Service& service,
                           const RoomDirectory& rooms,
                           const ClusterLink* cluster)
    : service_(service),
      rooms_(rooms),
      start_(std::chrono::steady_clock::now()),
      last_time_(start_),
      last_(service.GetStats()),
      last_world_(Read(rooms.stats())),
      cluster_(cluster) {
  if (cluster_ != nullptr) last_cluster_ = cluster_->GetStats();
}

void StatsPrinter::PrintCluster(double seconds) {
  if (cluster_ == nullptr) return;
  const ClusterStats now = cluster_->GetStats();
  std::string rooms;
  for (const auto& [room, count] : cluster_->RemoteRooms(4)) {
    rooms += " room " + std::to_string(room) + ": " + std::to_string(count);
  }
  std::printf(
      "[cluster] node %u %s | broker in %.0f msg/s out %.0f msg/s | "
      "dropped %llu (in %llu) | reconnects %llu | nodes %llu | remote "
      "members %llu%s%s\n",
      unsigned{cluster_->node_id()},
      now.connected ? "connected" : "DISCONNECTED",
      PerSecond(now.msgs_in, last_cluster_.msgs_in, seconds),
      PerSecond(now.msgs_out, last_cluster_.msgs_out, seconds),
      static_cast<unsigned long long>(now.dropped),
      static_cast<unsigned long long>(now.dropped_in),
      static_cast<unsigned long long>(now.reconnects),
      static_cast<unsigned long long>(now.nodes),
      static_cast<unsigned long long>(now.remote_members),
      rooms.empty() ? "" : " |", rooms.c_str());
  last_cluster_ = now;
}

void StatsPrinter::PrintClusterSummary() const {
  if (cluster_ == nullptr) return;
  const ClusterStats all = cluster_->GetStats();
  std::printf(
      "[cluster summary] node %u | broker msgs in %llu out %llu | dropped "
      "%llu (in %llu) | reconnects %llu\n",
      unsigned{cluster_->node_id()},
      static_cast<unsigned long long>(all.msgs_in),
      static_cast<unsigned long long>(all.msgs_out),
      static_cast<unsigned long long>(all.dropped),
      static_cast<unsigned long long>(all.dropped_in),
      static_cast<unsigned long long>(all.reconnects));
}

StatsPrinter::WorldCounts StatsPrinter::Read(const WorldStats& stats) {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  return WorldCounts{.ticks = stats.ticks.load(kRelaxed),
                     .snapshots = stats.snapshots.load(kRelaxed),
                     .full_snapshots = stats.full_snapshots.load(kRelaxed),
                     .snapshot_bytes = stats.snapshot_bytes.load(kRelaxed),
                     .entity_updates = stats.entity_updates.load(kRelaxed),
                     .lateness = stats.tick_lateness.Read()};
}

void StatsPrinter::PrintWorld(double seconds) {
  const WorldCounts now = Read(rooms_.stats());
  if (now.snapshots == 0 &&
      rooms_.stats().members.load(std::memory_order_relaxed) == 0) {
    return;  // no world yet: echo and chat alone
  }
  const LatenessHistogram::Counts late =
      now.lateness.Since(last_world_.lateness);
  std::printf(
      "[world] members %lld | ticks %.0f/s | snapshots %.0f/s (%.0f full) "
      "%.2f MB/s | entity updates %.0f/s | tick late p50 %.1f p99 %.1f ms\n",
      static_cast<long long>(
          rooms_.stats().members.load(std::memory_order_relaxed)),
      PerSecond(now.ticks, last_world_.ticks, seconds),
      PerSecond(now.snapshots, last_world_.snapshots, seconds),
      PerSecond(now.full_snapshots, last_world_.full_snapshots, seconds),
      PerSecond(now.snapshot_bytes, last_world_.snapshot_bytes, seconds) / 1e6,
      PerSecond(now.entity_updates, last_world_.entity_updates, seconds),
      static_cast<double>(late.QuantileUs(0.5)) / 1e3,
      static_cast<double>(late.QuantileUs(0.99)) / 1e3);
  last_world_ = now;
}

void StatsPrinter::PrintWorldSummary() const {
  const WorldCounts all = Read(rooms_.stats());
  if (all.snapshots == 0) return;
  std::printf(
      "[world summary] ticks %llu | snapshots %llu (%llu full), %llu bytes | "
      "entity updates %llu | tick late p50 %.1f p99 %.1f max %.1f ms\n",
      static_cast<unsigned long long>(all.ticks),
      static_cast<unsigned long long>(all.snapshots),
      static_cast<unsigned long long>(all.full_snapshots),
      static_cast<unsigned long long>(all.snapshot_bytes),
      static_cast<unsigned long long>(all.entity_updates),
      static_cast<double>(all.lateness.QuantileUs(0.5)) / 1e3,
      static_cast<double>(all.lateness.QuantileUs(0.99)) / 1e3,
      static_cast<double>(all.lateness.max_us) / 1e3);
}

void StatsPrinter::Print() {
  const auto now = std::chrono::steady_clock::now();
  const servercore::NetStats stats = service_.GetStats();
  const double seconds =
      std::chrono::duration<double>(now - last_time_).count();
  const uint64_t writes = stats.write_syscalls - last_.write_syscalls;
  const uint64_t iovecs = stats.iovecs_written - last_.iovecs_written;
  std::printf(
      "[stats] sessions %llu rooms %llu jobs %llu joins %llu | in %.0f pkt/s "
      "out %.0f "
      "pkt/s "
      "%.2f MB/s | writes %.0f/s %.1f iov/write | chunks %llu in use %llu "
      "pooled %.1f MiB pinned | memory %.1f/%.0f MiB (receive %.1f)%s "
      "budget-kicks %llu | "
      "kicks %llu protocol-errors %llu timeouts %llu\n",
      static_cast<unsigned long long>(stats.sessions_open),
      static_cast<unsigned long long>(rooms_.RoomCount()),
      static_cast<unsigned long long>(rooms_.work().jobs()),
      static_cast<unsigned long long>(rooms_.work().joins()),
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
      static_cast<double>(stats.memory_receive) / (1 << 20),
      stats.accept_paused ? " OVERLOAD (not accepting)" : "",
      static_cast<unsigned long long>(stats.budget_kicks),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kSlowReceiver)),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kProtocolError)),
      static_cast<unsigned long long>(
          stats.closed(DisconnectReason::kIdleTimeout) +
          stats.closed(DisconnectReason::kPacketTimeout)));
  PrintWorld(seconds);
  PrintCluster(seconds);
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
      "slow %llu, protocol %llu, idle %llu, half-sent %llu, budget %llu, "
      "stopped %llu) | "
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
          stats.closed(DisconnectReason::kMemoryBudget)),
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
  PrintWorldSummary();
  PrintClusterSummary();
  std::fflush(stdout);
}

}  // namespace game
