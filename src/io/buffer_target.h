// BufferTarget: how many of its provided buffers an io_uring worker lets the
// kernel hold.
//
// Every buffer the kernel holds is memory its next reads may write into, and
// a read into memory that has left the cache costs the kernel's copy about
// half again: on 4 KiB echoes (S5), 32 buffers of 64 KiB filled in turn
// (2 MiB, more than a core's 1.25 MiB of L2 on the machines we measure on)
// cost 15% more server CPU per message than 4 of them. So the kernel holds
// only as many as recent rounds needed:
//
//   BufferTarget target(/*least=*/4, /*most=*/32);
//   target.Given();     // a buffer came back from the kernel, used up
//   target.RanDry();    // a receive found none (-ENOBUFS)
//   target.EndRound();  // once per batch of completions: adjusts value(),
//                       // and says whether the kernel ran dry in it
//
// The target doubles (up to `most`) after a round in which the kernel ran
// dry, and halves (down to `least`) after kRoundsToShrink rounds in none of
// which a quarter of it came back, and back to `least` when the worker has
// gone quiet (Reset).
//
// Thread safety: none; one worker owns it.
#ifndef SERVERCORE_SRC_IO_BUFFER_TARGET_H_
#define SERVERCORE_SRC_IO_BUFFER_TARGET_H_

#include <algorithm>

namespace servercore::internal {

class BufferTarget {
 public:
  static constexpr unsigned kRoundsToShrink = 4096;

  // 1 <= least <= most.
  BufferTarget(unsigned least, unsigned most)
      : least_(least), most_(most), value_(least) {}

  unsigned value() const noexcept { return value_; }

  void Given() noexcept { ++given_this_round_; }
  // Back to `least`, as at the start (the worker has gone quiet).
  void Reset() noexcept {
    value_ = least_;
    given_this_round_ = 0;
    ran_dry_ = false;
    StartLooking();
  }
  void RanDry() noexcept { ran_dry_ = true; }

  bool EndRound() noexcept {
    peak_given_ = std::max(peak_given_, given_this_round_);
    given_this_round_ = 0;
    if (ran_dry_) {
      ran_dry_ = false;
      value_ = std::min(most_, value_ * 2);
      StartLooking();
      return true;
    }
    if (++rounds_ == kRoundsToShrink) {
      if (peak_given_ * 4 <= value_) value_ = std::max(least_, value_ / 2);
      StartLooking();
    }
    return false;
  }

 private:
  void StartLooking() noexcept {
    rounds_ = 0;
    peak_given_ = 0;
  }

  unsigned least_;
  unsigned most_;
  unsigned value_;
  unsigned rounds_ = 0;  // since the last change or look
  unsigned given_this_round_ = 0;
  unsigned peak_given_ = 0;  // most given back in one of those rounds
  bool ran_dry_ = false;
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_IO_BUFFER_TARGET_H_
