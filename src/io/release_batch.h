// ReleaseBatch: a worker's references to written send buffers, given back a
// buffer at a time rather than a reference at a time.
//
// A broadcast's buffer is written to every member of the room, mostly in
// the same round of the members' worker, and each written reference used to
// go with an atomic subtract of its own: a locked instruction per member,
// for a 128-byte chat about as much as the rest of its queue push. The
// worker instead counts the references it is done with in a small table,
// one slot per buffer, and subtracts a buffer's count once: when the batch
// holds all of its references (its last write is done), when another
// buffer wants its slot, or at the end of the round (IoWorker::Round). So
// a buffer's memory goes back when it did without the batch, and a
// reference other holders outlive waits for the round's end at most.
//
//   CompleteWrite:  releases.Add(buffer)   // member 1 .. N: count += 1
//   end of round:   releases.Flush()       // one fetch_sub(N) per buffer
//
// Thread safety: the owning worker's thread only (Distinct objects: Safe.
// Shared objects: Unsafe). Ownership: holds the references it counts until
// it gives them back; the destructor gives back the rest.
#ifndef SERVERCORE_SRC_IO_RELEASE_BATCH_H_
#define SERVERCORE_SRC_IO_RELEASE_BATCH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "servercore/send_buffer.h"

namespace servercore::internal {

class ReleaseBatch {
 public:
  ReleaseBatch() = default;
  ~ReleaseBatch() { Flush(); }
  ReleaseBatch(const ReleaseBatch&) = delete;
  ReleaseBatch& operator=(const ReleaseBatch&) = delete;

  // Takes `buffer`'s reference (leaving it empty), to give back later; or
  // at once, with the others held, when they are all there are: the
  // buffer's last write is done, and its memory (its chunk) goes back as
  // early as it did without the batch.
  void Add(SendBufferRef& buffer) noexcept {
    SendBuffer* taken = std::exchange(buffer.buffer_, nullptr);
    if (taken == nullptr) return;
    Slot& slot = slots_[SlotOf(taken)];
    if (slot.buffer != taken) {
      GiveBack(slot);
      slot.buffer = taken;
    }
    ++slot.count;
    // Nobody else can add a reference to a buffer whose references are all
    // here; another holder's release only makes this look higher, for now.
    if (taken->RefCount() == slot.count) {
      GiveBack(slot);
    } else {
      held_ = true;
    }
  }

  // Gives back every reference held.
  void Flush() noexcept {
    if (!held_) return;
    held_ = false;
    for (Slot& slot : slots_) GiveBack(slot);
  }

 private:
  struct Slot {
    SendBuffer* buffer = nullptr;
    uint32_t count = 0;
  };
  // Enough for a round's distinct buffers in the common case: a room's
  // chats of the round, or a snapshot's parts.
  static constexpr size_t kSlotBits = 6;

  static size_t SlotOf(const SendBuffer* buffer) noexcept {
    // Buffers lie a few dozen bytes apart in a chunk: a multiplicative hash
    // spreads neighbours over the table.
    const auto bits = reinterpret_cast<uintptr_t>(buffer) >> 3;
    return static_cast<size_t>((bits * UINT64_C(0x9E3779B97F4A7C15)) >>
                               (64 - kSlotBits));
  }

  static void GiveBack(Slot& slot) noexcept {
    if (slot.count == 0) return;
    std::exchange(slot.buffer, nullptr)->Release(std::exchange(slot.count, 0));
  }

  std::array<Slot, size_t{1} << kSlotBits> slots_{};
  bool held_ = false;  // some slot may count references
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_IO_RELEASE_BATCH_H_
