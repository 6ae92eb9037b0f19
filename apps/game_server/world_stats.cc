#include "world_stats.h"

#include <algorithm>
#include <cmath>

namespace game {

uint64_t LatenessHistogram::Counts::Total() const noexcept {
  uint64_t total = 0;
  for (uint64_t n : buckets) total += n;
  return total;
}

int64_t LatenessHistogram::Counts::QuantileUs(double q) const noexcept {
  const uint64_t total = Total();
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(
      std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(total)));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets[i];
    if (seen >= std::max<uint64_t>(rank, 1)) {
      if (i + 1 == kBuckets) return max_us;
      return static_cast<int64_t>(i + 1) * kBucketUs;
    }
  }
  return max_us;
}

LatenessHistogram::Counts LatenessHistogram::Counts::Since(
    const Counts& earlier) const noexcept {
  Counts diff;
  for (size_t i = 0; i < kBuckets; ++i) {
    diff.buckets[i] = buckets[i] - earlier.buckets[i];
  }
  diff.max_us = max_us;
  return diff;
}

void LatenessHistogram::Record(int64_t late_us) noexcept {
  const auto bucket = static_cast<size_t>(
      std::min<int64_t>(std::max<int64_t>(late_us, 0) / kBucketUs,
                        static_cast<int64_t>(kBuckets) - 1));
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  int64_t max = max_us_.load(std::memory_order_relaxed);
  while (late_us > max && !max_us_.compare_exchange_weak(
                              max, late_us, std::memory_order_relaxed)) {
  }
}

LatenessHistogram::Counts LatenessHistogram::Read() const noexcept {
  Counts counts;
  for (size_t i = 0; i < kBuckets; ++i) {
    counts.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  counts.max_us = max_us_.load(std::memory_order_relaxed);
  return counts;
}

}  // namespace game
