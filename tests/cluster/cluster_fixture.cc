#include "tests/cluster/cluster_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <charconv>
#include <thread>

#include "tests/apps/app_fixture.h"

namespace servercore::test {
namespace {

// The number after `prefix` on its line in `out`, or 0.
uint16_t PortAfter(const std::string& out, const std::string& prefix) {
  const size_t at = out.find(prefix);
  if (at == std::string::npos) return 0;
  const size_t from = at + prefix.size();
  const size_t eol = out.find('\n', from);
  if (eol == std::string::npos) return 0;
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(out.data() + from, out.data() + eol, port);
  return ec == std::errc() && port <= 65535 ? static_cast<uint16_t>(port) : 0;
}

int ConnectTo(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

bool NatsServer::Start(uint16_t port) {
  process_ = std::make_unique<ChildProcess>();
  const std::vector<std::string> args = {
      "-a", "127.0.0.1", "-p", port != 0 ? std::to_string(port) : "-1",
      "-m", "-1"};
  if (!process_->Start(NATS_SERVER_PATH, args)) return false;
  if (!process_->WaitForOutput("Server is ready", Seconds(10))) return false;
  const std::string out = process_->Output();
  port_ = PortAfter(out, "Listening for client connections on 127.0.0.1:");
  http_port_ = PortAfter(out, "Starting http monitor on 127.0.0.1:");
  return port_ != 0 && http_port_ != 0;
}

void NatsServer::Kill() {
  if (!process_->running()) return;
  process_->Signal(SIGKILL);
  (void)process_->Wait(Seconds(10));
}

std::string NatsServer::Monitor(const std::string& path) const {
  const int fd = ConnectTo(http_port_);
  if (fd < 0) return "";
  const std::string request = "GET " + path +
                              " HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                              "Connection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return "";
  }
  std::string response;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

void ClusterTest::SetUp() {
  ASSERT_TRUE(nats_.Start()) << nats_.Output();
  for (int i = 0; i < kNodes; ++i) {
    StartNode(i, nats_.url());
    if (HasFatalFailure()) return;
  }
}

void ClusterTest::StartNode(int i, const std::string& url) {
  std::vector<std::string> flags = {
      "--threads", "2", "--stats-interval", "1",
      "--cluster", url, "--node-id",        std::to_string(i + 1)};
  for (std::string& flag : NodeFlags()) flags.push_back(std::move(flag));
  ASSERT_TRUE(node(i).Start(flags)) << node(i).Output();
}

void ClusterTest::RestartNode(int i, const std::string& url) {
  ASSERT_FALSE(node(i).process().running());
  nodes_[static_cast<size_t>(i)] = std::make_unique<GameServer>();
  StartNode(i, url);
}

void ClusterTest::TearDown() {
  for (auto& node : nodes_) ExpectCleanStop(*node);
  nats_.Kill();
}

TestClient ClusterTest::Connect(int i) {
  TestClient client;
  EXPECT_TRUE(ConnectReady(client, port(i))) << "node " << i + 1;
  return client;
}

std::optional<std::chrono::milliseconds> ClusterTest::JoinUntilCount(
    TestClient& client, uint32_t room, uint32_t count,
    std::chrono::milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const std::optional<uint32_t> now = JoinSkippingSnapshots(client, room);
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    if (now == count) return elapsed;
    if (!now.has_value() || elapsed > timeout) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void ClusterTest::JoinTogether(TestClient& a, TestClient& b, uint32_t room) {
  // Either may be a world member already, owed a full snapshot of the stay
  // it leaves (its last join here may be less than a tick ago).
  ASSERT_TRUE(JoinSkippingSnapshots(a, room).has_value());
  ASSERT_TRUE(JoinSkippingSnapshots(b, room).has_value());
  ASSERT_TRUE(JoinUntilCount(a, room, 2, Seconds(10)).has_value());
  ASSERT_TRUE(JoinUntilCount(b, room, 2, Seconds(10)).has_value());
}

int ClusterTest::RoomSubscribers(uint32_t room) const {
  const std::string body = nats_.Monitor("/connz?subs=1");
  const std::string subject = "\"sc.room." + std::to_string(room) + "\"";
  int count = 0;
  for (size_t at = body.find(subject); at != std::string::npos;
       at = body.find(subject, at + 1)) {
    ++count;
  }
  return count;
}

std::optional<uint64_t> ClusterTest::LastStat(int i,
                                              const std::string& name) const {
  const auto numbers = NumbersAfter(node(i).Output(), name);
  if (numbers.empty()) return std::nullopt;
  return numbers.back();
}

void ClusterTest::KillBroker(int a, int b) {
  killed_broker_port_ = nats_.port();
  nats_.Kill();
  ASSERT_TRUE(WaitFor(
      [&] {
        return node(a).Output().find("DISCONNECTED") != std::string::npos &&
               node(b).Output().find("DISCONNECTED") != std::string::npos;
      },
      Seconds(5)))
      << node(a).Output();
}

void ClusterTest::RestartBroker(int a, int b) {
  ASSERT_TRUE(nats_.Start(killed_broker_port_)) << nats_.Output();
  ASSERT_TRUE(WaitFor(
      [&] {
        return LastStat(a, "reconnects").value_or(0) >= 1 &&
               LastStat(b, "reconnects").value_or(0) >= 1;
      },
      Seconds(10)))
      << node(a).Output();
}

bool PublishRaw(
    uint16_t port,
    const std::vector<std::pair<std::string, std::string>>& messages) {
  const int fd = ConnectTo(port);
  if (fd < 0) return false;
  timeval timeout{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string out = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";
  for (const auto& [subject, data] : messages) {
    out += "PUB " + subject + " " + std::to_string(data.size()) + "\r\n";
    out += data;
    out += "\r\n";
  }
  out += "PING\r\n";
  bool ok = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(out.size());
  // INFO first, then PONG (or -ERR).
  std::string in;
  char buf[4096];
  while (ok && in.find("PONG\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      ok = false;
    } else {
      in.append(buf, static_cast<size_t>(n));
      if (in.find("-ERR") != std::string::npos) ok = false;
    }
  }
  ::close(fd);
  return ok;
}

bool WaitFor(const std::function<bool()>& done,
             std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

std::optional<uint32_t> JoinSkippingSnapshots(TestClient& client, uint32_t room,
                                              bool skip_chats) {
  if (!client.SendPacket(kCJoin, U32(room))) return std::nullopt;
  for (;;) {
    auto reply = client.ReadPacket(Seconds(10));
    if (!reply) return std::nullopt;
    if (reply->id == kSSnapshot || (skip_chats && reply->id == kSChat)) {
      continue;
    }
    if (reply->id != kSJoin || reply->payload.size() != 8 ||
        ReadU32(reply->payload, 0) != room) {
      return std::nullopt;
    }
    return ReadU32(reply->payload, 4);
  }
}

std::optional<Packet> ReadUntil(
    TestClient& client, uint16_t id, std::chrono::milliseconds timeout,
    const std::function<bool(const Packet&)>& accept) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    std::optional<Packet> packet = client.ReadPacket(left);
    if (!packet.has_value()) return std::nullopt;
    if (packet->id == id && (!accept || accept(*packet))) return packet;
  }
}

}  // namespace servercore::test
