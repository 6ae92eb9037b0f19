#include "asio_session.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "asio_handler_memory.h"
#include "asio_server.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#include <boost/asio/post.hpp>
#pragma GCC diagnostic pop

namespace asio_peer {
namespace {

constexpr uint16_t kCEcho = 1, kSEcho = 2, kCJoin = 3, kSJoin = 4, kCChat = 5,
                   kSChat = 6;
constexpr size_t kHeaderSize = 4;
constexpr size_t kMaxWirePacket = 65535;

uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t LoadU32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
         (uint32_t{p[3]} << 24);
}

void StoreU16(uint8_t* p, size_t value) {
  p[0] = static_cast<uint8_t>(value);
  p[1] = static_cast<uint8_t>(value >> 8);
}
void StoreLe(uint8_t* p, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i)
    p[i] = static_cast<uint8_t>(value >> (8 * i));
}

// A view of the output's buffers as a buffer sequence: a write operation
// keeps a copy of its buffer sequence, and a std::vector would be copied
// (one allocation per write); this copies two pointers.
struct BufferView {
  using value_type = asio::const_buffer;
  using const_iterator = const asio::const_buffer*;
  const_iterator first;
  const_iterator last;
  const_iterator begin() const noexcept { return first; }
  const_iterator end() const noexcept { return last; }
};

}  // namespace

Session::Session(Worker& worker, tcp::socket socket, uint64_t id)
    : worker_(worker),
      socket_(std::move(socket)),
      id_(id),
      output_(worker.packet_pool()) {}

void Session::Start() {
  assert(worker_.InThisThread());
  boost::system::error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);
  socket_.non_blocking(true, ignored);  // for read_some after async_wait
  worker_.AddSession(*this);
  worker_.JoinRoom(*this, 0);
  worker_.server().CountJoin(std::nullopt, 0);
  in_room_ = true;
  // The client may have written already: read first, then wait.
  OnReadable({});
}

void Session::Close(CloseReason reason) {
  assert(worker_.InThisThread());
  if (closed_) return;
  closed_ = true;
  if (in_room_) {
    worker_.LeaveRoom(*this);
    worker_.server().CountLeave(room_);
    in_room_ = false;
  }
  worker_.RemoveSession(*this);
  boost::system::error_code ignored;
  socket_.close(ignored);
  worker_.counters().closed[static_cast<size_t>(reason)].Add();
  worker_.server().SessionClosed();
}

// --- Receive --------------------------------------------------------------

void Session::WaitRead() {
  socket_.async_wait(
      tcp::socket::wait_read,
      WithPool(worker_.op_pool(), [self = shared_from_this()](
                                      const boost::system::error_code& error) {
        self->OnReadable(error);
      }));
}

void Session::OnReadable(const boost::system::error_code& error) {
  if (closed_) return;
  if (error) {
    Close(CloseReason::kReset);
    return;
  }
  while (ReadOnce()) {
  }
  if (!closed_) {
    if (!draining_) {
      WaitRead();
    } else if (!writing_ && output_.pending() == 0) {
      Close(CloseReason::kProtocol);  // nothing answered before the error
    }
  }
  // Everything this read produced, for this session and for every member a
  // chat of it reached, leaves now: one write each.
  worker_.FlushQueued();
}

bool Session::ReadOnce() {
  uint8_t* const buffer = worker_.read_buffer();
  const size_t capacity = worker_.read_capacity();
  const size_t kept = tail_.size();  // < max_packet <= capacity / 2
  if (kept > 0) std::memcpy(buffer, tail_.data(), kept);
  boost::system::error_code error;
  const size_t bytes =
      socket_.read_some(asio::buffer(buffer + kept, capacity - kept), error);
  if (error == asio::error::would_block) return false;
  if (error) {
    Close(error == asio::error::eof ? CloseReason::kPeer : CloseReason::kReset);
    return false;
  }
  Counters& counters = worker_.counters();
  counters.recvs.Add();
  counters.bytes_in.Add(bytes);
  const size_t total = kept + bytes;
  const size_t consumed = HandlePackets(buffer, total);
  if (closed_ || draining_) return false;
  // Keeps its capacity (one packet at most): no allocation once a session
  // has had a packet split.
  tail_.assign(buffer + consumed, buffer + total);
  return total == capacity;  // a full buffer: the socket may hold more
}

size_t Session::HandlePackets(const uint8_t* data, size_t size) {
  const size_t max_packet = worker_.config().max_packet;
  size_t pos = 0;
  uint64_t packets = 0;
  while (size - pos >= kHeaderSize) {
    const uint8_t* packet = data + pos;
    const size_t packet_size = LoadU16(packet);
    if (packet_size < kHeaderSize) {
      ProtocolError("packet size below 4");
      break;
    }
    if (packet_size > max_packet) {
      char why[64];
      std::snprintf(why, sizeof(why), "packet of %zu bytes over --max-packet",
                    packet_size);
      ProtocolError(why);
      break;
    }
    if (size - pos < packet_size) break;  // the rest comes with a later read
    ++packets;
    HandlePacket(LoadU16(packet + 2), packet + kHeaderSize,
                 packet_size - kHeaderSize);
    pos += packet_size;
    if (closed_ || draining_) break;
  }
  worker_.counters().packets_in.Add(packets);
  return pos;
}

void Session::HandlePacket(uint16_t id, const uint8_t* payload, size_t size) {
  switch (id) {
    case kCEcho:
      HandleEcho(payload, size);
      break;
    case kCJoin:
      HandleJoin(payload, size);
      break;
    case kCChat:
      HandleChat(payload, size);
      break;
    default: {
      char why[48];
      std::snprintf(why, sizeof(why), "packet id %u not accepted",
                    unsigned{id});
      ProtocolError(why);
    }
  }
}

