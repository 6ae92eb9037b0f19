// Shared pieces of the network contract suite: sessions used by the tests and
// a fixture that runs each test once per backend.
#ifndef SERVERCORE_TESTS_INTEGRATION_SERVICE_TEST_UTIL_H_
#define SERVERCORE_TESTS_INTEGRATION_SERVICE_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "servercore/packet_session.h"
#include "servercore/send_buffer_manager.h"
#include "servercore/service.h"

namespace servercore::test {

// Builds one packet [size][id][payload] in a pooled SendBuffer.
inline SendBufferRef MakePacket(uint16_t id,
                                std::span<const std::byte> payload) {
  const auto size = static_cast<uint32_t>(payload.size() + kPacketHeaderSize);
  SendBufferRef buffer = SendBufferManager::Instance().Open(size);
  WritePacketHeader(buffer->Buffer(), static_cast<uint16_t>(size), id);
  if (!payload.empty()) {
    std::memcpy(buffer->Buffer() + kPacketHeaderSize, payload.data(),
                payload.size());
  }
  buffer->Close(size);
  return buffer;
}

// Answers every packet with the same packet (id and payload unchanged).
class EchoSession : public PacketSession {
 public:
  using PacketSession::PacketSession;

 protected:
  void OnRecvPacket(uint16_t id, std::span<const std::byte> payload) override {
    Send(MakePacket(id, payload));
  }
};

// Polls `condition` until it holds or `timeout` passes.
inline bool WaitFor(
    const std::function<bool()>& condition,
    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Runs every test of a suite once with epoll and once with io_uring; the
// io_uring run skips, saying why, where the kernel refuses rings.
class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  ServiceOptions Options() const {
    return ServiceOptions{.worker_threads = 2, .backend = GetParam()};
  }
  // Starts a server with `factory` listening on 127.0.0.1:0, or skips.
  std::unique_ptr<ServerService> StartServer(Service::SessionFactory factory,
                                             ServiceOptions options) {
    auto server = std::make_unique<ServerService>(options, std::move(factory));
    if (std::error_code error = server->Start()) {
      if (GetParam() == Backend::kUring) {
        skip_reason_ = "io_uring unavailable here: " + error.message();
        return nullptr;
      }
      ADD_FAILURE() << "Start: " << error.message();
      return nullptr;
    }
    if (std::error_code error = server->Listen("127.0.0.1", 0)) {
      ADD_FAILURE() << "Listen: " << error.message();
      return nullptr;
    }
    return server;
  }
  std::string skip_reason_;
};

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return std::string(ToString(info.param));
}

#define SERVERCORE_START_SERVER(var, factory, options)     \
  auto var = StartServer(factory, options);                \
  if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_; \
  ASSERT_NE(var, nullptr)

}  // namespace servercore::test

#endif  // SERVERCORE_TESTS_INTEGRATION_SERVICE_TEST_UTIL_H_
