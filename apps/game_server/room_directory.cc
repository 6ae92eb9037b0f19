#include "room_directory.h"

#include "cluster_link.h"
#include "servercore/check.h"

namespace game {

std::shared_ptr<Room> RoomDirectory::Acquire(uint32_t room) {
  std::shared_ptr<Room> made;
  std::shared_ptr<Room> result;
  {
    servercore::MutexLock lock(mu_);
    Entry& entry = rooms_[room];
    if (entry.room == nullptr) {
      entry.room = std::make_shared<Room>(room, options_, stats_);
      count_.fetch_add(1, std::memory_order_relaxed);
      if (options_.cluster != nullptr) {
        options_.cluster->AddRoom(room, entry.room);
        made = entry.room;
      }
    }
    ++entry.holders;
    result = entry.room;
  }
  // After the link queued the subscription: the replies find it.
  if (made != nullptr) made->DoAsync(&Room::StartSync);
  return result;
}

void RoomDirectory::Release(uint32_t room) {
  servercore::MutexLock lock(mu_);
  auto it = rooms_.find(room);
  SERVERCORE_CHECK(it != rooms_.end() && it->second.holders > 0,
                   "RoomDirectory: release of room %u, not acquired", room);
  if (--it->second.holders == 0) {
    if (options_.cluster != nullptr) {
      options_.cluster->RemoveRoom(room, it->second.room.get());
    }
    rooms_.erase(it);
    count_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void RoomDirectory::Counts(
    std::vector<std::pair<uint32_t, uint32_t>>& out) const {
  servercore::MutexLock lock(mu_);
  out.clear();
  out.reserve(rooms_.size());
  for (const auto& [id, entry] : rooms_) {
    out.emplace_back(id, static_cast<uint32_t>(entry.holders));
  }
}

}  // namespace game