void Session::HandleEcho(const uint8_t* payload, size_t size) {
  const size_t total = kHeaderSize + size;
  if (!Admit(total)) return;
  uint8_t* out = output_.Extend(total);  // written in place
  StoreU16(out, total);
  StoreU16(out + 2, kSEcho);
  std::memcpy(out + kHeaderSize, payload, size);
  QueueFlush();
}

void Session::HandleJoin(const uint8_t* payload, size_t size) {
  if (size != 4) {
    ProtocolError("C_JOIN payload is not 4 bytes");
    return;
  }
  const uint32_t room = LoadU32(payload);
  std::optional<uint32_t> old_room;
  if (in_room_) {
    worker_.LeaveRoom(*this);
    old_room = room_;
  }
  worker_.JoinRoom(*this, room);
  in_room_ = true;
  const uint32_t members = worker_.server().CountJoin(old_room, room);

  uint8_t packet[kHeaderSize + 8];
  StoreU16(packet, sizeof(packet));
  StoreU16(packet + 2, kSJoin);
  StoreLe(packet + 4, room, 4);
  StoreLe(packet + 8, members, 4);
  Send(packet, sizeof(packet));
}

void Session::HandleChat(const uint8_t* payload, size_t size) {
  const size_t total = kHeaderSize + 8 + size;
  if (total > kMaxWirePacket) {
    ProtocolError("C_CHAT too long: S_CHAT would exceed 65535 bytes");
    return;
  }
  // Built once in the worker's scratch buffer, then copied into (or shared
  // by) every member's output.
  std::vector<uint8_t>& packet = worker_.scratch();
  packet.resize(total);
  StoreU16(packet.data(), total);
  StoreU16(packet.data() + 2, kSChat);
  StoreLe(packet.data() + 4, id_, 8);
  std::memcpy(packet.data() + 12, payload, size);
  worker_.server().Broadcast(worker_, room_, packet.data(), total);
}

void Session::ProtocolError(const char* why) {
  std::fprintf(stderr, "session %llu: protocol error: %s\n",
               static_cast<unsigned long long>(id_), why);
  // As GameServer: what was answered before the bad packet still goes out
  // (OnReadable and OnWriteSome close once it is written). Leaving the room now
  // keeps broadcasts from extending the drain.
  draining_ = true;
  if (in_room_) {
    worker_.LeaveRoom(*this);
    worker_.server().CountLeave(room_);
    in_room_ = false;
  }
}

// --- Send -----------------------------------------------------------------

bool Session::Admit(size_t size) {
  assert(worker_.InThisThread());
  if (closed_ || kicked_) return false;
  if (output_.pending() + size <= worker_.config().max_pending) return true;
  // Closed from a handler of its own: a broadcast may be walking the room
  // list this session would leave.
  kicked_ = true;
  std::fprintf(stderr,
               "session %llu: slow receiver: %zu bytes unsent, over "
               "--max-pending\n",
               static_cast<unsigned long long>(id_), output_.pending() + size);
  asio::post(worker_.context(),
             [self = shared_from_this()] { self->Close(CloseReason::kSlow); });
  return false;
}

void Session::Send(const uint8_t* packet, size_t size) {
  if (!Admit(size)) return;
  output_.Append(packet, size);
  QueueFlush();
}

void Session::SendShared(SharedPacket* packet) {
  if (!Admit(packet->bytes.size())) return;
  output_.AppendShared(packet);
  QueueFlush();
}

void Session::QueueFlush() {
  // A write in flight starts the next one itself when it completes.
  if (flush_queued_ || writing_) return;
  flush_queued_ = true;
  worker_.QueueFlush(*this);
}

void Session::Flush() {
  flush_queued_ = false;
  if (closed_ || writing_ || output_.filling_empty()) return;
  StartWrite();
}

void Session::StartWrite() {
  const size_t buffers = output_.StartWrite();
  writing_ = true;
  write_somes_ = 0;
  Counters& counters = worker_.counters();
  counters.writes.Add();
  counters.buffers_written.Add(buffers);
  WriteSome();
}

// async_write would do this loop too, but its composed operation gathers at
// most 16 buffers per write_some (Boost 1.74); async_write_some takes 64.
void Session::WriteSome() {
  socket_.async_write_some(
      BufferView{output_.unwritten_begin(), output_.unwritten_end()},
      WithPool(worker_.op_pool(),
               [self = shared_from_this()](
                   const boost::system::error_code& error, size_t bytes) {
                 self->OnWriteSome(error, bytes);
               }));
}

void Session::OnWriteSome(const boost::system::error_code& error,
                          size_t bytes) {
  if (!closed_ && !error) {
    Counters& counters = worker_.counters();
    counters.write_somes.Add();
    counters.bytes_out.Add(bytes);
    ++write_somes_;
    if (!output_.Consume(bytes)) {
      WriteSome();  // the socket took part of it
      return;
    }
  }
  writing_ = false;
  const size_t packets = output_.writing_packets();
  output_.WriteDone();
  if (closed_) return;
  if (error) {
    Close(CloseReason::kReset);
    return;
  }
  Counters& counters = worker_.counters();
  counters.packets_out.Add(packets);
  if (write_somes_ > 1) counters.partial_writes.Add();
  if (!output_.filling_empty()) {
    StartWrite();
  } else if (draining_) {
    Close(CloseReason::kProtocol);
  }
}

}  // namespace asio_peer
