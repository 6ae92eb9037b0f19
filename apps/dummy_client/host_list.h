// HostList: the servers DummyClient spreads its sessions over (--hosts, or
// the one of --host/--port), and which of them session i connects to: host
// i % H, so consecutive sessions, and therefore the members of one room
// (rooms are runs of consecutive sessions), land on different servers.
//
//   --hosts 127.0.0.1:7777,10.0.0.2:7777,[::1]:7778,game-3:7777
//
// An entry is HOST:PORT, with an IPv6 address in brackets; HOST is what
// getaddrinfo takes (an address or a name), PORT is 1 to 65535 in decimal.
// The same server may be listed more than once (its sessions then simply
// alternate with the others').
//
// Thread safety: immutable after parsing.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_HOST_LIST_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_HOST_LIST_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace game {

struct HostPort {
  std::string host;  // without brackets: "::1", not "[::1]"
  uint16_t port = 0;
  // "host:port", or "[host]:port" for an IPv6 address: as on the command
  // line.
  std::string Name() const;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// Parses one HOST:PORT; false, with what is wrong in *error, on bad input.
[[nodiscard]] bool ParseHostPort(std::string_view text, HostPort* out,
                                 std::string* error);

// Parses a comma-separated list of HOST:PORT (at least one, no empty entry);
// false, with what is wrong in *error, on bad input.
[[nodiscard]] bool ParseHostList(std::string_view text,
                                 std::vector<HostPort>* out,
                                 std::string* error);

// The host session `index` connects to, of `hosts` many.
constexpr size_t HostOf(uint32_t index, size_t hosts) noexcept {
  return hosts > 1 ? index % hosts : 0;
}

// How many of `sessions` sessions go to host `host` of `hosts`.
constexpr size_t SessionsOnHost(size_t host, size_t hosts,
                                size_t sessions) noexcept {
  return hosts == 0 || host >= hosts
             ? 0
             : sessions / hosts + (host < sessions % hosts ? 1 : 0);
}

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_HOST_LIST_H_
