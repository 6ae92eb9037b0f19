#include "world_checker.h"

#include <algorithm>
#include <vector>

namespace game {
namespace {

void RaiseTo(std::atomic<uint64_t>& max, uint64_t value) {
  uint64_t seen = max.load(std::memory_order_relaxed);
  while (value > seen &&
         !max.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

void Count(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace

void WorldChecker::OnMoveSent(uint32_t seq, int64_t now_ns) {
  if (!in_world_) {
    in_world_ = true;
    need_full_ = true;
  }
  last_sent_ = seq;
  pending_.push_back({seq, now_ns});
}

void WorldChecker::OnJoined(uint32_t room) {
  if (in_full_) CloseFullRun();
  room_ = room;
  have_tick_ = false;
  // The members of the room left behind send us no `gone` any more.
  others_.clear();
  if (in_world_) need_full_ = true;
}

bool WorldChecker::AcceptTyped(uint16_t id) {
  if (in_world_ || id == pb::PACKET_ID_S_PONG || id == pb::PACKET_ID_S_BYE) {
    return true;
  }
  Count(stats_.unsolicited);
  return false;
}

void WorldChecker::OnSnapshot(const pb::S_SNAPSHOT& snapshot, size_t bytes,
                              int64_t now_ns) {
  Count(stats_.snapshots);
  Count(stats_.snapshot_bytes, bytes);
  Count(stats_.entities, static_cast<uint64_t>(snapshot.entities_size()));
  if (snapshot.full()) Count(stats_.full_snapshots);
  if (!AcceptTyped(pb::PACKET_ID_S_SNAPSHOT)) return;
  if (snapshot.room() != room_) {
    Count(stats_.wrong_room);
    return;
  }
  // A full snapshot's packets share its tick; any other packet ends it.
  if (in_full_ && !(snapshot.full() && snapshot.tick() == full_tick_)) {
    CloseFullRun();
  }
  if (need_full_) {
    need_full_ = false;
    if (snapshot.full()) {
      in_full_ = true;
      full_tick_ = snapshot.tick();
      self_in_full_ = false;
    } else {
      Count(stats_.not_full_first);
    }
  }
  if (have_tick_ && snapshot.tick() < last_tick_) Count(stats_.tick_back);
  last_tick_ =
      have_tick_ ? std::max(last_tick_, snapshot.tick()) : snapshot.tick();
  have_tick_ = true;

  std::vector<uint64_t> gone;
  for (const pb::Entity& e : snapshot.entities()) {
    if (e.gone()) gone.push_back(e.session_id());
  }
  std::sort(gone.begin(), gone.end());
  for (const pb::Entity& e : snapshot.entities()) {
    if (e.gone()) {
      others_.erase(e.session_id());
      continue;
    }
    if (std::binary_search(gone.begin(), gone.end(), e.session_id())) {
      Count(stats_.gone_and_present);
    }
    if (!self_known_ && IsSelf(e)) {
      self_known_ = true;
      self_id_ = e.session_id();
    }
    if (self_known_ && e.session_id() == self_id_) {
      if (in_full_) self_in_full_ = true;
      OnOwnSeq(e.last_seq(), now_ns);
    } else {
      OnOtherSeq(e.session_id(), e.last_seq());
    }
  }
}

void WorldChecker::Finish() {
  if (in_full_) CloseFullRun();
}

void WorldChecker::CloseFullRun() {
  in_full_ = false;
  if (!self_in_full_) Count(stats_.not_full_first);
}

bool WorldChecker::IsSelf(const pb::Entity& entity) const {
  return entity.last_seq() >= 1 && entity.last_seq() <= last_sent_ &&
         path_.At(entity.last_seq()) == Position{entity.x(), entity.y()};
}

void WorldChecker::OnOwnSeq(uint32_t seq, int64_t now_ns) {
  if (seq < own_seq_) {
    Count(stats_.own_seq_back);
    return;
  }
  if (seq > last_sent_) {
    Count(stats_.future_seq);
    return;
  }
  own_seq_ = seq;
  const int64_t two_ticks = 2 * options_.tick_ns;
  while (!pending_.empty() && pending_.front().seq <= seq) {
    const int64_t latency =
        std::max<int64_t>(now_ns - pending_.front().sent_ns, 0);
    pending_.pop_front();
    latency_.Record(static_cast<uint64_t>(latency));
    Count(stats_.moves_reflected);
    if (latency > two_ticks + options_.grace_ns) {
      Count(stats_.late);
      RaiseTo(stats_.worst_late_ns, static_cast<uint64_t>(latency));
    } else if (latency > two_ticks) {
      Count(stats_.over_two_ticks);
    }
  }
}

void WorldChecker::OnOtherSeq(uint64_t id, uint32_t seq) {
  auto [it, inserted] = others_.try_emplace(id, seq);
  if (inserted) return;
  if (seq < it->second) {
    Count(stats_.seq_back);
  } else {
    it->second = seq;
  }
}

}  // namespace game
