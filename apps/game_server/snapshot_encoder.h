// SnapshotEncoder: one S_SNAPSHOT (docs/PROTOCOL.md "The world") encoded into
// as few packets as the 65535-byte limit allows. Entities are added one at a
// time; when the next one would push the message past the limit, the message
// so far becomes a packet of its own and a new one (same room, tick and
// `full`) begins. Each packet is serialized once, by the generated
// MakeSendBuffer, into a SendBuffer that every receiver then shares.
//
//   std::vector<SendBufferRef> parts;
//   SnapshotEncoder encoder(message, parts, room, tick, /*full=*/false);
//   encoder.Add(id, x, y, last_seq, /*gone=*/false);
//   encoder.Finish();  // parts holds the packets, in order
//
// The message and the vector are the caller's, reused from one snapshot to
// the next: Clear() keeps the Entity objects protobuf allocated and the
// vector its capacity, so a steady tick allocates nothing for them.
//
// Thread safety: Distinct objects: Safe. Shared objects: Unsafe. Ownership:
// borrows `message` and `out` for its lifetime.
#ifndef SERVERCORE_APPS_GAME_SERVER_SNAPSHOT_ENCODER_H_
#define SERVERCORE_APPS_GAME_SERVER_SNAPSHOT_ENCODER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "game.pb.h"
#include "servercore/send_buffer.h"
#include "servercore/typed_packet.h"

namespace game {

class SnapshotEncoder {
 public:
  // `max_payload` is the largest message per packet; tests lower it to split
  // small snapshots.
  SnapshotEncoder(pb::S_SNAPSHOT& message,
                  std::vector<servercore::SendBufferRef>& out, uint32_t room,
                  uint64_t tick, bool full,
                  size_t max_payload = servercore::kMaxTypedPayload);
  SnapshotEncoder(const SnapshotEncoder&) = delete;
  SnapshotEncoder& operator=(const SnapshotEncoder&) = delete;

  void Add(uint64_t session_id, float x, float y, uint32_t last_seq, bool gone);
  // Appends the last packet to `out` (none when nothing was added since the
  // last split). Ends the encoder.
  void Finish();

  size_t entities() const noexcept { return entities_; }

 private:
  void Flush();

  pb::S_SNAPSHOT& message_;
  std::vector<servercore::SendBufferRef>& out_;
  pb::Entity next_;  // the entity being added, sized before it goes in
  const size_t max_payload_;
  size_t header_size_ = 0;  // room, tick and full, encoded
  size_t size_ = 0;         // the message so far, encoded
  size_t entities_ = 0;
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_SNAPSHOT_ENCODER_H_
