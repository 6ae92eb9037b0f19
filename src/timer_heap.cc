#include "timer_heap.h"

#include <utility>

#include "servercore/check.h"

namespace servercore::internal {

void TimerHeap::Push(TimerEntry entry) {
  entry.seq = next_seq_++;
  entries_.push_back(std::move(entry));
  SiftUp(entries_.size() - 1);
}

TimerEntry TimerHeap::PopTop() { return RemoveAt(0); }

void TimerHeap::RearmTop(std::chrono::steady_clock::time_point now) {
  TimerEntry& top = entries_.front();
  SERVERCORE_CHECK(top.period.count() > 0, "re-arming a one-shot timer");
  top.due += top.period;
  if (top.due <= now) {
    // A period or more behind: skip to the first due time after now.
    top.due += top.period * ((now - top.due) / top.period + 1);
  }
  top.seq = next_seq_++;
  SiftDown(0);
}

std::optional<TimerEntry> TimerHeap::Remove(TimerId id) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].id == id) return RemoveAt(i);
  }
  return std::nullopt;
}

void TimerHeap::TakeAll(std::vector<TimerEntry>& out) {
  for (TimerEntry& entry : entries_) out.push_back(std::move(entry));
  entries_.clear();
}

TimerEntry TimerHeap::RemoveAt(size_t i) {
  TimerEntry removed = std::move(entries_[i]);
  const size_t last = entries_.size() - 1;
  if (i != last) {
    entries_[i] = std::move(entries_[last]);
    entries_.pop_back();
    // The moved entry may belong above or below i.
    SiftUp(i);
    SiftDown(i);
  } else {
    entries_.pop_back();
  }
  return removed;
}

void TimerHeap::SiftUp(size_t i) noexcept {
  while (i > 0) {
    const size_t parent = (i - 1) / 2;
    if (!Before(entries_[i], entries_[parent])) break;
    std::swap(entries_[i], entries_[parent]);
    i = parent;
  }
}

void TimerHeap::SiftDown(size_t i) noexcept {
  const size_t n = entries_.size();
  for (;;) {
    size_t smallest = i;
    const size_t left = 2 * i + 1;
    const size_t right = left + 1;
    if (left < n && Before(entries_[left], entries_[smallest])) smallest = left;
    if (right < n && Before(entries_[right], entries_[smallest])) {
      smallest = right;
    }
    if (smallest == i) break;
    std::swap(entries_[i], entries_[smallest]);
    i = smallest;
  }
}

}  // namespace servercore::internal
