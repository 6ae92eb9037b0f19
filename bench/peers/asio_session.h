// Session: one client connection of the Asio peer, speaking docs/PROTOCOL.md.
//
// Reads with async_read_some into its own receive buffer and frames
// [u16 size][u16 id][payload] packets out of it (a packet may be split
// across reads, a read may hold many). Output goes through a write queue of
// shared immutable packets: at most one async_write is in flight, and it
// gathers everything queued when it starts into one buffer sequence.
//
// Thread safety: confined to its worker's thread (every member is called
// there only, asserted in debug builds); no strand or lock is needed.
// Ownership: shared_ptr, kept alive by its pending read and write handlers;
// the worker's room lists hold plain pointers, removed on Close().
#ifndef SERVERCORE_BENCH_PEERS_ASIO_SESSION_H_
#define SERVERCORE_BENCH_PEERS_ASIO_SESSION_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "asio_peer.h"

namespace asio_peer {

class Worker;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Worker& worker, tcp::socket socket, uint64_t id);

  // Joins room 0 and starts reading.
  void Start();
  // Queues `packet`; it stays alive (shared) until its write completes.
  void Send(Packet packet);
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
  class CountingTransferAll;

  void StartRead();
  void OnRead(const boost::system::error_code& error, size_t bytes);
  // Frames and handles every whole packet in the receive buffer; returns the
  // bytes consumed (stops at a protocol error, which closes the session).
  size_t HandlePackets();
  void HandlePacket(uint16_t id, const uint8_t* payload, size_t size);
  void HandleEcho(const uint8_t* payload, size_t size);
  void HandleJoin(const uint8_t* payload, size_t size);
  void HandleChat(const uint8_t* payload, size_t size);
  void ProtocolError(const char* why);

  void StartWrite();
  void OnWrite(const boost::system::error_code& error, size_t bytes);

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

  // Receive buffer: [0, recv_end_) holds unread bytes, a partial packet at
  // most after each read's framing (moved to the front).
  std::unique_ptr<uint8_t[]> recv_;
  size_t recv_capacity_;
  size_t recv_end_ = 0;
  // While the packets of one read are handled, the session's own replies
  // only queue; one gather write goes out after the last of them.
  bool corked_ = false;

  // Write queue: the first in_flight_ packets are in the async_write under
  // way (iov_ points at them); the rest wait for the next one.
  std::deque<Packet> queue_;
  std::vector<asio::const_buffer> iov_;
  size_t in_flight_ = 0;
  bool writing_ = false;
  size_t write_somes_ = 0;    // of the async_write under way
  size_t pending_bytes_ = 0;  // queued and not yet written
};

}  // namespace asio_peer

#endif  // SERVERCORE_BENCH_PEERS_ASIO_SESSION_H_
