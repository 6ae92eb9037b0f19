// Typed packets: the payload of a packet is one protobuf message. The code
// that protoc-gen-servercore generates from a .proto (through the CMake
// function servercore_add_protocol, cmake/ServercoreProtocol.cmake) builds on
// the two pieces here:
//
//   DispatchResult  what the generated Dispatch(session, id, payload) reports:
//                   the message was parsed and its handler ran, or the id is
//                   not one the generated code accepts, or the payload did not
//                   parse. The session turns the last two into a protocol
//                   error.
//   SerializePacket serializes a message straight into a SendBuffer opened in
//                   the calling thread's chunk, behind the [size][id] header:
//                   no temporary string, no copy. The generated
//                   MakeSendBuffer(const S_X&) calls it with S_X's id.
//
// servercore itself does not link protobuf: SerializePacket is a template
// that needs only the two members every protobuf message has, ByteSizeLong
// and SerializeWithCachedSizesToArray.
//
// Thread safety: SerializePacket uses the calling thread's SendBuffer chunk
// (see send_buffer_manager.h); the buffer it returns may go anywhere.
#ifndef SERVERCORE_TYPED_PACKET_H_
#define SERVERCORE_TYPED_PACKET_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "servercore/check.h"
#include "servercore/packet_framer.h"
#include "servercore/send_buffer.h"
#include "servercore/send_buffer_manager.h"

namespace servercore {

enum class DispatchResult : uint8_t {
  kHandled,     // parsed, and the message's handler was called
  kUnknownId,   // no client message has this id: not accepted
  kParseError,  // the payload is not a valid encoding of the message
};

constexpr std::string_view ToString(DispatchResult result) noexcept {
  switch (result) {
    case DispatchResult::kHandled:
      return "handled";
    case DispatchResult::kUnknownId:
      return "packet id not accepted";
    case DispatchResult::kParseError:
      return "payload does not parse";
  }
  return "?";
}

// The largest serialized message that fits in one packet.
inline constexpr size_t kMaxTypedPayload = kMaxPacketLimit - kPacketHeaderSize;

// One packet of id `id` holding `message`, or a null SendBufferRef when the
// message is larger than kMaxTypedPayload bytes: the packet's u16 size field
// cannot describe it, and it is never truncated. The caller decides what to
// do (split the message, or treat it as a bug).
template <typename Message>
[[nodiscard]] SendBufferRef SerializePacket(uint16_t id,
                                            const Message& message) {
  const size_t payload = message.ByteSizeLong();  // caches the sizes
  if (payload > kMaxTypedPayload) return nullptr;
  const auto size = static_cast<uint32_t>(kPacketHeaderSize + payload);
  SendBufferRef buffer = SendBufferManager::Instance().Open(size);
  std::byte* at = buffer->Buffer();
  WritePacketHeader(at, static_cast<uint16_t>(size), id);
  auto* body = reinterpret_cast<uint8_t*>(at + kPacketHeaderSize);
  const uint8_t* end = message.SerializeWithCachedSizesToArray(body);
  SERVERCORE_CHECK(end == body + payload,
                   "SerializePacket: id %u wrote %td bytes, not the %zu its "
                   "size said (message changed while being serialized?)",
                   unsigned{id}, end - body, payload);
  buffer->Close(size);
  return buffer;
}

}  // namespace servercore

#endif  // SERVERCORE_TYPED_PACKET_H_
