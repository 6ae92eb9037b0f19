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

void SendBuffer::Release() noexcept {
  // acq_rel: every holder's use of the bytes happens before the chunk that
  // holds them is reused by another thread.
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    SendBufferChunk* owner = owner_;
    this->~SendBuffer();
    owner->ReleaseRef();
  }
}

}  // namespace servercore
