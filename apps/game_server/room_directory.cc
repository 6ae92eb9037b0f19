#include "room_directory.h"

#include "servercore/check.h"

namespace game {

std::shared_ptr<Room> RoomDirectory::Acquire(uint32_t room) {
  servercore::MutexLock lock(mu_);
  Entry& entry = rooms_[room];
  if (entry.room == nullptr) {
    entry.room = std::make_shared<Room>(room, options_, stats_);
    count_.fetch_add(1, std::memory_order_relaxed);
  }
  ++entry.holders;
  return entry.room;
}

void RoomDirectory::Release(uint32_t room) {
  servercore::MutexLock lock(mu_);
  auto it = rooms_.find(room);
  SERVERCORE_CHECK(it != rooms_.end() && it->second.holders > 0,
                   "RoomDirectory: release of room %u, not acquired", room);
  if (--it->second.holders == 0) {
    rooms_.erase(it);
    count_.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace game
