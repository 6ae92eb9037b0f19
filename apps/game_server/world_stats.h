// WorldStats: what the rooms' worlds did, for GameServer's stats line and
// summary: ticks that sent something, snapshot packets and bytes queued, entity
// updates delivered (entities times receivers), world members now, and how
// late each room's tick job ran after its due time.
//
// Thread safety: every member may be used from any thread (relaxed atomics:
// counters, not synchronization).
#ifndef SERVERCORE_APPS_GAME_SERVER_WORLD_STATS_H_
#define SERVERCORE_APPS_GAME_SERVER_WORLD_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>

namespace game {

// Tick lateness in 100 µs buckets up to 100 ms, then one overflow bucket.
class LatenessHistogram {
 public:
  static constexpr int64_t kBucketUs = 100;
  static constexpr size_t kBuckets = 1001;

  struct Counts {
    std::array<uint64_t, kBuckets> buckets{};
    int64_t max_us = 0;
    uint64_t Total() const noexcept;
    // The upper bound of the bucket holding quantile q (0..1), in µs;
    // 0 when empty. Past the last bucket: the maximum seen.
    int64_t QuantileUs(double q) const noexcept;
    Counts Since(const Counts& earlier) const noexcept;
  };

  void Record(int64_t late_us) noexcept;
  Counts Read() const noexcept;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<int64_t> max_us_{0};
};

struct WorldStats {
  std::atomic<uint64_t> ticks{0};           // ticks that sent a snapshot
  std::atomic<uint64_t> snapshots{0};       // S_SNAPSHOT packets queued
  std::atomic<uint64_t> full_snapshots{0};  // of which full
  std::atomic<uint64_t> snapshot_bytes{0};  // their bytes, per receiver
  std::atomic<uint64_t> entity_updates{0};  // entities, per receiver
  std::atomic<int64_t> members{0};          // world members now
  LatenessHistogram tick_lateness;
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_WORLD_STATS_H_
