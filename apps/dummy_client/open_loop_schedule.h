// OpenLoopSchedule: when each sender of an open-loop run (--rate) sends.
//
// Sender i of n sends its k-th packet (k from 0) at
//
//   start + (i / n + k) * interval,    interval = 1 s / rate
//
// so the n schedules are spread evenly over one interval and the load
// arrives smoothly. (Had every sender started at `start`, the server would
// get a burst of n packets each interval, and latency would measure how fast
// the burst drains rather than the rate asked for.) Latency counts from these
// times, not from when the packet actually left, so a stalled server or
// client cannot hide behind the schedule (no coordinated omission).
//
// Thread safety: immutable after construction.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_OPEN_LOOP_SCHEDULE_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_OPEN_LOOP_SCHEDULE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace game {

class OpenLoopSchedule {
 public:
  OpenLoopSchedule(int64_t start_ns, double rate_per_s, size_t senders)
      : start_ns_(start_ns),
        interval_ns_(1e9 / rate_per_s),
        phase_ns_(interval_ns_ /
                  static_cast<double>(std::max<size_t>(senders, 1))) {}

  // When `sender` sends its packet number `seq`.
  int64_t SendTime(size_t sender, uint64_t seq) const noexcept {
    return Origin(sender) +
           static_cast<int64_t>(static_cast<double>(seq) * interval_ns_);
  }

  // How many packets `sender` should have sent by `now_ns`: the packets
  // 0 .. DueBy - 1 are due.
  uint64_t DueBy(size_t sender, int64_t now_ns) const noexcept {
    const int64_t origin = Origin(sender);
    if (now_ns < origin) return 0;
    return static_cast<uint64_t>(static_cast<double>(now_ns - origin) /
                                 interval_ns_) +
           1;
  }

 private:
  int64_t Origin(size_t sender) const noexcept {
    return start_ns_ +
           static_cast<int64_t>(phase_ns_ * static_cast<double>(sender));
  }

  int64_t start_ns_;
  double interval_ns_;
  double phase_ns_;
};

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_OPEN_LOOP_SCHEDULE_H_
