#include "tests/apps/app_test_util.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace servercore::test {

bool GameServer::Start(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"--host", "127.0.0.1",        "--port",
                                   "0",      "--stats-interval", "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  if (!process_.Start(GAME_SERVER_PATH, args)) return false;
  constexpr std::string_view kListening = "listening on 127.0.0.1:";
  if (!process_.WaitForOutput(std::string(kListening), Seconds(10))) {
    return false;
  }
  // The line may still be arriving: wait for its end.
  const auto deadline = std::chrono::steady_clock::now() + Seconds(5);
  for (;;) {
    const std::string out = process_.Output();
    const size_t at = out.find(kListening) + kListening.size();
    const size_t eol = out.find('\n', at);
    if (eol != std::string::npos) {
      unsigned port = 0;
      auto [ptr, ec] = std::from_chars(out.data() + at, out.data() + eol, port);
      if (ec != std::errc() || ptr != out.data() + eol || port == 0 ||
          port > 65535) {
        return false;
      }
      port_ = static_cast<uint16_t>(port);
      return true;
    }
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::optional<int> GameServer::Stop(int sig,
                                    std::chrono::milliseconds timeout) {
  process_.Signal(sig);
  return process_.Wait(timeout);
}

std::string TempPath(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string test = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : test) {
    if (c == '/') c = '_';
  }
  return ::testing::TempDir() + "/" + test + "." + std::to_string(::getpid()) +
         "." + name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<uint64_t> NumbersAfter(std::string_view text,
                                   std::string_view label) {
  const auto part_of_word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' ||
           c == '-';
  };
  std::vector<uint64_t> numbers;
  for (size_t at = text.find(label); at != std::string_view::npos;
       at = text.find(label, at + 1)) {
    if (at > 0 && part_of_word(text[at - 1])) continue;
    size_t digits = at + label.size();
    const size_t spaces = digits;
    while (digits < text.size() && text[digits] == ' ') ++digits;
    if (digits == spaces) continue;
    uint64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [next, error] =
        std::from_chars(text.data() + digits, end, value);
    if (error == std::errc()) numbers.push_back(value);
  }
  return numbers;
}

bool AnyAbove(const std::vector<uint64_t>& numbers, uint64_t bound) {
  return std::ranges::any_of(numbers, [&](uint64_t n) { return n > bound; });
}

std::string_view LineStartingWith(std::string_view text,
                                  std::string_view prefix) {
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    if (line.starts_with(prefix)) return line;
    start = end + 1;
  }
  return {};
}

std::vector<std::byte> Bytes(std::string_view text) {
  std::vector<std::byte> out(text.size());
  if (!text.empty()) std::memcpy(out.data(), text.data(), text.size());
  return out;
}

std::string Text(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::vector<std::byte> U32(uint32_t value) {
  std::vector<std::byte> out(4);
  for (size_t i = 0; i < 4; ++i) out[i] = std::byte((value >> (8 * i)) & 0xFF);
  return out;
}

std::vector<std::byte> RawHeader(uint16_t size, uint16_t id) {
  return {std::byte(size & 0xFF), std::byte(size >> 8), std::byte(id & 0xFF),
          std::byte(id >> 8)};
}

void Append(std::vector<std::byte>& out, std::span<const std::byte> more) {
  out.insert(out.end(), more.begin(), more.end());
}

uint32_t ReadU32(std::span<const std::byte> p, size_t offset) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    v |= std::to_integer<uint32_t>(p[offset + i]) << (8 * i);
  }
  return v;
}

uint64_t ReadU64(std::span<const std::byte> p, size_t offset) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) {
    v |= std::to_integer<uint64_t>(p[offset + i]) << (8 * i);
  }
  return v;
}

