#include "load_session.h"

#include <time.h>

#include <array>
#include <cstring>

#include "../common/protocol.h"
#include "servercore/packet_framer.h"
#include "servercore/packet_writer.h"

namespace game {
namespace {

using servercore::kMaxPacketLimit;
using servercore::kPacketHeaderSize;
using servercore::LoadU32;
using servercore::LoadU64;
using servercore::MakePacket;
using servercore::PacketWriter;

constexpr uint32_t kMagic = 0x31435344;  // "DSC1"
constexpr size_t kFillerOffset = 24;
constexpr std::byte kPing[4] = {std::byte{'p'}, std::byte{'i'}, std::byte{'n'},
                                std::byte{'g'}};

// pattern[i] == i & 0xFF: the filler of sequence s starts at pattern[s & 0xFF].
const std::array<std::byte, 65536 + 256>& Pattern() {
  static const auto pattern = [] {
    std::array<std::byte, 65536 + 256> p{};
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::byte>(i);
    return p;
  }();
  return pattern;
}

}  // namespace

LoadSession::LoadSession(const LoadConfig& config, LoadState& state,
                         uint32_t index)
    : PacketSession(kMaxPacketLimit),
      config_(config),
      state_(state),
      index_(index),
      received_from_(config.mode == Mode::kChat
                         ? static_cast<size_t>(config.sessions)
                         : 0) {}

int64_t LoadSession::NowNs() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

void LoadSession::OnConnected() {
  // A ping: once its echo is back the server has this session in room 0, so
  // no chat sent after every ping returned can miss it.
  Send(MakePacket(kCEcho, kPing));
}

void LoadSession::SendNext(int64_t scheduled_ns) {
  const auto payload = static_cast<size_t>(config_.payload);
  std::lock_guard lock(send_mu_);
  const uint64_t seq = sent_.load(std::memory_order_relaxed);
  PacketWriter packet(config_.mode == Mode::kEcho ? kCEcho : kCChat, payload);
  packet.WriteU32(index_)
      .WriteU32(kMagic)
      .WriteU64(seq)
      .WriteU64(
          static_cast<uint64_t>(scheduled_ns != 0 ? scheduled_ns : NowNs()))
      .WriteBytes(
          std::span(Pattern()).subspan(seq & 0xFF, payload - kFillerOffset));
  if (Send(packet.Finish())) {
    sent_.store(seq + 1, std::memory_order_release);
    state_.sent.fetch_add(1, std::memory_order_relaxed);
    state_.bytes_sent.fetch_add(kPacketHeaderSize + payload,
                                std::memory_order_relaxed);
  }
}

int64_t LoadSession::Check(std::span<const std::byte> body,
                           uint32_t expected_index) {
  const auto payload = static_cast<size_t>(config_.payload);
  if (body.size() != payload || LoadU32(body.data()) != expected_index ||
      LoadU32(body.data() + 4) != kMagic) {
    state_.corrupt.fetch_add(1, std::memory_order_relaxed);
    return -1;
  }
  const uint64_t seq = LoadU64(body.data() + 8);
  if (std::memcmp(body.data() + kFillerOffset, Pattern().data() + (seq & 0xFF),
                  payload - kFillerOffset) != 0) {
    state_.corrupt.fetch_add(1, std::memory_order_relaxed);
    return -1;
  }
  return static_cast<int64_t>(seq);
}

void LoadSession::OnOwnAnswer(std::span<const std::byte> body) {
  const int64_t sent_ns = static_cast<int64_t>(LoadU64(body.data() + 16));
  const int64_t latency = NowNs() - sent_ns;
  state_.latency.Record(latency > 0 ? static_cast<uint64_t>(latency) : 0);
  acked_.fetch_add(1, std::memory_order_release);
  // Closed loop: each answer lets one more packet go.
  if (config_.rate == 0 && state_.sending.load(std::memory_order_relaxed)) {
    SendNext();
  }
}

void LoadSession::OnRecvPacket(uint16_t id,
                               std::span<const std::byte> payload) {
  if (id == kSEcho && payload.size() == sizeof(kPing) &&
      std::memcmp(payload.data(), kPing, sizeof(kPing)) == 0) {
    ready_.store(true, std::memory_order_release);
    return;
  }
  state_.received.fetch_add(1, std::memory_order_relaxed);
  state_.bytes_received.fetch_add(kPacketHeaderSize + payload.size(),
                                  std::memory_order_relaxed);
  if (id == kSEcho && config_.mode == Mode::kEcho) {
    const int64_t seq = Check(payload, index_);
    if (seq < 0) return;
    if (static_cast<uint64_t>(seq) != acked()) {
      state_.out_of_order.fetch_add(1, std::memory_order_relaxed);
    }
    OnOwnAnswer(payload);
  } else if (id == kSChat && config_.mode == Mode::kChat &&
             payload.size() >= kChatSenderSize + kMinPayload) {
    const std::span<const std::byte> body = payload.subspan(kChatSenderSize);
    const uint32_t sender = LoadU32(body.data());
    if (sender >= received_from_.size()) {
      state_.corrupt.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const int64_t seq = Check(body, sender);
    if (seq < 0) return;
    std::atomic<uint64_t>& next = received_from_[sender];
    if (static_cast<uint64_t>(seq) != next.load(std::memory_order_relaxed)) {
      state_.out_of_order.fetch_add(1, std::memory_order_relaxed);
    }
    next.store(static_cast<uint64_t>(seq) + 1, std::memory_order_release);
    if (sender == index_) OnOwnAnswer(body);
  } else {
    state_.unexpected.fetch_add(1, std::memory_order_relaxed);
  }
}

void LoadSession::OnDisconnected(servercore::DisconnectReason) {
  if (!state_.stopping.load(std::memory_order_acquire)) {
    state_.disconnected.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace game
