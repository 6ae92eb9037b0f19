#include "servercore/recv_buffer.h"

#include <cstring>
#include <utility>

#include "page_pool.h"
#include "servercore/check.h"

namespace servercore {

// Storage from PagePool: page-aligned blocks with no allocator
// bookkeeping in them, so an idle connection's buffer is never resident.
RecvBuffer::RecvBuffer(size_t capacity)
    : storage_(internal::PagePool::Instance().Take(capacity),
               StorageDelete{capacity}),
      capacity_(capacity) {}

void RecvBuffer::StorageDelete::operator()(std::byte* p) const noexcept {
  internal::PagePool::Instance().Give(p, capacity);
}

RecvBuffer::RecvBuffer(RecvBuffer&& other) noexcept
    : storage_(std::move(other.storage_)),
      capacity_(std::exchange(other.capacity_, 0)),
      read_pos_(std::exchange(other.read_pos_, 0)),
      write_pos_(std::exchange(other.write_pos_, 0)) {}

RecvBuffer& RecvBuffer::operator=(RecvBuffer&& other) noexcept {
  if (this != &other) {
    storage_ = std::move(other.storage_);
    capacity_ = std::exchange(other.capacity_, 0);
    read_pos_ = std::exchange(other.read_pos_, 0);
    write_pos_ = std::exchange(other.write_pos_, 0);
  }
  return *this;
}

void RecvBuffer::OnRead(size_t n) {
  SERVERCORE_CHECK(n <= DataSize(),
                   "RecvBuffer::OnRead: n=%zu exceeds DataSize()=%zu", n,
                   DataSize());
  read_pos_ += n;
}

void RecvBuffer::OnWrite(size_t n) {
  SERVERCORE_CHECK(n <= FreeSize(),
                   "RecvBuffer::OnWrite: n=%zu exceeds FreeSize()=%zu", n,
                   FreeSize());
  write_pos_ += n;
}

void RecvBuffer::Clean() noexcept {
  const size_t data_size = DataSize();
  if (data_size == 0) {
    read_pos_ = write_pos_ = 0;
    return;
  }
  if (read_pos_ == 0) return;  // already compact
  // The regions may overlap (a long tail moved a short way): memmove, not
  // memcpy.
  std::memmove(storage_.get(), storage_.get() + read_pos_, data_size);
  read_pos_ = 0;
  write_pos_ = data_size;
}

}  // namespace servercore
