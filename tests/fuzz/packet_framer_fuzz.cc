// Differential fuzzer for PacketFramer + RecvBuffer.
//
// The same byte stream is framed two ways: all at once, and the way a session
// receives it (pieces through a RecvBuffer, framed, consumed and Clean()ed
// after each read, with the handler sometimes closing early and framing
// resuming on the next call). Both must deliver the identical packet sequence,
// stop at the same offset and report the same error; any difference, or a
// stall with a full buffer, traps.
//
// Input layout (all derived from the fuzzer's bytes):
//   [0..1]  max_packet = 4 + u16 % 65532, so 4..65535
//   [2]     capacity slack: RecvBuffer capacity = max_packet + byte
//   [3]     piece-size scale: pieces are 1..2^(byte % 17) bytes
//   [4..7]  seed of the piece sizes and early stops
//   [8..]   the stream
//
// Under ASan the RecvBuffer bytes outside Data() are poisoned while framing,
// so the framer reading past the span it was given is caught even though the
// bytes are inside the buffer's allocation.
//
// Build: the `fuzz` preset, or by hand:
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//     src/recv_buffer.cc tests/fuzz/packet_framer_fuzz.cc -o packet_framer_fuzz
#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "servercore/packet_framer.h"
#include "servercore/recv_buffer.h"

namespace servercore {
namespace {

constexpr size_t kConfigSize = 8;

struct Packet {
  uint16_t id;
  std::vector<std::byte> payload;
  bool operator==(const Packet&) const = default;
};

struct Outcome {
  std::vector<Packet> packets;
  size_t consumed = 0;
  FrameError error = FrameError::kNone;
  bool operator==(const Outcome&) const = default;
};

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void Record(std::vector<Packet>& packets, const PacketView& view) {
  packets.push_back({view.id, {view.payload.begin(), view.payload.end()}});
}

// xorshift64: piece sizes and early stops, reproducible from the input.
class Rng {
 public:
  explicit Rng(uint32_t seed) : state_(seed | (uint64_t{1} << 32)) {}
  uint64_t Next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return state_;
  }

 private:
  uint64_t state_;
};

// While alive, only `buffer.Data()` is addressable under ASan.
class PoisonOutsideData {
 public:
  explicit PoisonOutsideData(RecvBuffer& buffer)
      : end_(buffer.WritePos() + buffer.FreeSize()),
        begin_(end_ - buffer.Capacity()) {
    ASAN_POISON_MEMORY_REGION(begin_,
                              static_cast<size_t>(buffer.ReadPos() - begin_));
    ASAN_POISON_MEMORY_REGION(buffer.WritePos(), buffer.FreeSize());
  }
  ~PoisonOutsideData() {
    ASAN_UNPOISON_MEMORY_REGION(begin_, static_cast<size_t>(end_ - begin_));
  }
  PoisonOutsideData(const PoisonOutsideData&) = delete;
  PoisonOutsideData& operator=(const PoisonOutsideData&) = delete;

 private:
  std::byte* const end_;
  std::byte* const begin_;
};

Outcome FrameWhole(const PacketFramer& framer,
                   std::span<const std::byte> stream) {
  Outcome outcome;
  const FrameResult result = framer.Frame(
      stream, [&](const PacketView& p) { Record(outcome.packets, p); });
  Check(result.packets == outcome.packets.size());
  Check(result.consumed <= stream.size());
  outcome.consumed = result.consumed;
  outcome.error = result.error;
  return outcome;
}

Outcome FeedInPieces(const PacketFramer& framer,
                     std::span<const std::byte> stream, size_t capacity,
                     size_t max_piece, Rng& rng) {
  RecvBuffer buffer(capacity);
  Outcome outcome;
  size_t fed = 0;
  bool stopped_early = false;
  while (fed < stream.size() || stopped_early) {
    const size_t piece = std::min(
        {stream.size() - fed, buffer.FreeSize(), 1 + rng.Next() % max_piece});
    // Capacity >= max_packet: a full buffer always holds a whole packet or a
    // bad header, so it is never full here unless the framer stalled.
    Check(piece > 0 || stopped_early);
    std::memcpy(buffer.WritePos(), stream.data() + fed, piece);
    buffer.OnWrite(piece);
    fed += piece;

    const uint64_t stop_mask = rng.Next();  // a bit per packet: 1 in 8 stops
    size_t index = 0;
    stopped_early = false;
    FrameResult result;
    {
      PoisonOutsideData poison(buffer);
      result = framer.Frame(buffer.Data(), [&](const PacketView& p) {
        Record(outcome.packets, p);
        stopped_early = ((stop_mask >> (3 * (index++ % 21))) & 7) == 0;
        return !stopped_early;
      });
    }
    Check(result.consumed <= buffer.DataSize());
    buffer.OnRead(result.consumed);
    outcome.consumed += result.consumed;
    if (result.error != FrameError::kNone) {
      Check(!stopped_early);
      outcome.error = result.error;
      return outcome;
    }
    buffer.Clean();
    Check(buffer.FreeSize() == buffer.Capacity() - buffer.DataSize());
  }
  Check(outcome.consumed + buffer.DataSize() == stream.size());
  return outcome;
}

// An independent, obviously-correct walk of the stream: the packets whole
// framing must find.
void CheckAgainstOracle(std::span<const std::byte> stream, size_t max_packet,
                        const Outcome& whole) {
  size_t pos = 0;
  size_t count = 0;
  FrameError error = FrameError::kNone;
  while (stream.size() - pos >= 2) {
    const size_t packet_size = std::to_integer<size_t>(stream[pos]) |
                               std::to_integer<size_t>(stream[pos + 1]) << 8;
    if (packet_size < 4) {
      error = FrameError::kSizeTooSmall;
      break;
    }
    if (packet_size > max_packet) {
      error = FrameError::kSizeTooLarge;
      break;
    }
    if (stream.size() - pos < packet_size) break;
    Check(count < whole.packets.size());
    const Packet& packet = whole.packets[count];
    Check(packet.id == (std::to_integer<unsigned>(stream[pos + 2]) |
                        std::to_integer<unsigned>(stream[pos + 3]) << 8));
    Check(packet.payload.size() == packet_size - 4);
    Check(std::equal(packet.payload.begin(), packet.payload.end(),
                     stream.begin() + static_cast<std::ptrdiff_t>(pos + 4)));
    ++count;
    pos += packet_size;
  }
  Check(count == whole.packets.size());
  Check(pos == whole.consumed);
  Check(error == whole.error);
}

int FuzzOne(std::span<const std::byte> input) {
  if (input.size() < kConfigSize) return 0;
  const size_t max_packet = 4 + LoadU16(input.data()) % 65532u;
  const size_t capacity = max_packet + std::to_integer<size_t>(input[2]);
  const size_t max_piece = size_t{1}
                           << (std::to_integer<size_t>(input[3]) % 17);
  Rng rng(LoadU32(input.data() + 4));
  const std::span<const std::byte> stream = input.subspan(kConfigSize);

  const PacketFramer framer(max_packet);
  const Outcome whole = FrameWhole(framer, stream);
  CheckAgainstOracle(stream, max_packet, whole);
  const Outcome pieces = FeedInPieces(framer, stream, capacity, max_piece, rng);
  Check(whole == pieces);
  return 0;
}

}  // namespace
}  // namespace servercore

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return servercore::FuzzOne({reinterpret_cast<const std::byte*>(data), size});
}
