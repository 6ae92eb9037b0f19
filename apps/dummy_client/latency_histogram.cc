#include "latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace game {

size_t LatencyHistogram::BucketOf(uint64_t value) noexcept {
  // Values below kSub map one to one; above, the top kSubBits+1 bits choose.
  if (value < kSub) return static_cast<size_t>(value);
  const int msb = 63 - std::countl_zero(value);  // >= kSubBits
  const int shift = msb - kSubBits;              // >= 0
  const auto sub = static_cast<size_t>((value >> shift) & (kSub - 1));
  return static_cast<size_t>(shift + 1) * kSub + sub;
}

uint64_t LatencyHistogram::UpperEdge(size_t bucket) noexcept {
  if (bucket < kSub) return bucket;
  const size_t shift = bucket / kSub - 1;
  const uint64_t sub = bucket % kSub;
  const uint64_t base = (uint64_t{kSub} + sub) << shift;
  return base + ((uint64_t{1} << shift) - 1);
}

void LatencyHistogram::Record(uint64_t nanoseconds) noexcept {
  counts_[BucketOf(nanoseconds)].fetch_add(1, std::memory_order_relaxed);
  uint64_t seen = max_.load(std::memory_order_relaxed);
  while (nanoseconds > seen &&
         !max_.compare_exchange_weak(seen, nanoseconds,
                                     std::memory_order_relaxed)) {
  }
}

void LatencyHistogram::Reset() noexcept {
  for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
  max_.store(0, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::Count() const noexcept {
  uint64_t total = 0;
  for (const auto& c : counts_) total += c.load(std::memory_order_relaxed);
  return total;
}

uint64_t LatencyHistogram::Quantile(double q) const noexcept {
  const uint64_t total = Count();
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(
      std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(total)));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i].load(std::memory_order_relaxed);
    if (seen >= std::max<uint64_t>(rank, 1))
      return std::min(UpperEdge(i), Max());
  }
  return Max();
}

}  // namespace game