namespace {

void AppendVarint(std::vector<std::byte>& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(std::byte((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(std::byte(value));
}

// Reads a varint at `at`; false if the message ends inside it.
bool ReadVarint(std::span<const std::byte> p, size_t& at, uint64_t& value) {
  value = 0;
  for (unsigned shift = 0; shift < 64 && at < p.size(); shift += 7) {
    const auto b = std::to_integer<uint64_t>(p[at++]);
    value |= (b & 0x7F) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

std::vector<std::byte> ProtoVarint(uint32_t field, uint64_t value) {
  std::vector<std::byte> out;
  AppendVarint(out, uint64_t{field} << 3);
  AppendVarint(out, value);
  return out;
}

std::vector<std::byte> ProtoFloat(uint32_t field, float value) {
  std::vector<std::byte> out;
  AppendVarint(out, (uint64_t{field} << 3) | 5);
  Append(out, U32(std::bit_cast<uint32_t>(value)));
  return out;
}

std::optional<std::map<uint32_t, uint64_t>> ParseVarintFields(
    std::span<const std::byte> message) {
  std::map<uint32_t, uint64_t> fields;
  size_t at = 0;
  while (at < message.size()) {
    uint64_t tag = 0, value = 0;
    if (!ReadVarint(message, at, tag) || (tag & 7) != 0) return std::nullopt;
    if (!ReadVarint(message, at, value)) return std::nullopt;
    fields[static_cast<uint32_t>(tag >> 3)] = value;
  }
  return fields;
}

namespace {

// One field of a protobuf message: its number, wire type, and value (a
// varint's or fixed32's value, or a length-delimited field's bytes).
struct ProtoField {
  uint32_t number = 0;
  uint32_t wire_type = 0;
  uint64_t value = 0;
  std::span<const std::byte> bytes;
};

bool ReadField(std::span<const std::byte> message, size_t& at,
               ProtoField& field) {
  uint64_t tag = 0;
  if (!ReadVarint(message, at, tag)) return false;
  field.number = static_cast<uint32_t>(tag >> 3);
  field.wire_type = static_cast<uint32_t>(tag & 7);
  switch (field.wire_type) {
    case 0:
      return ReadVarint(message, at, field.value);
    case 1:  // fixed64
      if (message.size() - at < 8) return false;
      at += 8;
      return true;
    case 2: {
      uint64_t length = 0;
      if (!ReadVarint(message, at, length) || message.size() - at < length) {
        return false;
      }
      field.bytes = message.subspan(at, length);
      at += length;
      return true;
    }
    case 5:
      if (message.size() - at < 4) return false;
      field.value = ReadU32(message, at);
      at += 4;
      return true;
    default:
      return false;
  }
}

std::optional<SnapshotEntity> ParseEntity(std::span<const std::byte> message) {
  SnapshotEntity entity;
  size_t at = 0;
  ProtoField f;
  while (at < message.size()) {
    if (!ReadField(message, at, f)) return std::nullopt;
    const auto fixed = static_cast<uint32_t>(f.value);
    if (f.number == 1 && f.wire_type == 0) entity.session_id = f.value;
    if (f.number == 2 && f.wire_type == 5)
      entity.x = std::bit_cast<float>(fixed);
    if (f.number == 3 && f.wire_type == 5)
      entity.y = std::bit_cast<float>(fixed);
    if (f.number == 4 && f.wire_type == 0) entity.last_seq = fixed;
    if (f.number == 5 && f.wire_type == 0) entity.gone = f.value != 0;
  }
  return entity;
}

}  // namespace

const SnapshotEntity* Snapshot::Find(uint64_t session_id) const {
  for (const SnapshotEntity& entity : entities) {
    if (entity.session_id == session_id) return &entity;
  }
  return nullptr;
}

std::optional<Snapshot> ParseSnapshot(std::span<const std::byte> payload) {
  Snapshot snapshot;
  size_t at = 0;
  ProtoField f;
  while (at < payload.size()) {
    if (!ReadField(payload, at, f)) return std::nullopt;
    if (f.number == 1 && f.wire_type == 0) {
      snapshot.room = static_cast<uint32_t>(f.value);
    } else if (f.number == 2 && f.wire_type == 0) {
      snapshot.tick = f.value;
    } else if (f.number == 4 && f.wire_type == 0) {
      snapshot.full = f.value != 0;
    } else if (f.number == 3 && f.wire_type == 2) {
      auto entity = ParseEntity(f.bytes);
      if (!entity) return std::nullopt;
      snapshot.entities.push_back(*entity);
    }
  }
  return snapshot;
}

std::vector<std::byte> MovePayload(float x, float y, uint32_t seq) {
  auto move = ProtoFloat(1, x);
  Append(move, ProtoFloat(2, y));
  Append(move, ProtoVarint(3, seq));
  return move;
}

int ListenOnLoopback(uint16_t* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

bool ConnectReady(TestClient& client, uint16_t port) {
  if (!client.Connect(port)) return false;
  const std::vector<std::byte> ping = Bytes("ready?");
  if (!client.SendPacket(kCEcho, ping)) return false;
  auto reply = client.ReadPacket(Seconds(10));
  return reply && reply->id == kSEcho && reply->payload == ping;
}

std::optional<uint32_t> Join(TestClient& client, uint32_t room) {
  if (!client.SendPacket(kCJoin, U32(room))) return std::nullopt;
  auto reply = client.ReadPacket(Seconds(10));
  if (!reply || reply->id != kSJoin || reply->payload.size() != 8 ||
      ReadU32(reply->payload, 0) != room) {
    return std::nullopt;
  }
  return ReadU32(reply->payload, 4);
}

std::optional<uint64_t> ChatForId(TestClient& client,
                                  std::span<const std::byte> message) {
  if (!client.SendPacket(kCChat, message)) return std::nullopt;
  auto reply = client.ReadPacket(Seconds(10));
  if (!reply || reply->id != kSChat ||
      reply->payload.size() != 8 + message.size() ||
      !std::equal(message.begin(), message.end(), reply->payload.begin() + 8)) {
    return std::nullopt;
  }
  return ReadU64(reply->payload, 0);
}

// ---- A minimal JSON syntax check (RFC 8259 grammar, no semantics) ---------

namespace {

class JsonChecker {
 public:
  explicit JsonChecker(std::string_view text) : s_(text) {}

  bool Document() {
    if (!Value(0)) return false;
    Space();
    return i_ == s_.size();
  }

 private:
  void Space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' ||
                              s_[i_] == '\r' || s_[i_] == '\t')) {
      ++i_;
    }
  }
  bool Eat(char c) {
    Space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool Literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  bool Digits() {
    const size_t start = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      ++i_;
    }
    return i_ > start;
  }
  bool Number() {
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (!Digits()) {
      return false;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (!Digits()) return false;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!Digits()) return false;
    }
    return true;
  }
  bool String() {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        const char e = s_[i_++];
        if (e == 'u') {
          for (int k = 0; k < 4; ++k) {
            if (i_ >= s_.size() ||
                !std::isxdigit(static_cast<unsigned char>(s_[i_++]))) {
              return false;
            }
          }
        } else if (std::string_view("\"\\/bfnrt").find(e) ==
                   std::string_view::npos) {
          return false;
        }
      }
    }
    return false;
  }
  bool Value(int depth) {
    if (depth > 64) return false;
    Space();
    if (i_ >= s_.size()) return false;
    switch (s_[i_]) {
      case '{': {
        ++i_;
        if (Eat('}')) return true;
        do {
          Space();
          if (!String() || !Eat(':') || !Value(depth + 1)) return false;
        } while (Eat(','));
        return Eat('}');
      }
      case '[': {
        ++i_;
        if (Eat(']')) return true;
        do {
          if (!Value(depth + 1)) return false;
        } while (Eat(','));
        return Eat(']');
      }
      case '"':
        return String();
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

bool IsValidJson(std::string_view text) { return JsonChecker(text).Document(); }

}  // namespace servercore::test
