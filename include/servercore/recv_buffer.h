// RecvBuffer: a session's receive buffer. One fixed-size allocation with a
// read cursor and a write cursor; the kernel writes at the write cursor, the
// packet framer reads at the read cursor, and Clean() slides the unread bytes
// back to the front instead of ever growing.
//
//   one allocation of Capacity() bytes, made in the constructor
//  +-------------------+---------------------+---------------------+
//  |  consumed bytes   |   readable bytes    |   writable bytes    |
//  | (Clean() reclaims)|      (Data())       |      (Free())       |
//  +-------------------+---------------------+---------------------+
//  0      <=      ReadPos()      <=      WritePos()     <=     Capacity()
//                      |<--- DataSize() --->|<--- FreeSize() ---->|
//
// A receive loop: recv() into Free(), OnWrite(bytes received); frame whole
// packets out of Data(), OnRead(bytes framed); Clean(); repeat. Clean() with
// nothing unread just rewinds both cursors; otherwise it memmoves the partial
// packet at the tail to offset 0, so FreeSize() becomes Capacity() -
// DataSize(). A buffer whose Capacity() is at least the largest packet
// accepted therefore always has room for the rest of a partial packet.
//
// Misuse (OnRead or OnWrite past the end of their region) is a programming
// error: it prints what went wrong to stderr and aborts.
//
// Thread safety: Distinct objects: Safe. Shared objects: Unsafe.
// Ownership: owns its storage. The storage never moves or reallocates for the
// object's lifetime, so ReadPos()/WritePos()/Data()/Free() may be handed to
// the kernel for an in-flight recv; OnRead/OnWrite/Clean only move the cursors
// (and Clean the bytes), which invalidates earlier Data()/Free() spans'
// meaning, not their memory. A move transfers the storage; the moved-from
// buffer is empty with Capacity() == 0.
#ifndef SERVERCORE_RECV_BUFFER_H_
#define SERVERCORE_RECV_BUFFER_H_

#include <cstddef>
#include <memory>
#include <span>

namespace servercore {

class RecvBuffer {
 public:
  // Allocates `capacity` bytes, once. The bytes are not zeroed.
  explicit RecvBuffer(size_t capacity);

  RecvBuffer(const RecvBuffer&) = delete;
  RecvBuffer& operator=(const RecvBuffer&) = delete;
  RecvBuffer(RecvBuffer&& other) noexcept;
  RecvBuffer& operator=(RecvBuffer&& other) noexcept;
  ~RecvBuffer() = default;

  std::byte* ReadPos() noexcept { return storage_.get() + read_pos_; }
  const std::byte* ReadPos() const noexcept {
    return storage_.get() + read_pos_;
  }
  std::byte* WritePos() noexcept { return storage_.get() + write_pos_; }

  size_t DataSize() const noexcept { return write_pos_ - read_pos_; }
  size_t FreeSize() const noexcept { return capacity_ - write_pos_; }
  size_t Capacity() const noexcept { return capacity_; }

  // The readable bytes: [ReadPos(), WritePos()).
  std::span<const std::byte> Data() const noexcept {
    return {ReadPos(), DataSize()};
  }
  // The writable tail: [WritePos(), Capacity()).
  std::span<std::byte> Free() noexcept { return {WritePos(), FreeSize()}; }

  // Consumes `n` readable bytes. Aborts if n > DataSize().
  void OnRead(size_t n);
  // Commits `n` bytes written at WritePos(). Aborts if n > FreeSize().
  void OnWrite(size_t n);
  // Compacts: rewinds both cursors when empty, else moves the unread bytes to
  // the front. Never allocates.
  void Clean() noexcept;

 private:
  // Returns the storage to the pool it came from (see recv_buffer.cc).
  struct StorageDelete {
    size_t capacity = 0;
    void operator()(std::byte* p) const noexcept;
  };
  std::unique_ptr<std::byte[], StorageDelete> storage_;
  size_t capacity_;
  size_t read_pos_ = 0;
  size_t write_pos_ = 0;
};

}  // namespace servercore

#endif  // SERVERCORE_RECV_BUFFER_H_
