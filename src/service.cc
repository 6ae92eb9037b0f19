#include "servercore/service.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

#include "io/io_worker.h"
#include "servercore/check.h"
#include "servercore/log.h"
#include "socket_util.h"

namespace servercore {
namespace {

Backend RequestedBackend(Backend configured) {
  if (configured != Backend::kAuto) return configured;
  if (const char* env = std::getenv("SERVERCORE_BACKEND"); env != nullptr) {
    if (std::optional<Backend> parsed = ParseBackend(env)) return *parsed;
    SERVERCORE_LOG_WARNING("SERVERCORE_BACKEND=%s is not auto|uring|epoll",
                           env);
  }
  return Backend::kAuto;
}

}  // namespace

Service::Service(ServiceOptions options, SessionFactory factory)
    : options_(options), factory_(std::move(factory)) {}

Service::~Service() { Stop(); }

std::error_code Service::Start() {
  SERVERCORE_CHECK(!started(), "Service::Start called twice");
  const int threads =
      options_.worker_threads > 0
          ? options_.worker_threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  Backend kind = RequestedBackend(options_.backend);
  std::vector<std::unique_ptr<internal::IoWorker>> workers;
  for (int i = 0; i < threads; ++i) {
    auto worker =
        std::make_unique<internal::IoWorker>(*this, static_cast<size_t>(i));
    std::string why;
    std::error_code error =
        worker->Start(kind == Backend::kAuto ? Backend::kUring : kind, &why);
    if (error && kind == Backend::kAuto) {
      SERVERCORE_LOG_INFO("io_uring unavailable (%s); using epoll",
                          why.c_str());
      kind = Backend::kEpoll;
      error = worker->Start(kind, &why);
    }
    if (error) {
      SERVERCORE_LOG_ERROR("cannot start the %s backend: %s",
                           std::string(ToString(kind)).c_str(), why.c_str());
      workers_ = std::move(workers);
      Stop();
      return error;
    }
    if (kind == Backend::kAuto) kind = Backend::kUring;
    workers.push_back(std::move(worker));
  }
  backend_ = kind;
  workers_ = std::move(workers);
  return {};
}

void Service::Stop() {
  if (!started() || stopped_.exchange(true)) return;
  SERVERCORE_CHECK(internal::CurrentWorker() == nullptr,
                   "Service::Stop called from a worker thread");
  for (auto& worker : workers_) worker->RequestStop();
  for (auto& worker : workers_) worker->Join();
}

internal::IoWorker& Service::NextWorker() noexcept {
  const size_t n = next_worker_.fetch_add(1, std::memory_order_relaxed);
  return *workers_[n % workers_.size()];
}

SessionRef Service::CreateSession(int fd, internal::IoWorker& worker) {
  const size_t open =
      session_count_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (open > options_.max_sessions) {
    session_count_.fetch_sub(1, std::memory_order_relaxed);
    sessions_rejected_.fetch_add(1, std::memory_order_relaxed);
    ::close(fd);
    return nullptr;
  }
  SessionRef session = factory_();
  SERVERCORE_CHECK(session != nullptr, "the session factory returned null");
  internal::SetNoDelay(fd);
  session->fd_ = fd;
  session->service_ = this;
  session->worker_ = &worker;
  session->max_pending_bytes_ = options_.max_pending_bytes;
  session->recv_buffer_ = RecvBuffer(
      std::max(options_.recv_buffer_size, session->MinRecvBufferSize()));
  session->state_.store(Session::State::kOpen, std::memory_order_release);
  session->OnCreated();
  return session;
}

NetStats Service::GetStats() const {
  NetStats stats;
  stats.sessions_open = SessionCount();
  stats.sessions_rejected = sessions_rejected_.load(std::memory_order_relaxed);
  for (const auto& worker : workers_) {
    const internal::WorkerCounters& c = worker->counters();
    stats.sessions_accepted += c.accepted.Get();
    stats.sessions_connected += c.connected.Get();
    stats.accept_errors += c.accept_errors.Get();
    for (size_t i = 0; i < kDisconnectReasonCount; ++i) {
      stats.closed_by_reason[i] += c.closed_by_reason[i].Get();
    }
    stats.packets_in += c.packets_in.Get();
    stats.packets_out += c.packets_out.Get();
    stats.bytes_in += c.bytes_in.Get();
    stats.bytes_out += c.bytes_out.Get();
    stats.recv_syscalls += c.recv_syscalls.Get();
    stats.write_syscalls += c.write_syscalls.Get();
    stats.iovecs_written += c.iovecs_written.Get();
    stats.partial_writes += c.partial_writes.Get();
  }
  stats.send_buffers = SendBufferManager::Instance().GetStats();
  return stats;
}

ServerService::~ServerService() { Stop(); }

std::error_code ServerService::Listen(std::string_view host, uint16_t port) {
  SERVERCORE_CHECK(started(), "ServerService::Listen before Start");
  SERVERCORE_CHECK(port_ == 0, "ServerService::Listen called twice");
  internal::SocketAddress address;
  if (std::error_code error = internal::Resolve(host, port, &address)) {
    return error;
  }
  // One socket, accepted by the first worker, which hands each connection to
  // the workers in turn. A single accept queue keeps accept order: a session
  // is created (OnCreated) before any connection that arrived after it is
  // even accepted. (Per-worker SO_REUSEPORT sockets spread accepts over the
  // workers, but then a later connection could be served before an earlier
  // one was accepted: a chat could miss a session whose connect had already
  // returned.)
  int fd = -1;
  if (std::error_code error = internal::Listen(address, &fd)) return error;
  if (std::error_code error = internal::LocalPort(fd, &port)) {
    ::close(fd);
    return error;
  }
  workers()[0]->ListenOn(fd);
  port_ = port;
  return {};
}

ClientService::~ClientService() { Stop(); }

std::error_code ClientService::Connect(std::string_view host, uint16_t port,
                                       std::chrono::milliseconds timeout,
                                       SessionRef* session) {
  SERVERCORE_CHECK(started(), "ClientService::Connect before Start");
  internal::SocketAddress address;
  if (std::error_code error = internal::Resolve(host, port, &address)) {
    return error;
  }
  int fd = -1;
  if (std::error_code error = internal::Connect(address, timeout, &fd)) {
    return error;
  }
  internal::IoWorker& worker = NextWorker();
  SessionRef created = CreateSession(fd, worker);
  if (created == nullptr) {
    return std::make_error_code(std::errc::resource_unavailable_try_again);
  }
  if (session != nullptr) *session = created;
  worker.Adopt(std::move(created));
  return {};
}

}  // namespace servercore
