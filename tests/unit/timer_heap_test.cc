// TimerHeap: due-time order, insertion order among equal due times, removal
// by id, and a repeating timer's re-arm (exact multiples of its period, the
// missed periods skipped when it fires late).
#include "timer_heap.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <vector>

namespace servercore::internal {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const Clock::time_point kT0 = Clock::time_point(std::chrono::hours(1));

TimerEntry OneShot(TimerId id, milliseconds at, std::vector<TimerId>* log) {
  return TimerEntry{
      .due = kT0 + at, .id = id, .job = Job([id, log] { log->push_back(id); })};
}

// Pops (and runs) every timer due at `now`.
void FireUntil(TimerHeap& heap, Clock::time_point now) {
  while (!heap.empty() && heap.top().due <= now) heap.PopTop().job();
}

TEST(TimerHeapTest, PopsInDueTimeOrder) {
  TimerHeap heap;
  std::vector<TimerId> log;
  const int order[] = {5, 1, 9, 3, 7, 2, 8, 6, 4, 10};
  for (const int ms : order) {
    heap.Push(OneShot(static_cast<TimerId>(ms), milliseconds(ms * 10), &log));
  }
  EXPECT_EQ(heap.size(), 10u);
  EXPECT_EQ(heap.top().due, kT0 + milliseconds(10));
  FireUntil(heap, kT0 + milliseconds(55));
  EXPECT_EQ(log, (std::vector<TimerId>{1, 2, 3, 4, 5}));
  FireUntil(heap, kT0 + milliseconds(1000));
  EXPECT_EQ(log, (std::vector<TimerId>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_TRUE(heap.empty());
}

TEST(TimerHeapTest, EqualDueTimesFireInInsertionOrder) {
  TimerHeap heap;
  std::vector<TimerId> log;
  std::vector<TimerId> expected;
  for (TimerId id = 100; id > 0; --id) {  // ids descending: order is by push
    heap.Push(OneShot(id, milliseconds(id % 2 == 0 ? 20 : 10), &log));
  }
  for (TimerId id = 100; id > 0; --id) {
    if (id % 2 == 1) expected.push_back(id);
  }
  for (TimerId id = 100; id > 0; --id) {
    if (id % 2 == 0) expected.push_back(id);
  }
  FireUntil(heap, kT0 + milliseconds(20));
  EXPECT_EQ(log, expected);
}

TEST(TimerHeapTest, RemoveTakesOutOnlyThatTimer) {
  TimerHeap heap;
  std::vector<TimerId> log;
  for (TimerId id = 1; id <= 20; ++id) {
    heap.Push(OneShot(id, milliseconds(id), &log));
  }
  ASSERT_TRUE(heap.Remove(1).has_value());  // the top
  ASSERT_TRUE(heap.Remove(7).has_value());
  ASSERT_TRUE(heap.Remove(20).has_value());  // the last
  EXPECT_FALSE(heap.Remove(7).has_value());
  EXPECT_FALSE(heap.Remove(99).has_value());
  EXPECT_EQ(heap.size(), 17u);
  FireUntil(heap, kT0 + milliseconds(100));
  std::vector<TimerId> expected;
  for (TimerId id = 2; id < 20; ++id) {
    if (id != 7) expected.push_back(id);
  }
  EXPECT_EQ(log, expected);
}

TEST(TimerHeapTest, RepeatingTimerRearmsAtExactMultiplesOfItsPeriod) {
  TimerHeap heap;
  int fired = 0;
  heap.Push(TimerEntry{.due = kT0 + milliseconds(50),
                       .id = 1,
                       .period = milliseconds(50),
                       .repeat = std::make_shared<Job>([&fired] { ++fired; })});
  // Each firing a little late (3 ms): the next due time does not move.
  for (int k = 1; k <= 100; ++k) {
    ASSERT_EQ(heap.top().due, kT0 + milliseconds(50) * k);
    const Clock::time_point now = heap.top().due + milliseconds(3);
    (*heap.top().repeat)();
    heap.RearmTop(now);
  }
  EXPECT_EQ(fired, 100);
  EXPECT_EQ(heap.top().due, kT0 + milliseconds(50) * 101);
}

TEST(TimerHeapTest, RepeatingTimerSkipsMissedPeriods) {
  TimerHeap heap;
  heap.Push(TimerEntry{.due = kT0 + milliseconds(50),
                       .id = 1,
                       .period = milliseconds(50),
                       .repeat = std::make_shared<Job>([] {})});
  // Fired 3.5 periods late: the next due time is the first multiple after
  // now (250 ms), not 100, 150 and 200 in a burst.
  heap.RearmTop(kT0 + milliseconds(225));
  EXPECT_EQ(heap.top().due, kT0 + milliseconds(250));
  // Exactly on a multiple: that one is past too.
  heap.RearmTop(kT0 + milliseconds(400));
  EXPECT_EQ(heap.top().due, kT0 + milliseconds(450));
  // Less than a period late: simply the next one.
  heap.RearmTop(kT0 + milliseconds(460));
  EXPECT_EQ(heap.top().due, kT0 + milliseconds(500));
}

TEST(TimerHeapTest, RearmedTimerGoesBehindOthersDueAtTheSameTime) {
  TimerHeap heap;
  std::vector<TimerId> log;
  heap.Push(TimerEntry{
      .due = kT0 + milliseconds(10),
      .id = 1,
      .period = milliseconds(10),
      .repeat = std::make_shared<Job>([&log] { log.push_back(1); })});
  heap.Push(OneShot(2, milliseconds(20), &log));
  heap.RearmTop(kT0 + milliseconds(10));  // due 20, pushed after timer 2
  EXPECT_EQ(heap.top().id, 2u);
}

TEST(TimerHeapTest, TakeAllEmptiesTheHeap) {
  TimerHeap heap;
  std::vector<TimerId> log;
  for (TimerId id = 1; id <= 5; ++id) {
    heap.Push(OneShot(id, milliseconds(1), &log));
  }
  std::vector<TimerEntry> out;
  heap.TakeAll(out);
  EXPECT_EQ(out.size(), 5u);
  EXPECT_TRUE(heap.empty());
  EXPECT_TRUE(log.empty());
}

}  // namespace
}  // namespace servercore::internal
