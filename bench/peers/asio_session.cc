#include "asio_session.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "asio_server.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
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
void AppendLe(std::vector<uint8_t>& out, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) {
    out.push_back(static_cast<uint8_t>(value >> (8 * i)));
  }
}

// A new packet of `size` bytes with its header written; the caller appends
// the payload.
std::shared_ptr<std::vector<uint8_t>> NewPacket(size_t size, uint16_t id) {
  auto packet = std::make_shared<std::vector<uint8_t>>();
  packet->reserve(size);
  AppendLe(*packet, size, 2);
  AppendLe(*packet, id, 2);
  return packet;
}

// A view of iov_ as a buffer sequence: async_write copies its buffer
// sequence into the operation, and a std::vector would be copied (one
// allocation per write); this copies two pointers.
struct BufferView {
  using value_type = asio::const_buffer;
  using const_iterator = const asio::const_buffer*;
  const_iterator first;
  const_iterator last;
  const_iterator begin() const noexcept { return first; }
  const_iterator end() const noexcept { return last; }
};

}  // namespace

// asio::transfer_all() that also counts the write_some operations the
// composed async_write issues: it is asked once before each of them.
class Session::CountingTransferAll {
 public:
  explicit CountingTransferAll(Session* session) : session_(session) {}
  size_t operator()(const boost::system::error_code& error, size_t) const {
    if (error) return 0;
    ++session_->write_somes_;
    session_->worker_.counters().write_somes.Add();
    return asio::detail::default_max_transfer_size;
  }

 private:
  Session* session_;
};

Session::Session(Worker& worker, tcp::socket socket, uint64_t id)
    : worker_(worker),
      socket_(std::move(socket)),
      id_(id),
      // As GameServer's receive buffer: room for two largest packets.
      recv_capacity_(
          std::max<size_t>(16 * 1024, 2 * worker.config().max_packet)) {
  recv_ = std::make_unique<uint8_t[]>(recv_capacity_);
}

void Session::Start() {
  assert(worker_.InThisThread());
  boost::system::error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);
  worker_.AddSession(*this);
  worker_.JoinRoom(*this, 0);
  worker_.server().CountJoin(std::nullopt, 0);
  in_room_ = true;
  StartRead();
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

void Session::StartRead() {
  socket_.async_read_some(
      asio::buffer(recv_.get() + recv_end_, recv_capacity_ - recv_end_),
      [self = shared_from_this()](const boost::system::error_code& error,
                                  size_t bytes) {
        self->OnRead(error, bytes);
      });
}

void Session::OnRead(const boost::system::error_code& error, size_t bytes) {
  if (closed_) return;
  if (error) {
    Close(error == asio::error::eof ? CloseReason::kPeer : CloseReason::kReset);
    return;
  }
  Counters& counters = worker_.counters();
  counters.recvs.Add();
  counters.bytes_in.Add(bytes);
  recv_end_ += bytes;

  corked_ = true;
  const size_t consumed = HandlePackets();
  corked_ = false;
  if (closed_) return;
  if (draining_) {
    if (!writing_ && queue_.empty()) Close(CloseReason::kProtocol);
    if (!writing_ && !queue_.empty()) StartWrite();
    return;  // no more reads
  }
  // What is left is less than one packet (at most --max-packet bytes, and
  // the buffer holds two), so the next read always has room.
  if (consumed > 0) {
    std::memmove(recv_.get(), recv_.get() + consumed, recv_end_ - consumed);
    recv_end_ -= consumed;
  }
  if (!writing_ && !queue_.empty()) StartWrite();
  StartRead();
}

