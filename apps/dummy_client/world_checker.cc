#include "world_checker.h"

#include <algorithm>
#include <vector>

#include "host_list.h"

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

void WorldChecker::Violate(std::atomic<uint64_t>& counter) {
  Count(counter);
  ++violations_;
}

size_t WorldChecker::pending_moves() const noexcept {
  size_t pending = pending_.size();
  for (uint32_t i = 0; i < peer_seen_.size(); ++i) {
    const uint32_t index = options_.room_first + i;
    if (index == options_.self_index) continue;
    const uint32_t last = options_.moves->last(index);
    if (last > peer_seen_[i]) pending += last - peer_seen_[i];
  }
  return pending;
}

void WorldChecker::OnMoveSent(uint32_t seq, int64_t now_ns) {
  if (!in_world_) {
    in_world_ = true;
    need_full_ = true;
    entered_ns_ = now_ns;
  }
  last_sent_ = seq;
  pending_.push_back({seq, now_ns});
}

void WorldChecker::OnJoined(uint32_t room) {
  if (in_full_) CloseFullRun();
  room_ = room;
  have_tick_ = false;
  tick_clock_.Restart();
  // The members of the room left behind send us no `gone` any more.
  others_.clear();
  if (in_world_) need_full_ = true;
}

bool WorldChecker::AcceptTyped(uint16_t id) {
  if (in_world_ || id == pb::PACKET_ID_S_PONG || id == pb::PACKET_ID_S_BYE) {
    return true;
  }
  Violate(stats_.unsolicited);
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
    Violate(stats_.wrong_room);
    return;
  }
  if (!snapshot.full() && snapshot.entities_size() == 0) {
    Violate(stats_.empty_delta);
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
      full_arrived_ns_ = now_ns;
      self_in_full_ = false;
      peer_in_full_.assign(peer_seen_.size(), false);
    } else {
      Violate(stats_.not_full_first);
    }
  }
  if (have_tick_ && snapshot.tick() < last_tick_) Violate(stats_.tick_back);
  last_tick_ =
      have_tick_ ? std::max(last_tick_, snapshot.tick()) : snapshot.tick();
  have_tick_ = true;
  if (options_.tick_ns == 0 && !snapshot.full()) {
    tick_clock_.Observe(snapshot.tick(), now_ns);
    if (const auto period = tick_clock_.PeriodNs()) {
      // The drain waits by the longest period any session measured.
      RaiseTo(stats_.learned_tick_ns, static_cast<uint64_t>(*period));
    }
    if (tick_clock_.Known()) JudgeUnjudged();
  }

  std::vector<uint64_t> gone;
  for (const pb::Entity& e : snapshot.entities()) {
    if (e.gone()) gone.push_back(e.session_id());
  }
  std::sort(gone.begin(), gone.end());
  if (!self_known_) {
    // First, so that every other entity is known to be on our node or not.
    for (const pb::Entity& e : snapshot.entities()) {
      if (!e.gone() && IsSelf(e)) {
        self_known_ = true;
        self_id_ = e.session_id();
        break;
      }
    }
  }
  for (const pb::Entity& e : snapshot.entities()) {
    if (e.gone()) {
      others_.erase(e.session_id());
      continue;
    }
    if (std::binary_search(gone.begin(), gone.end(), e.session_id())) {
      Violate(stats_.gone_and_present);
    }
    if (self_known_ && e.session_id() == self_id_) {
      if (in_full_) self_in_full_ = true;
      // (A seq never sent is future_seq's, or own_seq_back's if 0.)
      if (e.last_seq() >= 1 && e.last_seq() <= last_sent_ &&
          !(path_.At(e.last_seq()) == Position{e.x(), e.y()})) {
        Violate(stats_.wrong_position);
      }
      OnOwnSeq(e.last_seq(), now_ns);
    } else {
      OnOtherSeq(e, now_ns);
    }
  }
}

void WorldChecker::Finish() {
  if (in_full_) CloseFullRun();
  JudgeUnjudged();
  Count(stats_.not_judged, unjudged_.size());
  unjudged_.clear();
}

std::optional<int64_t> WorldChecker::tick_ns() const noexcept {
  if (options_.tick_ns > 0) return options_.tick_ns;
  return tick_clock_.PeriodNs();
}

void WorldChecker::OnShown(const Shown& shown) {
  if (options_.tick_ns > 0 || tick_clock_.Known()) {
    Judge(shown, *tick_ns());
    return;
  }
  if (unjudged_.size() < kMaxUnjudged) {
    unjudged_.push_back(shown);
    if (unjudged_.size() == kMaxUnjudged) {
      JudgeUnjudged();  // if a period was measured
      if (!unjudged_.empty()) {
        std::make_heap(unjudged_.begin(), unjudged_.end(), LaterThan);
      }
    }
    return;
  }
  // Full, and no period measured yet: keep the latest, and one (this one
  // or the least late kept) goes unjudged.
  Count(stats_.not_judged);
  if (!LaterThan(shown, unjudged_.front())) return;
  std::pop_heap(unjudged_.begin(), unjudged_.end(), LaterThan);
  unjudged_.back() = shown;
  std::push_heap(unjudged_.begin(), unjudged_.end(), LaterThan);
}

void WorldChecker::JudgeUnjudged() {
  const auto period = tick_ns();
  if (!period) return;
  for (const Shown& shown : unjudged_) Judge(shown, *period);
  unjudged_.clear();
}

