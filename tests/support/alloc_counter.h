// Counts heap allocations in the whole process: linking alloc_counter.cc
// replaces the global operator new (every form) with one that counts, then
// allocates as usual. Used by the zero-allocation tests and the benchmarks'
// allocs/msg column. It lives in its own translation unit so no caller can
// inline the replaced operators (gcc then mis-pairs new and free).
#ifndef SERVERCORE_TESTS_SUPPORT_ALLOC_COUNTER_H_
#define SERVERCORE_TESTS_SUPPORT_ALLOC_COUNTER_H_

#include <cstdint>

namespace servercore::test {

// Allocations through operator new since the program started, all threads.
uint64_t AllocationCount() noexcept;

}  // namespace servercore::test

#endif  // SERVERCORE_TESTS_SUPPORT_ALLOC_COUNTER_H_