size_t Session::HandlePackets() {
  const size_t max_packet = worker_.config().max_packet;
  size_t pos = 0;
  uint64_t packets = 0;
  while (recv_end_ - pos >= kHeaderSize) {
    const uint8_t* packet = recv_.get() + pos;
    const size_t size = LoadU16(packet);
    if (size < kHeaderSize) {
      ProtocolError("packet size below 4");
      break;
    }
    if (size > max_packet) {
      char why[64];
      std::snprintf(why, sizeof(why), "packet of %zu bytes over --max-packet",
                    size);
      ProtocolError(why);
      break;
    }
    if (recv_end_ - pos < size) break;  // the rest comes with a later read
    ++packets;
    HandlePacket(LoadU16(packet + 2), packet + kHeaderSize, size - kHeaderSize);
    pos += size;
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
  auto packet = NewPacket(kHeaderSize + size, kSEcho);
  packet->insert(packet->end(), payload, payload + size);
  Send(std::move(packet));
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

  auto packet = NewPacket(kHeaderSize + 8, kSJoin);
  AppendLe(*packet, room, 4);
  AppendLe(*packet, members, 4);
  Send(std::move(packet));
}

void Session::HandleChat(const uint8_t* payload, size_t size) {
  const size_t total = kHeaderSize + 8 + size;
  if (total > kMaxWirePacket) {
    ProtocolError("C_CHAT too long: S_CHAT would exceed 65535 bytes");
    return;
  }
  // Built once; the same buffer goes to every member of the room.
  auto packet = NewPacket(total, kSChat);
  AppendLe(*packet, id_, 8);
  packet->insert(packet->end(), payload, payload + size);
  worker_.server().Broadcast(worker_, room_, std::move(packet));
}

void Session::ProtocolError(const char* why) {
  std::fprintf(stderr, "session %llu: protocol error: %s\n",
               static_cast<unsigned long long>(id_), why);
  // As GameServer: what was answered before the bad packet still goes out
  // (OnRead and OnWrite close once the queue is written). Leaving the room
  // now keeps broadcasts from extending the drain.
  draining_ = true;
  if (in_room_) {
    worker_.LeaveRoom(*this);
    worker_.server().CountLeave(room_);
    in_room_ = false;
  }
}

// --- Send -----------------------------------------------------------------

void Session::Send(Packet packet) {
  assert(worker_.InThisThread());
  if (closed_ || kicked_) return;
  pending_bytes_ += packet->size();
  if (pending_bytes_ > worker_.config().max_pending) {
    // Closed from a handler of its own: a broadcast may be walking the room
    // list this session would leave.
    kicked_ = true;
    std::fprintf(stderr,
                 "session %llu: slow receiver: %zu bytes unsent, over "
                 "--max-pending\n",
                 static_cast<unsigned long long>(id_), pending_bytes_);
    asio::post(worker_.context(), [self = shared_from_this()] {
      self->Close(CloseReason::kSlow);
    });
    return;
  }
  queue_.push_back(std::move(packet));
  if (!writing_ && !corked_) StartWrite();
}

void Session::StartWrite() {
  iov_.clear();
  for (const Packet& packet : queue_) iov_.push_back(asio::buffer(*packet));
  in_flight_ = queue_.size();
  writing_ = true;
  write_somes_ = 0;
  Counters& counters = worker_.counters();
  counters.writes.Add();
  counters.buffers_written.Add(in_flight_);
  // One async_write for everything queued; Asio's composed write issues as
  // many write_some operations as it needs (16 buffers and 64 KiB at most
  // each in Boost 1.74).
  asio::async_write(socket_, BufferView{iov_.data(), iov_.data() + iov_.size()},
                    CountingTransferAll(this),
                    [self = shared_from_this()](
                        const boost::system::error_code& error, size_t bytes) {
                      self->OnWrite(error, bytes);
                    });
}

void Session::OnWrite(const boost::system::error_code& error, size_t bytes) {
  writing_ = false;
  if (closed_) return;
  if (error) {
    Close(CloseReason::kReset);
    return;
  }
  Counters& counters = worker_.counters();
  counters.bytes_out.Add(bytes);
  counters.packets_out.Add(in_flight_);
  if (write_somes_ > 1) counters.partial_writes.Add();
  pending_bytes_ -= bytes;
  queue_.erase(queue_.begin(),
               queue_.begin() + static_cast<std::ptrdiff_t>(in_flight_));
  in_flight_ = 0;
  if (!queue_.empty()) {
    StartWrite();
  } else if (draining_) {
    Close(CloseReason::kProtocol);
  }
}

}  // namespace asio_peer
