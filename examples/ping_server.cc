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
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

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

// The number after `name` on the command line, or `fallback`.
int Flag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

int main(int argc, char** argv) {
  const int port = Flag(argc, argv, "--port", 7000);
  const int threads = Flag(argc, argv, "--threads", 1);

  // Block the stop signals in every thread (workers inherit the mask); main
  // takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  servercore::ServerService server(
      servercore::ServiceOptions{.worker_threads = threads},
      [] { return std::make_shared<PingSession>(); });
  std::error_code error = server.Start();
  if (!error) error = server.Listen("127.0.0.1", static_cast<uint16_t>(port));
  if (error) {
    std::fprintf(stderr, "ping_server: %s\n", error.message().c_str());
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u\n", unsigned{server.port()});
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server.Stop();
  return 0;
}
