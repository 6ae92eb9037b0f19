// Ping server: typed packets from ping.proto. Each C_PING (id 1000, a
// protobuf message) is answered with an S_PONG (id 1001) carrying the
// client's time and the server's, in microseconds since the Unix epoch.
// servercore_add_protocol (CMakeLists.txt) generates ping.packets.h: the ids,
// pb::Dispatch, which calls the Handle_C_PING below, and MakeSendBuffer.
//
//   ping_server --port 7000 --threads 2
//
// --port 0 picks a free port. Prints "listening on 127.0.0.1:PORT" when ready
// and runs until SIGINT or SIGTERM.
#include <servercore/packet_session.h>
#include <servercore/service.h>

#include <chrono>
#include <memory>

#include "example_main.h"
#include "ping.packets.h"

class PingSession : public servercore::PacketSession {
 protected:
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    const servercore::DispatchResult result =
        ping::pb::Dispatch(*this, id, payload);
    if (result != servercore::DispatchResult::kHandled) {
      ProtocolError(servercore::ToString(result));
    }
  }
};

namespace ping::pb {

void Handle_C_PING(PingSession& session, const C_PING& message) {
  S_PONG pong;
  pong.set_client_time_us(message.client_time_us());
  pong.set_server_time_us(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count()));
  session.Send(MakeSendBuffer(pong));  // two varints: never over 65535 bytes
}

}  // namespace ping::pb

int main(int argc, char** argv) {
  return example::Serve("ping_server", argc, argv,
                        [] { return std::make_shared<PingSession>(); });
}
