// RoomManager: which sessions are in which room, for join and broadcast.
//
// Rooms live in a fixed set of shards, each with its own mutex, so joins and
// broadcasts in different rooms rarely meet. A broadcast holds its room's
// shard lock while it queues the one shared buffer to every member (Send only
// takes each session's short queue lock: lock order is always shard, then
// session, never the reverse).
//
// Thread safety: every member may be called from any thread.
#ifndef SERVERCORE_APPS_GAME_SERVER_ROOM_MANAGER_H_
#define SERVERCORE_APPS_GAME_SERVER_ROOM_MANAGER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "servercore/mutex.h"
#include "servercore/send_buffer.h"
#include "servercore/session.h"

namespace game {

class RoomManager {
 public:
  // Puts `session` in `room` and returns the members of `room` after the
  // join. `welcome(members)` runs under the room's lock, so what it sends to
  // the session is queued before any broadcast to the room can reach it.
  template <typename Welcome>
  uint32_t Join(const servercore::SessionRef& session, uint32_t room,
                Welcome&& welcome) {
    Shard& shard = ShardOf(room);
    servercore::MutexLock lock(shard.mu);
    const uint32_t members = AddLocked(shard, session, room);
    welcome(members);
    return members;
  }
  uint32_t Join(const servercore::SessionRef& session, uint32_t room) {
    return Join(session, room, [](uint32_t) {});
  }
  void Leave(const servercore::Session& session, uint32_t room);
  // Queues `buffer` to every member of `room`; returns how many.
  size_t Broadcast(uint32_t room, const servercore::SendBufferRef& buffer);
  // Rooms with at least one member.
  uint64_t RoomCount() const noexcept {
    return rooms_.load(std::memory_order_relaxed);
  }

 private:
  static constexpr size_t kShards = 64;
  using Members = std::vector<servercore::SessionRef>;
  struct Shard {
    servercore::Mutex mu;
    std::unordered_map<uint32_t, Members> rooms SERVERCORE_GUARDED_BY(mu);
  };

  Shard& ShardOf(uint32_t room) noexcept { return shards_[room % kShards]; }
  uint32_t AddLocked(Shard& shard, const servercore::SessionRef& session,
                     uint32_t room) SERVERCORE_REQUIRES(shard.mu);

  std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> rooms_{0};
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_ROOM_MANAGER_H_
