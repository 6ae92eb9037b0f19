#include "room_manager.h"

#include <algorithm>

namespace game {

uint32_t RoomManager::AddLocked(Shard& shard,
                                const servercore::SessionRef& session,
                                uint32_t room) {
  Members& members = shard.rooms[room];
  if (members.empty()) rooms_.fetch_add(1, std::memory_order_relaxed);
  members.push_back(session);
  return static_cast<uint32_t>(members.size());
}

void RoomManager::Leave(const servercore::Session& session, uint32_t room) {
  Shard& shard = ShardOf(room);
  servercore::MutexLock lock(shard.mu);
  auto it = shard.rooms.find(room);
  if (it == shard.rooms.end()) return;
  Members& members = it->second;
  auto found = std::find_if(
      members.begin(), members.end(),
      [&](const auto& member) { return member.get() == &session; });
  if (found == members.end()) return;
  *found = std::move(members.back());
  members.pop_back();
  if (members.empty()) {
    shard.rooms.erase(it);
    rooms_.fetch_sub(1, std::memory_order_relaxed);
  }
}

size_t RoomManager::Broadcast(uint32_t room,
                              const servercore::SendBufferRef& buffer) {
  Shard& shard = ShardOf(room);
  servercore::MutexLock lock(shard.mu);
  auto it = shard.rooms.find(room);
  if (it == shard.rooms.end()) return 0;
  for (const servercore::SessionRef& member : it->second) member->Send(buffer);
  return it->second.size();
}

}  // namespace game
