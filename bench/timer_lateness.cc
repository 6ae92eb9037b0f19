// timer_lateness: how late a JobQueue timer fires when the worker that fires
// it is busy. It serves GameServer's echo and room-0 chat (docs/PROTOCOL.md
// ids 1, 2, 5, 6; every session in one room, each S_CHAT built once and
// queued to all) so DummyClient can load it, ticks one JobQueue with
// DoTimerEvery like a game room, and on SIGINT or SIGTERM prints the
// lateness of every tick (run time of the tick's job minus its exact due
// time, due times being the first one plus whole periods).
//
//   taskset -c 0 timer_lateness --threads 1 --hz 20 &
//   taskset -c 1 DummyClient --port PORT --mode chat --sessions 100
//       --senders 4 --payload 64 --depth 16 --duration 10   (one line)
//
// scripts/timer_lateness.sh runs exactly that, idle and under load.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "servercore/job_queue.h"
#include "servercore/packet_session.h"
#include "servercore/packet_writer.h"
#include "servercore/service.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint16_t kCEcho = 1, kSEcho = 2, kCChat = 5, kSChat = 6;

struct Room {
  std::mutex mu;
  std::set<servercore::SessionRef> sessions;
};

class RoomSession : public servercore::PacketSession {
 public:
  explicit RoomSession(Room& room) : room_(room) {}

 protected:
  void OnCreated() override {
    std::lock_guard lock(room_.mu);
    room_.sessions.insert(shared_from_this());
  }
  void OnDisconnected(servercore::DisconnectReason) override {
    std::lock_guard lock(room_.mu);
    room_.sessions.erase(shared_from_this());
  }
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    if (id == kCEcho) {
      Send(servercore::MakePacket(kSEcho, payload));
    } else if (id == kCChat) {
      servercore::PacketWriter chat(kSChat, 8 + payload.size());
      chat.WriteU64(this->id()).WriteBytes(payload);
      const servercore::SendBufferRef buffer = chat.Finish();
      std::lock_guard lock(room_.mu);
      for (const servercore::SessionRef& member : room_.sessions) {
        member->Send(buffer);
      }
    } else {
      ProtocolError("packet id not accepted");
    }
  }

 private:
  Room& room_;
};

// A room's clock: records how late each tick ran. Only its own jobs touch
// `lateness_`; the main thread reads it after the service has stopped.
class Ticker : public servercore::JobQueue {
 public:
  void Start(std::chrono::milliseconds period) {
    period_ = period;
    first_due_ = Clock::now() + period;
    DoTimerEvery(period, [this] { Tick(); });
  }
  std::vector<double> LatenessMs() const { return lateness_ms_; }

 private:
  void Tick() {
    const Clock::time_point now = Clock::now();
    // The first due time not after now: missed periods are skipped.
    const auto periods = (now - first_due_) / period_;
    const Clock::time_point due = first_due_ + periods * period_;
    lateness_ms_.push_back(
        std::chrono::duration<double, std::milli>(now - due).count());
  }

  std::chrono::milliseconds period_{};
  Clock::time_point first_due_{};
  std::vector<double> lateness_ms_;
};

int Flag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

double Quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto at =
      static_cast<size_t>(q * static_cast<double>(values.size() - 1));
  return values[at];
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = Flag(argc, argv, "--threads", 1);
  const int hz = std::max(1, Flag(argc, argv, "--hz", 20));

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Room room;
  servercore::ServerService server(
      servercore::ServiceOptions{.worker_threads = threads},
      [&room] { return std::make_shared<RoomSession>(room); });
  std::error_code error = server.Start();
  if (!error) error = server.Listen("127.0.0.1", 0);
  if (error) {
    std::fprintf(stderr, "timer_lateness: %s\n", error.message().c_str());
    return 1;
  }
  auto ticker = std::make_shared<Ticker>();
  ticker->Start(std::chrono::milliseconds(1000 / hz));
  std::printf("listening on 127.0.0.1:%u\n", unsigned{server.port()});
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server.Stop();
  const std::vector<double> lateness = ticker->LatenessMs();
  std::printf(
      "ticks %zu at %d Hz | lateness ms p50 %.3f p99 %.3f max %.3f | "
      "deliveries %llu\n",
      lateness.size(), hz, Quantile(lateness, 0.5), Quantile(lateness, 0.99),
      lateness.empty() ? 0.0
                       : *std::max_element(lateness.begin(), lateness.end()),
      static_cast<unsigned long long>(server.GetStats().packets_out));
  return 0;
}
