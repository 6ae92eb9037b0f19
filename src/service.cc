#include "servercore/service.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "io/io_key.h"
#include "io/io_worker.h"
#include "io/socket_state.h"
#include "memory_budget.h"
#include "servercore/check.h"
#include "servercore/log.h"
#include "socket_util.h"

namespace servercore {

// The workers, and the state they share, behind the public Service.
struct Service::Impl final : internal::WorkerHost {
  Impl(Service& owner, ServiceOptions service_options, SessionFactory factory)
      : service(owner),
        options_(service_options),
        factory_(std::move(factory)) {}

  bool started() const noexcept { return !workers.empty(); }

  // --- WorkerHost ---
  const ServiceOptions& options() const noexcept override { return options_; }
  internal::IoWorker& NextWorker() noexcept override {
    const size_t n = next_worker.fetch_add(1, std::memory_order_relaxed);
    return *workers[n % workers.size()];
  }
  SessionRef CreateSession(int fd, internal::IoWorker& owner) override;
  void OnSessionClosed() noexcept override {
    session_count.fetch_sub(1, std::memory_order_relaxed);
  }
  internal::MemoryBudget& budget() noexcept override { return budget_; }

  Service& service;
  const ServiceOptions options_;
  const SessionFactory factory_;
  Backend backend = Backend::kAuto;
  std::vector<std::unique_ptr<internal::IoWorker>> workers;
  std::atomic<size_t> session_count{0};
  std::atomic<size_t> next_worker{0};
  std::atomic<uint64_t> sessions_rejected{0};
  std::atomic<bool> stopped{false};
  internal::MemoryBudget budget_{options_.max_memory};
};

SessionRef Service::Impl::CreateSession(int fd, internal::IoWorker& owner) {
  const size_t open = session_count.fetch_add(1, std::memory_order_relaxed) + 1;
  if (open > options_.max_sessions) {
    session_count.fetch_sub(1, std::memory_order_relaxed);
    sessions_rejected.fetch_add(1, std::memory_order_relaxed);
    ::close(fd);
    return nullptr;
  }
  SessionRef session = factory_();
  SERVERCORE_CHECK(session != nullptr, "the session factory returned null");
  internal::SetNoDelay(fd);
  session->socket(internal::IoKey{})
      .Bind(fd, owner, options_.max_pending_bytes);
  session->Open(internal::IoKey{}, service);
  return session;
}

Service::Service(ServiceOptions options, SessionFactory factory)
    : impl_(std::make_unique<Impl>(*this, options, std::move(factory))) {}

Service::~Service() { Stop(); }

Backend Service::backend() const noexcept { return impl_->backend; }
const ServiceOptions& Service::options() const noexcept {
  return impl_->options_;
}
size_t Service::WorkerCount() const noexcept { return impl_->workers.size(); }
size_t Service::SessionCount() const noexcept {
  return impl_->session_count.load(std::memory_order_relaxed);
}

std::error_code Service::Start() {
  Impl& impl = *impl_;
  SERVERCORE_CHECK(!impl.started(), "Service::Start called twice");
  const int threads =
      impl.options_.worker_threads > 0
          ? impl.options_.worker_threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const Backend kind = internal::ChooseBackend(impl.options_.backend);
  impl.budget_.set_workers(static_cast<size_t>(threads));
  std::vector<std::unique_ptr<internal::IoWorker>> workers;
  for (int i = 0; i < threads; ++i) {
    auto worker =
        std::make_unique<internal::IoWorker>(impl, static_cast<size_t>(i));
    std::string why;
    if (std::error_code error = worker->Start(kind, &why)) {
      SERVERCORE_LOG_ERROR("cannot start the %s backend: %s",
                           std::string(ToString(kind)).c_str(), why.c_str());
      impl.workers = std::move(workers);
      Stop();
      return error;
    }
    workers.push_back(std::move(worker));
  }
  impl.backend = kind;
  impl.workers = std::move(workers);
  return {};
}

void Service::Stop() {
  Impl& impl = *impl_;
  if (!impl.started() || impl.stopped.exchange(true)) return;
  SERVERCORE_CHECK(internal::CurrentWorker() == nullptr,
                   "Service::Stop called from a worker thread");
  for (auto& worker : impl.workers) worker->RequestStop();
  for (auto& worker : impl.workers) worker->Join();
}

void Service::ChargeMemory(std::ptrdiff_t bytes) noexcept {
  if (bytes >= 0) {
    impl_->budget_.AddOverhead(static_cast<size_t>(bytes));
  } else {
    impl_->budget_.RemoveOverhead(static_cast<size_t>(-bytes));
  }
}

NetStats Service::GetStats() const {
  const Impl& impl = *impl_;
  NetStats stats;
  stats.sessions_open = SessionCount();
  stats.sessions_rejected =
      impl.sessions_rejected.load(std::memory_order_relaxed);
  for (const auto& worker : impl.workers) {
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
    stats.recv_buffer_waits += c.recv_buffer_waits.Get();
  }
  stats.send_buffers = SendBufferManager::Instance().GetStats();
  stats.memory_used = impl.budget_.Used();
  stats.memory_receive = impl.budget_.recv_bytes();
  stats.memory_budget = impl.budget_.max_bytes();
  stats.accept_paused = impl.budget_.accept_paused();
  stats.budget_accept_pauses = impl.budget_.accept_pauses();
  stats.budget_kicks = impl.budget_.kicks();
  return stats;
}

ServerService::~ServerService() { Stop(); }

std::error_code ServerService::Listen(std::string_view host, uint16_t port) {
  SERVERCORE_CHECK(impl().started(), "ServerService::Listen before Start");
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
  impl().workers[0]->ListenOn(fd);
  port_ = port;
  return {};
}

ClientService::~ClientService() { Stop(); }

std::error_code ClientService::Connect(std::string_view host, uint16_t port,
                                       std::chrono::milliseconds timeout,
                                       SessionRef* session) {
  SERVERCORE_CHECK(impl().started(), "ClientService::Connect before Start");
  internal::SocketAddress address;
  if (std::error_code error = internal::Resolve(host, port, &address)) {
    return error;
  }
  int fd = -1;
  if (std::error_code error = internal::Connect(address, timeout, &fd)) {
    return error;
  }
  internal::IoWorker& worker = impl().NextWorker();
  SessionRef created = impl().CreateSession(fd, worker);
  if (created == nullptr) {
    return std::make_error_code(std::errc::resource_unavailable_try_again);
  }
  if (session != nullptr) *session = created;
  worker.AdoptConnected(std::move(created));
  return {};
}

}  // namespace servercore
