// Session: one client connection of the Asio peer, speaking docs/PROTOCOL.md.
//
// Receive: waits for readability (async_wait), then reads with non-blocking
// read_some into its worker's 64 KiB read buffer and frames [u16 size][u16
// id][payload] packets out of it in place. A packet split across reads is
// the only thing kept per session (tail_), so an idle session holds no read
// buffer. Reading stops at a read that does not fill the buffer, with no
// read to EAGAIN: queueing the next wait re-arms the descriptor (Boost 1.74
// makes one epoll_ctl MOD per wait, the price of this design on echo), and
// that reports data that came in between.
//
// Send: replies and broadcasts are appended to the session's Output (one
// contiguous buffer, two sides swapped between writes); at most one write
// (a loop of async_write_some until all of it is written) is in flight. A
// session given output during a handler is flushed once at the end of that
// handler (Worker::FlushQueued), so all the packets of one read, and all the
// chats of a sender's read to each member, leave in one write.
//
// Thread safety: confined to its worker's thread (every member is called
// there only, asserted in debug builds); no strand or lock is needed.
// Ownership: shared_ptr, kept alive by its pending wait and write handlers;
// the worker's room lists and flush queue hold plain pointers, removed or
// emptied before the session can go away.
#ifndef SERVERCORE_BENCH_PEERS_ASIO_SESSION_H_
#define SERVERCORE_BENCH_PEERS_ASIO_SESSION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "asio_output.h"
#include "asio_peer.h"

namespace asio_peer {

class Worker;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Worker& worker, tcp::socket socket, uint64_t id);

  // Joins room 0 and starts reading.
  void Start();
  // Appends one whole packet to the output (a copy, or with SendShared a
  // reference); it leaves with the next write.
  void Send(const uint8_t* packet, size_t size);
  void SendShared(SharedPacket* packet);
  // Starts a write of what the output holds unless one is in flight (that
  // one's completion starts the next). Called by Worker::FlushQueued.
  void Flush();
  // Closes the socket (pending handlers complete with operation_aborted) and
  // leaves the room; the first reason counts, later calls do nothing.
  void Close(CloseReason reason);

  uint64_t id() const noexcept { return id_; }
  bool closed() const noexcept { return closed_; }

  // Room bookkeeping, owned by Worker: which room, and the slot in the
  // worker's member list of that room (for O(1) removal).
  uint32_t room() const noexcept { return room_; }
  void set_room(uint32_t room, size_t slot) noexcept {
    room_ = room;
    room_slot_ = slot;
  }
  size_t room_slot() const noexcept { return room_slot_; }
  void set_room_slot(size_t slot) noexcept { room_slot_ = slot; }

 private:
  void WaitRead();
  void OnReadable(const boost::system::error_code& error);
  // One read_some into the worker's buffer after tail_; frames what it can.
  // Returns false when the socket has nothing more now (or the session
  // closed or stops reading).
  bool ReadOnce();
  // Frames and handles every whole packet of [data, data + size); returns
  // the bytes consumed (stops at a protocol error, which starts a drain).
  size_t HandlePackets(const uint8_t* data, size_t size);
  void HandlePacket(uint16_t id, const uint8_t* payload, size_t size);
  void HandleEcho(const uint8_t* payload, size_t size);
  void HandleJoin(const uint8_t* payload, size_t size);
  void HandleChat(const uint8_t* payload, size_t size);
  void ProtocolError(const char* why);

  // Whether `size` more bytes fit under --max-pending; kicks the session
  // (closed from a handler of its own) when they do not.
  bool Admit(size_t size);
  void QueueFlush();
  void StartWrite();
  void WriteSome();
  void OnWriteSome(const boost::system::error_code& error, size_t bytes);

  Worker& worker_;
  tcp::socket socket_;
  const uint64_t id_;
  uint32_t room_ = 0;
  size_t room_slot_ = 0;
  bool in_room_ = false;
  bool closed_ = false;
  bool kicked_ = false;  // over --max-pending: drops output until closed
  // After a protocol error: no more reads or room traffic, the replies to
  // the packets before the bad one are written, then the session closes.
  bool draining_ = false;

  // The start of a packet split across reads (less than one packet).
  std::vector<uint8_t> tail_;

  Output output_;
  bool flush_queued_ = false;  // in the worker's flush queue
  bool writing_ = false;
  size_t write_somes_ = 0;  // of the write under way
};

}  // namespace asio_peer

#endif  // SERVERCORE_BENCH_PEERS_ASIO_SESSION_H_
