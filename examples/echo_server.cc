// Echo server: answers each C_ECHO (id 1) with an S_ECHO (id 2) carrying the
// same payload. A packet is [u16 size][u16 id][payload], little-endian, the
// size counting the 4-byte header.
//
//   echo_server --port 7000 --threads 2
//
// --port 0 picks a free port. Prints "listening on 127.0.0.1:PORT" when ready
// and runs until SIGINT or SIGTERM.
#include <servercore/packet_session.h>
#include <servercore/packet_writer.h>
#include <servercore/service.h>

#include <memory>

#include "example_main.h"

constexpr uint16_t kCEcho = 1;
constexpr uint16_t kSEcho = 2;

class EchoSession : public servercore::PacketSession {
 protected:
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    if (id != kCEcho) return ProtocolError("unknown packet id");
    Send(servercore::MakePacket(kSEcho, payload));
  }
};

int main(int argc, char** argv) {
  return example::Serve("echo_server", argc, argv,
                        [] { return std::make_shared<EchoSession>(); });
}
