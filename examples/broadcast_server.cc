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

#include <memory>
#include <mutex>
#include <set>

#include "example_main.h"

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

int main(int argc, char** argv) {
  Room room;  // outlives the server, whose sessions point to it
  return example::Serve("broadcast_server", argc, argv, [&room] {
    return std::make_shared<ChatSession>(room);
  });
}
