// Broadcast server: all sessions share one room. A C_CHAT (id 5) is answered
// by one S_CHAT (id 6) = [u64 sender session id][message], sent to everyone.
// A packet is [u16 size][u16 id][payload], little-endian, size incl. header.
//
//   broadcast_server --port 7000 --threads 2
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
#include <mutex>
#include <set>

constexpr uint16_t kCChat = 5;
constexpr uint16_t kSChat = 6;

// Every connected session. Send only queues, so broadcasting under mu is short.
struct Room {
  std::mutex mu;
  std::set<servercore::SessionRef> sessions;
};

class ChatSession : public servercore::PacketSession {
 public:
  explicit ChatSession(Room& room) : room_(room) {}

 protected:
  // Joins in accept order, before any later connection is served: a chat
  // sent after a peer's connect returned reaches that peer.
  void OnCreated() override {
    std::lock_guard lock(room_.mu);
    room_.sessions.insert(shared_from_this());
  }
  void OnDisconnected(servercore::DisconnectReason) override {
    std::lock_guard lock(room_.mu);
    room_.sessions.erase(shared_from_this());
  }
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    if (id != kCChat) return ProtocolError("unknown packet id");
    servercore::PacketWriter writer(kSChat, 8 + payload.size());
    writer.WriteU64(this->id()).WriteBytes(payload);
    servercore::SendBufferRef packet = writer.Finish();  // built once
    std::lock_guard lock(room_.mu);
    for (const servercore::SessionRef& member : room_.sessions) {
      member->Send(packet);
    }
  }

 private:
  Room& room_;
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

  Room room;  // outlives the server, whose sessions point to it
  servercore::ServerService server(
      servercore::ServiceOptions{.worker_threads = threads},
      [&room] { return std::make_shared<ChatSession>(room); });
  std::error_code error = server.Start();
  if (!error) error = server.Listen("127.0.0.1", static_cast<uint16_t>(port));
  if (error) {
    std::fprintf(stderr, "broadcast_server: %s\n", error.message().c_str());
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u\n", unsigned{server.port()});
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server.Stop();
  return 0;
}
