#include "servercore/packet_session.h"

#include <cstdio>

#include "log_limiter.h"

namespace servercore {

PacketSession::PacketSession(size_t max_packet) : framer_(max_packet) {}

size_t PacketSession::MinRecvBufferSize() const noexcept {
  return framer_.max_packet();
}

size_t PacketSession::BegunMessageSize(
    std::span<const std::byte> begun) const noexcept {
  if (begun.size() < kPacketHeaderSize) return kPacketHeaderSize;
  return LoadU16(begun.data());
}

size_t PacketSession::OnRecv(std::span<const std::byte> data) {
  if (stopped_) return data.size();
  const FrameResult result =
      framer_.Frame(data, [this](const PacketView& packet) {
        OnRecvPacket(packet.id, packet.payload);
        // A handler that closed us, found an error or paused reading stops
        // the framing (paused, the rest is offered again on resuming).
        return IsConnected() && !stopped_ && !ReadingPaused();
      });
  CountPacketsIn(result.packets);
  if (result.error != FrameError::kNone) {
    const std::span<const std::byte> header = data.subspan(result.consumed);
    if (header.size() >= kPacketHeaderSize) {
      OnBadHeader(LoadU16(header.data()), LoadU16(header.data() + 2));
    }
    char why[96];
    std::snprintf(why, sizeof(why), "%.*s (size %u, max-packet %zu)",
                  static_cast<int>(ToString(result.error).size()),
                  ToString(result.error).data(),
                  unsigned{LoadU16(data.data() + result.consumed)},
                  framer_.max_packet());
    ProtocolError(why);
  } else if (IsConnected() && !stopped_ && !ReadingPaused()) {
    // What is left is the start of one packet: its header says which.
    const std::span<const std::byte> begun = data.subspan(result.consumed);
    if (begun.size() >= kPacketHeaderSize) {
      OnBegunPacket(LoadU16(begun.data()), LoadU16(begun.data() + 2));
    }
  }
  if (result.packets > 0) OnReadComplete();
  return stopped_ ? data.size() : result.consumed;
}

void PacketSession::ProtocolError(std::string_view why) {
  if (!IsConnected() || stopped_) return;
  stopped_ = true;
  internal::LogLimited(internal::LogKind::kProtocolError,
                       "session %llu: protocol error: %.*s",
                       static_cast<unsigned long long>(id()),
                       static_cast<int>(why.size()), why.data());
  OnProtocolError(why);
}

void PacketSession::OnProtocolError(std::string_view) {
  Disconnect(DisconnectReason::kProtocolError);
}

}  // namespace servercore
