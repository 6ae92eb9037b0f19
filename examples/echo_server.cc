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
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

constexpr uint16_t kCEcho = 1;
constexpr uint16_t kSEcho = 2;

class EchoSession : public servercore::PacketSession {
 protected:
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    if (id != kCEcho) return ProtocolError("unknown packet id");
    Send(servercore::MakePacket(kSEcho, payload));
  }
};

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
      [] { return std::make_shared<EchoSession>(); });
  std::error_code error = server.Start();
  if (!error) error = server.Listen("127.0.0.1", static_cast<uint16_t>(port));
  if (error) {
    std::fprintf(stderr, "echo_server: %s\n", error.message().c_str());
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u\n", unsigned{server.port()});
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server.Stop();
  return 0;
}
