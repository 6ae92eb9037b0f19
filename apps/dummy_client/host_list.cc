#include "host_list.h"

#include <charconv>

namespace game {
namespace {

bool Fail(std::string* error, std::string_view text, const char* why) {
  *error = "'" + std::string(text) + "': " + why;
  return false;
}

}  // namespace

std::string HostPort::Name() const {
  const std::string p = std::to_string(port);
  return host.find(':') != std::string::npos ? "[" + host + "]:" + p
                                             : host + ":" + p;
}

bool ParseHostPort(std::string_view text, HostPort* out, std::string* error) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return Fail(error, text, "no ']' after the IPv6 address");
    }
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return Fail(error, text, "expected ':PORT' after ']'");
    }
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Fail(error, text, "expected HOST:PORT");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Fail(error, text, "an IPv6 address goes in brackets: [::1]:7777");
    }
  }
  if (host.empty()) return Fail(error, text, "no host");
  if (host.find_first_of("[] \t,\"\\") != std::string_view::npos) {
    return Fail(error, text, "bad character in the host");
  }
  unsigned value = 0;
  const auto [end, ec] =
      std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() ||
      value < 1 || value > 65535) {
    return Fail(error, text, "the port must be 1 to 65535");
  }
  out->host = std::string(host);
  out->port = static_cast<uint16_t>(value);
  return true;
}

bool ParseHostList(std::string_view text, std::vector<HostPort>* out,
                   std::string* error) {
  std::vector<HostPort> hosts;
  size_t begin = 0;
  while (true) {
    const size_t comma = text.find(',', begin);
    const std::string_view entry = text.substr(
        begin, comma == std::string_view::npos ? comma : comma - begin);
    if (entry.empty()) {
      *error = "empty entry in '" + std::string(text) + "'";
      return false;
    }
    HostPort host;
    if (!ParseHostPort(entry, &host, error)) return false;
    hosts.push_back(std::move(host));
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  *out = std::move(hosts);
  return true;
}

}  // namespace game
