// ChunkPinTracker: the send-buffer chunk memory a session's queued buffers
// keep alive, for its backpressure budget.
//
// A queued SendBuffer pins its whole chunk (SendBufferChunk), not only its
// own bytes: a few small buffers from many chunks can hold far more memory
// than their byte count says. The tracker charges each buffer of a FIFO the
// chunk's whole allocation when that chunk is not among the last kRecent
// distinct chunks it saw, else nothing. The answers depend only on the
// sequence of buffers, so one tracker at a queue's tail (where buffers are
// queued) and one at its head (where they are written) agree, and every
// charge added at the tail comes off at the head exactly.
//
// Thread safety: none; each tracker belongs to one side of one queue.
#ifndef SERVERCORE_SRC_CHUNK_PIN_TRACKER_H_
#define SERVERCORE_SRC_CHUNK_PIN_TRACKER_H_

#include <array>
#include <cstddef>

#include "servercore/send_buffer.h"

namespace servercore::internal {

class ChunkPinTracker {
 public:
  // The charge of the next buffer of the FIFO.
  size_t Charge(const SendBuffer& buffer) noexcept;

 private:
  // One per thread that fills this session's queue, up to 8 (a chunk is
  // per thread): 8 rather than 16 keeps two trackers per session within
  // 144 bytes, a seventh of what an idle session costs in all. A queue
  // filled from more threads in turn is charged more, never less.
  static constexpr size_t kRecent = 8;
  std::array<const SendBufferChunk*, kRecent> recent_{};
  size_t next_ = 0;
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_CHUNK_PIN_TRACKER_H_
