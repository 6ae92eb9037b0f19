// KeepAliveSweep: DummyClient's main thread calls Tick() in every loop it
// waits in; at most every 100 ms (or a quarter of --keepalive, if shorter) it
// lets each session send its C_PING if it has been silent for --keepalive
// seconds (LoadSession::KeepAlive), so the server's --idle-timeout never
// closes a session that only listens.
//
// Thread safety: Distinct objects: Safe. Shared objects: Unsafe.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_KEEPALIVE_SWEEP_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_KEEPALIVE_SWEEP_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "load_session.h"

namespace game {

class KeepAliveSweep {
 public:
  // Borrows `sessions`, which may grow meanwhile (on this thread).
  KeepAliveSweep(const std::vector<std::shared_ptr<LoadSession>>& sessions,
                 double keepalive_s)
      : sessions_(sessions),
        period_ns_(std::min<int64_t>(
            100'000'000, static_cast<int64_t>(keepalive_s * 0.25e9))) {}

  void Tick() {
    const int64_t now = LoadSession::NowNs();
    if (now < next_ns_) return;
    next_ns_ = now + period_ns_;
    for (const auto& s : sessions_) s->KeepAlive(now);
  }

 private:
  const std::vector<std::shared_ptr<LoadSession>>& sessions_;
  const int64_t period_ns_;
  int64_t next_ns_ = 0;
};

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_KEEPALIVE_SWEEP_H_
