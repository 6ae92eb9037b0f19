#include "chaos.h"

#include <algorithm>
#include <cstdio>
#include <thread>

namespace chaos {
namespace {

using ull = unsigned long long;
constexpr uint64_t kFailuresShown = 30;

}  // namespace

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kFuzz:
      return "fuzz";
    case Kind::kSplit:
      return "split";
    case Kind::kStorm:
      return "storm";
    case Kind::kSlowloris:
      return "slowloris";
    case Kind::kFlood:
      return "flood";
    case Kind::kChurn:
      return "churn";
    case Kind::kTyped:
      return "typed";
  }
  return "?";
}

Rng Chaos::MakeRng(Kind kind, uint64_t thread) const {
  std::seed_seq seq{options_.seed, uint64_t{static_cast<uint64_t>(kind)},
                    thread};
  return Rng(seq);
}

void Chaos::Fail(Kind kind, const std::string& what) {
  stats(kind).failures.fetch_add(1);
  std::lock_guard lock(mu_);
  if (shown_++ < kFailuresShown) {
    std::fprintf(stderr, "chaos: FAILURE [%s] %s\n", KindName(kind),
                 what.c_str());
  }
}

uint64_t Chaos::Failures() const {
  uint64_t total = 0;
  for (const KindStats& s : stats_) total += s.failures.load();
  return total;
}

void Chaos::PrintSummary(double seconds) const {
  // What each kind's `notes` counts.
  static constexpr const char* kNotes[kKinds] = {
      "answers",        "-",     "mid-packet", "timeouts-seen",
      "nonreaders-cut", "joins", "byes"};
  std::printf("chaos: %.1f s, seed %llu, scale %.2f\n", seconds,
              static_cast<ull>(options_.seed), options_.scale);
  for (size_t k = 0; k < kKinds; ++k) {
    const KindStats& s = stats_[k];
    std::printf(
        "chaos: %-9s attacks %7llu  connect-failed %5llu  sent %7.1f MB  "
        "server-closed %7llu  checked %7llu  %s %llu  failures %llu\n",
        KindName(static_cast<Kind>(k)), static_cast<ull>(s.attacks.load()),
        static_cast<ull>(s.connect_failed.load()),
        static_cast<double>(s.bytes_sent.load()) / 1e6,
        static_cast<ull>(s.server_closed.load()),
        static_cast<ull>(s.checked.load()), kNotes[k],
        static_cast<ull>(s.notes.load()), static_cast<ull>(s.failures.load()));
  }
  std::printf("chaos: failures %llu\n", static_cast<ull>(Failures()));
  std::fflush(stdout);
}

Pacer::Pacer(double per_second)
    : period_(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(per_second > 0 ? 1 / per_second : 0))),
      next_(Clock::now()) {}

void Pacer::Wait() {
  next_ += period_;
  const auto now = Clock::now();
  if (next_ < now - std::chrono::seconds(1)) next_ = now;
  std::this_thread::sleep_until(next_);
}

size_t Scaled(double base, double scale) {
  return std::max<size_t>(1, static_cast<size_t>(base * scale + 0.5));
}

uint64_t Uniform(Rng& rng, uint64_t lo, uint64_t hi) {
  return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
}

bool Chance(Rng& rng, double p) {
  return std::uniform_real_distribution<double>(0, 1)(rng) < p;
}

Bytes RandomBytes(Rng& rng, size_t n) {
  Bytes out(n);
  for (uint8_t& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

milliseconds Seconds(double s) {
  return milliseconds(static_cast<int64_t>(s * 1000));
}

bool AwaitPacket(RawConn& conn, ServerReader& reader,
                 const std::function<bool(const ServerPacket&)>& done,
                 milliseconds timeout, bool* closed) {
  const auto deadline = Clock::now() + timeout;
  *closed = false;
  for (;;) {
    while (auto packet = reader.Next()) {
      if (done(*packet)) return true;
    }
    if (!reader.error().empty() || *closed) return false;
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    *closed = conn.Wait(reader, std::min(left, milliseconds(50))) ==
              RawConn::State::kClosed;
  }
}

bool AwaitClose(RawConn& conn, ServerReader& reader, milliseconds timeout,
                const std::function<void(const ServerPacket&)>& each) {
  bool closed = false;
  AwaitPacket(
      conn, reader,
      [&](const ServerPacket& packet) {
        each(packet);
        return false;
      },
      timeout, &closed);
  // The last bytes before the close are framed too.
  while (auto packet = reader.Next()) each(*packet);
  return closed;
}

}  // namespace chaos
