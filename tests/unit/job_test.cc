// Job: where a callable is stored, moves, and that every callable is
// destroyed exactly once.
#include "servercore/job.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace servercore {
namespace {

// Counts live instances and calls; `Pad` bytes of padding pick inline or
// heap storage.
struct Counts {
  int constructed = 0;
  int destroyed = 0;
  int calls = 0;
};

template <size_t Pad>
struct Counted {
  explicit Counted(Counts* c) : counts(c) { ++counts->constructed; }
  Counted(Counted&& other) noexcept : counts(other.counts) {
    ++counts->constructed;
  }
  Counted(const Counted& other) : counts(other.counts) {
    ++counts->constructed;
  }
  ~Counted() { ++counts->destroyed; }
  void operator()() { ++counts->calls; }

  Counts* counts;
  std::array<char, Pad> pad{};
};

using Small = Counted<8>;
using Big = Counted<200>;

// A callable that fits but may throw when moved: stored on the heap, so
// moving a Job never throws.
struct ThrowingMove {
  ThrowingMove() = default;
  ThrowingMove(ThrowingMove&&) noexcept(false) {}
  void operator()() {}
};

TEST(JobTest, SmallCallablesAreInlineBigOnesOnTheHeap) {
  static_assert(Job::kFitsInline<Small>);
  static_assert(!Job::kFitsInline<Big>);
  static_assert(!Job::kFitsInline<ThrowingMove>);
  static_assert(sizeof(Job) <=
                Job::kInlineSize + 2 * alignof(std::max_align_t));
  Counts counts;
  Job small{Small(&counts)};
  Job big{Big(&counts)};
  Job throwing{ThrowingMove()};
  EXPECT_TRUE(small.stored_inline());
  EXPECT_FALSE(big.stored_inline());
  EXPECT_FALSE(throwing.stored_inline());
  EXPECT_FALSE(Job().stored_inline());
  EXPECT_FALSE(static_cast<bool>(Job()));
  // A lambda capturing 64 bytes still fits.
  std::array<char, 56> bytes{};
  int sum = 0;
  Job lambda([bytes, &sum] { sum += bytes[0] + 1; });
  EXPECT_TRUE(lambda.stored_inline());
  lambda();
  EXPECT_EQ(sum, 1);
}

TEST(JobTest, RunsAndDestroysExactlyOnceInline) {
  Counts counts;
  {
    Job job{Small(&counts)};
    job();
    job();
    EXPECT_EQ(counts.calls, 2);
  }
  EXPECT_EQ(counts.constructed, counts.destroyed);
  EXPECT_GT(counts.constructed, 0);
}

TEST(JobTest, RunsAndDestroysExactlyOnceOnTheHeap) {
  Counts counts;
  {
    Job job{Big(&counts)};
    job();
    EXPECT_EQ(counts.calls, 1);
  }
  EXPECT_EQ(counts.constructed, counts.destroyed);
}

template <typename F>
void CheckMoves() {
  Counts counts;
  {
    Job a{F(&counts)};
    const int made = counts.constructed;
    Job b(std::move(a));
    EXPECT_FALSE(static_cast<bool>(a));  // NOLINT(bugprone-use-after-move)
    ASSERT_TRUE(static_cast<bool>(b));
    b();
    EXPECT_EQ(counts.calls, 1);
    // Moving a heap job moves a pointer: no new callable.
    if (!Job::kFitsInline<F>) {
      EXPECT_EQ(counts.constructed, made);
    }
    EXPECT_EQ(counts.constructed - counts.destroyed, 1) << "one live callable";

    Job c{F(&counts)};
    c = std::move(b);  // c's own callable is destroyed
    EXPECT_EQ(counts.constructed - counts.destroyed, 1);
    c();
    EXPECT_EQ(counts.calls, 2);
    c = Job();
    EXPECT_EQ(counts.constructed, counts.destroyed);

    Job d{F(&counts)};
    d.Reset();
    EXPECT_FALSE(static_cast<bool>(d));
    EXPECT_EQ(counts.constructed, counts.destroyed);

    // Moves through a growing vector keep one live callable per job.
    std::vector<Job> jobs;
    for (int i = 0; i < 100; ++i) jobs.emplace_back(F(&counts));
    EXPECT_EQ(counts.constructed - counts.destroyed, 100);
    for (Job& job : jobs) job();
    EXPECT_EQ(counts.calls, 102);
  }
  EXPECT_EQ(counts.constructed, counts.destroyed);
}

TEST(JobTest, MovesInline) { CheckMoves<Small>(); }
TEST(JobTest, MovesOnTheHeap) { CheckMoves<Big>(); }

TEST(JobTest, HoldsMoveOnlyCaptures) {
  auto value = std::make_unique<int>(41);
  int seen = 0;
  Job job([value = std::move(value), &seen] { seen = ++*value; });
  EXPECT_TRUE(job.stored_inline());
  Job moved(std::move(job));
  moved();
  EXPECT_EQ(seen, 42);

  // A move-only capture too big for inline storage.
  std::array<std::unique_ptr<int>, 20> many;
  for (auto& p : many) p = std::make_unique<int>(1);
  Job big([many = std::move(many), &seen] {
    seen = 0;
    for (const auto& p : many) seen += *p;
  });
  EXPECT_FALSE(big.stored_inline());
  Job big_moved(std::move(big));
  big_moved();
  EXPECT_EQ(seen, 20);
}

TEST(JobTest, SelfMoveAssignmentKeepsTheCallable) {
  Counts counts;
  {
    Job job{Small(&counts)};
    Job& same = job;
    job = std::move(same);
    job();
    EXPECT_EQ(counts.calls, 1);
  }
  EXPECT_EQ(counts.constructed, counts.destroyed);
}

}  // namespace
}  // namespace servercore
