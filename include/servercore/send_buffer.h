// SendBuffer: the bytes of one outgoing packet, built once and shared by every
// session it is sent to (a broadcast queues the same buffer N times, no copy).
//
// A SendBuffer is carved from the calling thread's SendBufferChunk by
// SendBufferManager::Open(alloc_size): the header below and the payload sit
// inside the chunk, so taking one costs no heap allocation. The caller writes
// the packet at Buffer() and commits it with Close(write_size); only then may
// it be sent.
//
//   auto buf = SendBufferManager::Instance().Open(4096);
//   std::memcpy(buf->Buffer(), data, len);
//   buf->Close(len);
//   session->Send(buf);          // or to every session in a room
//
// Lifetime: a SendBuffer lives while any SendBufferRef to it lives. A session
// keeps a SendBufferRef in its send queue, then in its one in-flight write,
// until the kernel has taken the last byte; so the bytes stay valid for the
// whole write whatever the other holders do. Each live SendBuffer holds one
// reference to its chunk, so the chunk outlives all its buffers.
//
// Thread safety: Open, writing into Buffer() and Close happen on one thread
// (the one that opened it). After Close the buffer is immutable and a
// SendBufferRef may be copied, passed and released on any thread (the count is
// atomic). Distinct SendBufferRef objects: Safe. Shared SendBufferRef: Unsafe.
#ifndef SERVERCORE_SEND_BUFFER_H_
#define SERVERCORE_SEND_BUFFER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "servercore/check.h"

namespace servercore {
namespace internal {
class ReleaseBatch;
}  // namespace internal

class SendBufferChunk;
class SendBufferRef;
class SendBufferShares;

class SendBuffer final {
 public:
  SendBuffer(const SendBuffer&) = delete;
  SendBuffer& operator=(const SendBuffer&) = delete;

  // Where the packet is written: AllocSize() bytes, valid until the last
  // reference goes.
  std::byte* Buffer() noexcept {
    return reinterpret_cast<std::byte*>(this + 1);
  }
  const std::byte* Buffer() const noexcept {
    return reinterpret_cast<const std::byte*>(this + 1);
  }
  uint32_t AllocSize() const noexcept { return alloc_size_; }
  // Bytes committed by Close(); 0 before it.
  uint32_t WriteSize() const noexcept { return write_size_; }
  bool IsClosed() const noexcept { return closed_; }
  // The committed bytes, i.e. what a session sends.
  std::span<const std::byte> Data() const noexcept {
    return {Buffer(), write_size_};
  }

  // The chunk holding this buffer, which it keeps alive (for memory
  // accounting: a queued buffer pins its whole chunk).
  const SendBufferChunk* chunk() const noexcept { return owner_; }

  // Commits the first `write_size` bytes and returns the rest of the
  // reservation to the chunk. Must be called once, on the opening thread,
  // before that thread opens another buffer, with write_size <= AllocSize();
  // anything else is a programming error and aborts with a message.
  void Close(uint32_t write_size);

 private:
  friend class SendBufferChunk;
  friend class SendBufferRef;
  friend class SendBufferShares;
  friend class internal::ReleaseBatch;

  SendBuffer(SendBufferChunk* owner, uint32_t alloc_size) noexcept
      : alloc_size_(alloc_size), owner_(owner) {}
  ~SendBuffer() = default;

  void AddRef(uint32_t count = 1) noexcept {
    refs_.fetch_add(count, std::memory_order_relaxed);
  }
  // Gives back `count` references; the last one frees the buffer.
  void Release(uint32_t count = 1) noexcept;
  uint32_t RefCount() const noexcept {
    return refs_.load(std::memory_order_relaxed);
  }

  std::atomic<uint32_t> refs_{1};
  uint32_t alloc_size_;
  uint32_t write_size_ = 0;
  bool closed_ = false;
  SendBufferChunk* owner_;
  // The payload follows the header in the chunk: Buffer() is `this + 1`.
};

// An owning, intrusive, reference-counted pointer to a SendBuffer (the
// design's SendBufferRef). Like std::shared_ptr but with the count inside the
// buffer, so copying one takes no allocation and the buffer needs no control
// block. Moves are free; copies are one relaxed atomic increment.
class SendBufferRef {
 public:
  SendBufferRef() noexcept = default;
  SendBufferRef(std::nullptr_t) noexcept {}  // NOLINT: implicit like shared_ptr
  SendBufferRef(const SendBufferRef& other) noexcept : buffer_(other.buffer_) {
    if (buffer_ != nullptr) buffer_->AddRef();
  }
  SendBufferRef(SendBufferRef&& other) noexcept
      : buffer_(std::exchange(other.buffer_, nullptr)) {}
  SendBufferRef& operator=(SendBufferRef other) noexcept {
    std::swap(buffer_, other.buffer_);
    return *this;
  }
  ~SendBufferRef() { reset(); }

  void reset() noexcept {
    if (buffer_ != nullptr) std::exchange(buffer_, nullptr)->Release();
  }

  SendBuffer* get() const noexcept { return buffer_; }
  SendBuffer* operator->() const noexcept { return buffer_; }
  SendBuffer& operator*() const noexcept { return *buffer_; }
  explicit operator bool() const noexcept { return buffer_ != nullptr; }
  // How many references exist now: for tests and assertions only, since other
  // threads may change it at any moment.
  uint32_t use_count() const noexcept {
    return buffer_ != nullptr ? buffer_->RefCount() : 0;
  }

  friend bool operator==(const SendBufferRef& a,
                         const SendBufferRef& b) noexcept {
    return a.buffer_ == b.buffer_;
  }

 private:
  friend class SendBufferChunk;
  friend class SendBufferShares;
  friend class internal::ReleaseBatch;  // takes the reference, counts it
  // Adopts a reference already counted: the one the SendBuffer was created
  // with, or one of a SendBufferShares.
  explicit SendBufferRef(SendBuffer* adopted) noexcept : buffer_(adopted) {}

  SendBuffer* buffer_ = nullptr;
};

// References to one buffer for a broadcast, counted with one atomic add for
// all of them where copying a SendBufferRef per receiver costs one each (a
// locked instruction per member of a room, as much as the member's whole
// queue push otherwise).
//
//   SendBufferShares shares(packet, members.size());
//   for (Member& member : members) member.session->Send(shares.Take());
//
// Take() at most `count` times; the references not taken are given back
// when the shares go, with one atomic subtract. The caller's `buffer` must
// stay alive until then (it keeps the count above those given back).
//
// Thread safety: one SendBufferShares on one thread; the references it hands
// out are ordinary SendBufferRefs.
class SendBufferShares {
 public:
  SendBufferShares(const SendBufferRef& buffer, size_t count) noexcept;
  ~SendBufferShares();
  SendBufferShares(const SendBufferShares&) = delete;
  SendBufferShares& operator=(const SendBufferShares&) = delete;

  // One of the references counted (a programming error past `count`).
  SendBufferRef Take() noexcept {
    SERVERCORE_CHECK(left_ > 0, "SendBufferShares: more Takes than shares");
    --left_;
    return SendBufferRef(buffer_);
  }

 private:
  SendBuffer* buffer_;
  uint32_t left_;
};

}  // namespace servercore

#endif  // SERVERCORE_SEND_BUFFER_H_
