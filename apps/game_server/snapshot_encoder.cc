#include "snapshot_encoder.h"

#include <google/protobuf/io/coded_stream.h>

#include "game.packets.h"
#include "servercore/check.h"

namespace game {

SnapshotEncoder::SnapshotEncoder(pb::S_SNAPSHOT& message,
                                 std::vector<servercore::SendBufferRef>& out,
                                 uint32_t room, uint64_t tick, bool full,
                                 size_t max_payload)
    : message_(message), out_(out), max_payload_(max_payload) {
  message_.Clear();
  message_.set_room(room);
  message_.set_tick(tick);
  message_.set_full(full);
  header_size_ = message_.ByteSizeLong();
  size_ = header_size_;
}

void SnapshotEncoder::Add(uint64_t session_id, float x, float y,
                          uint32_t last_seq, bool gone) {
  next_.set_session_id(session_id);
  next_.set_x(x);
  next_.set_y(y);
  next_.set_last_seq(last_seq);
  next_.set_gone(gone);
  // Field 3, length-delimited: a one-byte tag, the length, the entity.
  const size_t body = next_.ByteSizeLong();
  const size_t added =
      1 + google::protobuf::io::CodedOutputStream::VarintSize64(body) + body;
  SERVERCORE_CHECK(header_size_ + added <= max_payload_,
                   "SnapshotEncoder: one entity (%zu bytes) does not fit in "
                   "a packet of %zu",
                   added, max_payload_);
  if (size_ + added > max_payload_) Flush();
  *message_.add_entities() = next_;
  size_ += added;
  ++entities_;
}

void SnapshotEncoder::Flush() {
  servercore::SendBufferRef packet = pb::MakeSendBuffer(message_);
  // MakeSendBuffer sized the message again: it must agree with the count.
  SERVERCORE_CHECK(
      packet != nullptr && message_.GetCachedSize() == static_cast<int>(size_),
      "SnapshotEncoder: encoded %d bytes, counted %zu",
      message_.GetCachedSize(), size_);
  out_.push_back(std::move(packet));
  message_.mutable_entities()->Clear();
  size_ = header_size_;
}

void SnapshotEncoder::Finish() {
  if (message_.entities_size() > 0) Flush();
}

}  // namespace game
