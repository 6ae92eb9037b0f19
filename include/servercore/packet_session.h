// PacketSession: a Session that speaks PROTOCOL.md's framing. It reassembles
// [size][id][payload] packets from the byte stream, whatever the splits, and
// hands each whole packet to OnRecvPacket. A framing error (size < 4 or size >
// max_packet) closes this session only, after every packet before the bad one
// was handled, with one log line and DisconnectReason::kProtocolError.
//
// A handler may call PauseReading (Session): the packets after its own wait,
// with the rest of the stream, until ResumeReading.
//
// A protocol error (a framing error, or ProtocolError called by a handler)
// stops the packets at once: the rest of the stream is read and dropped. The
// close itself is OnProtocolError's, which by default disconnects at once.
// A session whose handlers hand work to other threads (a room's JobQueue,
// say) may override it to close once that work has sent its replies, so the
// answers to the packets before the bad one are not lost to the close.
//
// Thread safety: as Session. OnRecvPacket runs on the session's worker.
#ifndef SERVERCORE_PACKET_SESSION_H_
#define SERVERCORE_PACKET_SESSION_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "servercore/packet_framer.h"
#include "servercore/session.h"

namespace servercore {

class PacketSession : public Session {
 public:
  // `max_packet`: the largest packet accepted, header included (4..65535).
  // The session may hold that many bytes of an unfinished packet between
  // reads, whatever the service's recv_buffer_size.
  explicit PacketSession(size_t max_packet = 4096);

 protected:
  // Worker thread: one whole packet. The payload is valid during the call.
  virtual void OnRecvPacket(uint16_t id,
                            std::span<const std::byte> payload) = 0;

  // Worker thread: the peer broke the protocol (say why, for the log line);
  // closes this session through OnProtocolError. Packets after the current
  // one are not delivered. Once per session: later calls do nothing.
  void ProtocolError(std::string_view why);

  // Worker thread, once, from ProtocolError: close the session, now or later
  // (Disconnect(DisconnectReason::kProtocolError), from any thread). The
  // default closes at once.
  virtual void OnProtocolError(std::string_view why);

  // Worker thread: every packet of one delivery (the bytes of one read, or
  // of a message finished by it) has been handled; the payload spans given
  // to OnRecvPacket for them are valid until this returns. A place to send,
  // in one buffer, what was gathered for those packets (as Netty's
  // channelReadComplete). Called only when at least one packet was handled,
  // also when a protocol error cut the delivery short. The default does
  // nothing.
  virtual void OnReadComplete() {}

  // Worker thread: a packet's header broke the framing (size < 4 or past
  // max_packet); `id` is what its header carried, when its four bytes had
  // arrived. Called before the protocol error it causes. The default does
  // nothing.
  virtual void OnBadHeader(uint16_t size, uint16_t id) {
    (void)size;
    (void)id;
  }

  // Worker thread: the four header bytes of a packet whose rest has not
  // arrived yet (it may never come: the packet timeout). Called once more for
  // the same header when it is offered again with more of the packet. The
  // default does nothing.
  virtual void OnBegunPacket(uint16_t size, uint16_t id) {
    (void)size;
    (void)id;
  }

 private:
  size_t OnRecv(std::span<const std::byte> data) final;
  size_t MinRecvBufferSize() const noexcept final;
  size_t BegunMessageSize(
      std::span<const std::byte> begun) const noexcept final;

  PacketFramer framer_;
  bool stopped_ = false;  // a protocol error: drop what comes after
};

}  // namespace servercore

#endif  // SERVERCORE_PACKET_SESSION_H_
