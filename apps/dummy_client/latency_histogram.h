// LatencyHistogram: log-linear buckets (as HdrHistogram): each power of two
// of nanoseconds is split into 32 linear sub-buckets, so any recorded value
// is reported within 1/32 (about 3%) of the truth, from 1 ns to hours, in a
// fixed 16 KiB. Recording is one relaxed atomic add, from any thread.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_LATENCY_HISTOGRAM_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_LATENCY_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace game {

class LatencyHistogram {
 public:
  void Record(uint64_t nanoseconds) noexcept;
  // Forgets everything recorded (racing Records may land on either side).
  void Reset() noexcept;
  uint64_t Count() const noexcept;
  uint64_t Max() const noexcept { return max_.load(std::memory_order_relaxed); }
  // The value at quantile q in [0, 1] (the upper edge of its bucket, capped at
  // the maximum seen); 0 when empty.
  uint64_t Quantile(double q) const noexcept;

  // Exposed for tests: the bucket of a value and the upper edge of a bucket.
  static size_t BucketOf(uint64_t value) noexcept;
  static uint64_t UpperEdge(size_t bucket) noexcept;

 private:
  static constexpr int kSubBits = 5;  // 32 sub-buckets per power of two
  static constexpr size_t kSub = size_t{1} << kSubBits;
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSub;

  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> max_{0};
};

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_LATENCY_HISTOGRAM_H_
