// RoomDirectory: finds the Room of a room id, making it on first use and
// dropping it when its last session is gone, so rooms cost nothing once
// empty whatever ids clients try. Its mutex guards only the map from ids to
// rooms (taken once per join, accept and disconnect, never per chat, move or
// tick); a room's own state is its JobQueue's.
//
// Acquire/Release count the sessions that hold a room: a session acquires
// the room it joins and releases it once it has pushed its Leave there. A
// dropped room lives on until its last job has run (jobs hold it), and a
// later Acquire of the same id makes a new one.
//
// In a cluster (WorldOptions::cluster), a room made here is added to the
// link (which subscribes to its subject) and publishes its state asking for
// the other nodes'; a dropped room is removed from the link (unsubscribed).
// Both under the mutex, so the link sees them in the order they happened.
//
// Thread safety: every member may be called from any thread. Ownership: owns
// the world's options and stats, which its rooms borrow: it must outlive
// every room (GameServer stops its service, so every session's Leave has
// run, before the directory goes).
#ifndef SERVERCORE_APPS_GAME_SERVER_ROOM_DIRECTORY_H_
#define SERVERCORE_APPS_GAME_SERVER_ROOM_DIRECTORY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "room.h"
#include "room_work.h"
#include "servercore/mutex.h"
#include "world_stats.h"

namespace game {

class RoomDirectory {
 public:
  // `max_memory`: the server's budget, a share of which the jobs queued for
  // rooms may take (RoomWork).
  explicit RoomDirectory(const WorldOptions& options,
                         uint64_t max_memory = uint64_t{1} << 30)
      : options_(options), work_(max_memory) {}

  std::shared_ptr<Room> Acquire(uint32_t room);
  void Release(uint32_t room);

  // Fills `out` with (room, sessions) for every room here: the presence
  // this node announces to a cluster.
  void Counts(std::vector<std::pair<uint32_t, uint32_t>>& out) const;

  // Rooms with at least one session.
  uint64_t RoomCount() const noexcept {
    return count_.load(std::memory_order_relaxed);
  }
  const WorldStats& stats() const noexcept { return stats_; }
  RoomWork& work() noexcept { return work_; }
  const RoomWork& work() const noexcept { return work_; }
  const WorldOptions& options() const noexcept { return options_; }

 private:
  struct Entry {
    std::shared_ptr<Room> room;
    uint64_t holders = 0;
  };

  const WorldOptions options_;
  WorldStats stats_;
  RoomWork work_;
  mutable servercore::Mutex mu_;
  std::unordered_map<uint32_t, Entry> rooms_ SERVERCORE_GUARDED_BY(mu_);
  std::atomic<uint64_t> count_{0};
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_ROOM_DIRECTORY_H_