void WorldChecker::Judge(const Shown& shown, int64_t tick_ns) {
  const int64_t two_ticks = 2 * tick_ns;
  const bool late =
      shown.latency_ns > two_ticks + options_.grace_ns + shown.extra_grace_ns;
  if (shown.kind == ShownKind::kMissing) {
    if (late) Violate(stats_.missing_in_full);
    return;
  }
  const bool peer = shown.kind == ShownKind::kPeer;
  if (late) {
    Violate(peer ? stats_.peer_late : stats_.late);
    RaiseTo(peer ? stats_.worst_peer_late_ns : stats_.worst_late_ns,
            static_cast<uint64_t>(shown.latency_ns));
  } else if (shown.latency_ns > two_ticks) {
    Count(peer ? stats_.peer_over_two_ticks : stats_.over_two_ticks);
  }
}

void WorldChecker::CloseFullRun() {
  in_full_ = false;
  if (!self_in_full_) Violate(stats_.not_full_first);
  CheckFullListsMembers();
}

void WorldChecker::CheckFullListsMembers() {
  const size_t host = HostOf(options_.self_index, options_.hosts);
  for (uint32_t i = 0; i < peer_in_full_.size(); ++i) {
    const uint32_t index = options_.room_first + i;
    if (peer_in_full_[i] || index == options_.self_index ||
        HostOf(index, options_.hosts) != host ||
        options_.moves->last(index) == 0) {
      continue;
    }
    // Its first move is in the world from when it was sent; one whose time
    // is gone was sent before the oldest still held, long ago.
    const auto entered = options_.moves->SentByAt(index, 1);
    if (!entered) continue;
    OnShown({.latency_ns = full_arrived_ns_ - *entered,
             .extra_grace_ns = 0,
             .kind = ShownKind::kMissing});
  }
}

bool WorldChecker::IsSelf(const pb::Entity& entity) const {
  return entity.last_seq() >= 1 && entity.last_seq() <= last_sent_ &&
         path_.At(entity.last_seq()) == Position{entity.x(), entity.y()};
}

void WorldChecker::OnOwnSeq(uint32_t seq, int64_t now_ns) {
  if (seq < own_seq_) {
    Violate(stats_.own_seq_back);
    return;
  }
  if (seq > last_sent_) {
    Violate(stats_.future_seq);
    return;
  }
  own_seq_ = seq;
  while (!pending_.empty() && pending_.front().seq <= seq) {
    const int64_t latency =
        std::max<int64_t>(now_ns - pending_.front().sent_ns, 0);
    pending_.pop_front();
    latency_.Record(static_cast<uint64_t>(latency));
    Count(stats_.moves_reflected);
    OnShown(
        {.latency_ns = latency, .extra_grace_ns = 0, .kind = ShownKind::kOwn});
  }
}

void WorldChecker::OnOtherSeq(const pb::Entity& entity, int64_t now_ns) {
  const uint32_t seq = entity.last_seq();
  auto [it, inserted] =
      others_.try_emplace(entity.session_id(), Other{seq, kNotPeer});
  Other& other = it->second;
  if (inserted) {
    other.peer = FindPeer(entity);  // by its position
  } else if (seq < other.seq) {
    // Once per step back: from here on this is the entity's seq (counting
    // against the old high would count every later snapshot again). Only
    // a member of this run is known never to send a lower seq.
    if (other.peer != kNotPeer) Violate(stats_.seq_back);
    other.seq = seq;
  } else {
    other.seq = seq;
    // A member of this run known by its id: where its move of this seq put
    // it (one cos and one sin per entity shown).
    if (other.peer != kNotPeer && seq >= 1 &&
        !(MovePath(options_.path_base + options_.room_first + other.peer)
              .At(seq) == Position{entity.x(), entity.y()})) {
      Violate(stats_.wrong_position);
    }
  }
  if (other.peer == kNotPeer) return;
  if (in_full_) peer_in_full_[other.peer] = true;
  // (A step back shows nothing new: OnPeerSeq passes it by.)
  OnPeerSeq(other.peer, entity.session_id(), seq, now_ns);
}

uint32_t WorldChecker::FindPeer(const pb::Entity& entity) const {
  if (peer_seen_.empty() || entity.last_seq() < 1) return kNotPeer;
  const Position at{entity.x(), entity.y()};
  // The members whose path has this radius: path numbers residue + k *
  // kRadii (path_base + index; no wrap, see WorldCheckerOptions).
  const uint32_t residue = MovePath::IndexResidue(at);
  const uint32_t first = options_.path_base + options_.room_first;
  const uint64_t end = uint64_t{first} + options_.room_count;
  uint64_t path =
      first + (residue + MovePath::kRadii - first % MovePath::kRadii) %
                  MovePath::kRadii;
  for (; path < end; path += MovePath::kRadii) {
    const auto i = static_cast<uint32_t>(path - options_.path_base);
    if (i != options_.self_index &&
        entity.last_seq() <= options_.moves->last(i) &&
        MovePath(static_cast<uint32_t>(path)).At(entity.last_seq()) == at) {
      return i - options_.room_first;
    }
  }
  return kNotPeer;
}

void WorldChecker::OnPeerSeq(uint32_t peer, uint64_t id, uint32_t seq,
                             int64_t now_ns) {
  uint32_t& seen = peer_seen_[peer];
  if (seq <= seen) return;
  const uint32_t index = options_.room_first + peer;
  // The oldest move this snapshot shows for the first time was due to
  // show two ticks after it was sent, or after we entered the world. One so
  // old that its time is gone is at least as late as the oldest held.
  if (const auto sent = options_.moves->SentByAt(index, seen + 1)) {
    const int64_t latency = now_ns - std::max(*sent, entered_ns_);
    const bool remote = self_known_ && (id >> 48) != (self_id_ >> 48);
    OnShown({.latency_ns = latency,
             .extra_grace_ns = remote ? options_.remote_grace_ns : 0,
             .kind = ShownKind::kPeer});
  }
  Count(stats_.peer_moves_seen, seq - seen);
  seen = seq;
}

}  // namespace game
