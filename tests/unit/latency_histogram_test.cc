#include "apps/dummy_client/latency_histogram.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

namespace game {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.Count(), 0u);
  EXPECT_EQ(h.Quantile(0.5), 0u);
  EXPECT_EQ(h.Max(), 0u);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 0; v < 32; ++v) h.Record(v);
  EXPECT_EQ(h.Quantile(0.0), 0u);
  EXPECT_EQ(h.Quantile(1.0), 31u);
  EXPECT_EQ(h.Max(), 31u);
}

TEST(LatencyHistogramTest, BucketsCoverEveryValueWithin1Over32) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t v = rng() >> (rng() % 64);
    const size_t bucket = LatencyHistogram::BucketOf(v);
    const uint64_t upper = LatencyHistogram::UpperEdge(bucket);
    ASSERT_GE(upper, v);
    ASSERT_LE(static_cast<double>(upper - v), static_cast<double>(v) / 32 + 1)
        << v;
  }
  EXPECT_EQ(LatencyHistogram::UpperEdge(LatencyHistogram::BucketOf(~0ull)),
            ~0ull);
}

TEST(LatencyHistogramTest, QuantilesOfAUniformSpread) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100000; ++v) h.Record(v * 1000);  // 1 us..100 ms
  EXPECT_EQ(h.Count(), 100000u);
  EXPECT_NEAR(static_cast<double>(h.Quantile(0.5)), 50e6, 50e6 / 32);
  EXPECT_NEAR(static_cast<double>(h.Quantile(0.99)), 99e6, 99e6 / 32);
  EXPECT_NEAR(static_cast<double>(h.Quantile(0.999)), 99.9e6, 99.9e6 / 32);
  EXPECT_EQ(h.Max(), 100000u * 1000);
  EXPECT_LE(h.Quantile(1.0), h.Max());
}

TEST(LatencyHistogramTest, ResetForgetsEverything) {
  LatencyHistogram h;
  for (uint64_t v = 1; v < 1000; ++v) h.Record(v * 777);
  h.Reset();
  EXPECT_EQ(h.Count(), 0u);
  EXPECT_EQ(h.Max(), 0u);
  h.Record(5);
  EXPECT_EQ(h.Quantile(0.5), 5u);
}

TEST(LatencyHistogramTest, RecordsFromManyThreads) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (uint64_t i = 0; i < 50000; ++i)
        h.Record(i + static_cast<uint64_t>(t));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.Count(), 200000u);
  EXPECT_EQ(h.Max(), 49999u + 3);
}

}  // namespace
}  // namespace game
