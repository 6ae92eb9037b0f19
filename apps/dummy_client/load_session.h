// LoadSession: one DummyClient connection. It sends numbered packets (echo or
// chat) and checks every packet it gets back: echo payloads byte for byte and
// in order; chat messages per sender with no gap, reorder or duplicate.
//
// Payload of every load packet (at least kMinPayload bytes):
//   [u32 client index][u32 magic][u64 sequence][u64 send time ns][filler]
// where filler byte j is (sequence + j) & 0xFF, so any corruption shows.
//
// Thread safety: SendNext may be called from any thread (a per-session lock
// keeps sequence order equal to queue order); the hooks run on the session's
// worker; the counters read by the reporter are atomics.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_LOAD_SESSION_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_LOAD_SESSION_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "latency_histogram.h"
#include "servercore/packet_session.h"

namespace game {

enum class Mode { kEcho, kChat };

struct LoadConfig {
  std::string host = "127.0.0.1";
  int port = 7777;
  int sessions = 100;
  Mode mode = Mode::kEcho;
  int payload = 64;
  double rate = 0;  // packets/s per sending session; 0 = closed loop
  int depth = 1;    // closed loop: packets in flight per sending session
  double duration = 10;
  double warmup = 0;  // seconds of load before the measured duration
  int senders = 0;    // chat: how many sessions send (0 = all)
  int threads = 1;
  std::string json;
};

// Counters shared by all sessions of a run.
struct LoadState {
  std::atomic<bool> sending{false};
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> corrupt{0};       // wrong bytes or sizes
  std::atomic<uint64_t> out_of_order{0};  // gaps, reorders, duplicates
  std::atomic<uint64_t> unexpected{0};    // packet ids we never asked for
  std::atomic<uint64_t> disconnected{0};  // closed by the server mid-run
  std::atomic<uint64_t> refused{0};       // connections that failed
  LatencyHistogram latency;
  int64_t start_ns = 0;  // open loop: the schedule's origin
};

inline constexpr size_t kMinPayload = 24;

class LoadSession final : public servercore::PacketSession {
 public:
  LoadSession(const LoadConfig& config, LoadState& state, uint32_t index);

  // Sends the next numbered packet (C_ECHO or C_CHAT). `scheduled_ns`, when
  // not 0, is the open-loop send time that latency is measured from.
  void SendNext(int64_t scheduled_ns = 0);

  uint32_t index() const noexcept { return index_; }
  bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }
  uint64_t sent() const noexcept {
    return sent_.load(std::memory_order_acquire);
  }
  // Own packets answered (echo replies, or own chats back): the closed-loop
  // window is sent() - acked().
  uint64_t acked() const noexcept {
    return acked_.load(std::memory_order_acquire);
  }
  // Chat: messages received from the sender with client index `sender`.
  uint64_t ReceivedFrom(uint32_t sender) const noexcept {
    return received_from_[sender].load(std::memory_order_acquire);
  }

  static int64_t NowNs() noexcept;

 protected:
  void OnConnected() override;
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override;
  void OnDisconnected(servercore::DisconnectReason reason) override;

 private:
  // Checks one load payload; returns its sequence, or -1 (counted) if bad.
  int64_t Check(std::span<const std::byte> body, uint32_t expected_index);
  void OnOwnAnswer(std::span<const std::byte> body);

  const LoadConfig& config_;
  LoadState& state_;
  const uint32_t index_;
  std::mutex send_mu_;
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> acked_{0};
  std::atomic<bool> ready_{false};
  // Chat: next sequence expected from each sender, by client index.
  std::vector<std::atomic<uint64_t>> received_from_;
};

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_LOAD_SESSION_H_
