#include "servercore/send_buffer.h"

#include "send_buffer_chunk.h"
#include "servercore/check.h"
#include "servercore/send_buffer_manager.h"

namespace servercore {

void SendBuffer::Close(uint32_t write_size) {
  SERVERCORE_CHECK(!closed_, "SendBuffer::Close called twice");
  SERVERCORE_CHECK(write_size <= alloc_size_,
                   "SendBuffer::Close: write_size is larger than the "
                   "alloc_size given to Open");
  SendBufferManager::Instance().OnClose(*this);
  write_size_ = write_size;
  closed_ = true;
  owner_->Close(*this);
}

void SendBuffer::Release(uint32_t count) noexcept {
  // acq_rel: every holder's use of the bytes happens before the chunk that
  // holds them is reused by another thread.
  if (refs_.fetch_sub(count, std::memory_order_acq_rel) == count) {
    SendBufferChunk* owner = owner_;
    this->~SendBuffer();
    owner->ReleaseRef();
  }
}

SendBufferShares::SendBufferShares(const SendBufferRef& buffer,
                                   size_t count) noexcept
    : buffer_(buffer.get()), left_(static_cast<uint32_t>(count)) {
  SERVERCORE_CHECK(buffer_ != nullptr, "SendBufferShares of no buffer");
  // A count past what refs_ holds could wrap it, and free the buffer early.
  SERVERCORE_CHECK(count < (uint32_t{1} << 31),
                   "SendBufferShares: %zu shares of one buffer", count);
  if (left_ > 0) buffer_->AddRef(left_);
}

SendBufferShares::~SendBufferShares() {
  // The caller's reference is still counted: this never frees the buffer.
  if (left_ > 0) buffer_->refs_.fetch_sub(left_, std::memory_order_relaxed);
}

}  // namespace servercore
