// Service: the worker threads, their I/O backends and the sessions they own.
// ServerService accepts connections; ClientService makes them. Both create
// their sessions with the SessionFactory they are given.
//
//   ServerService server(ServiceOptions{.worker_threads = 2},
//                        [] { return std::make_shared<EchoSession>(); });
//   if (auto err = server.Start(); err) ...
//   if (auto err = server.Listen("127.0.0.1", 0); err) ...
//   ... server.port() ...
//   server.Stop();
//
// Each worker thread owns one backend instance (an io_uring ring or an epoll
// set) and the sessions assigned to it; all I/O of a session happens on its
// worker. Other threads reach a worker through its inbox (a locked queue plus
// an eventfd wake-up).
//
// Thread safety: all members may be called from any thread except Stop and
// the destructor, which must not run on a worker thread (from a hook).
// Ownership: a Service owns its workers, sockets and (while they are open)
// its sessions.
#ifndef SERVERCORE_SERVICE_H_
#define SERVERCORE_SERVICE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <system_error>

#include "servercore/backend.h"
#include "servercore/net_stats.h"
#include "servercore/session.h"

namespace servercore {

struct ServiceOptions {
  // Worker threads; 0 means one per core.
  int worker_threads = 0;
  Backend backend = Backend::kAuto;
  // Open sessions at most; connections past it are closed at once.
  size_t max_sessions = 100'000;
  // A session whose unsent output would pass this is a slow receiver; so is
  // one whose queued buffers, each charged its whole chunk when chunks are
  // scattered, keep more than 8 times this (at least 16 MiB) of chunks
  // alive: 8 times is what this many bytes of the smallest packets take.
  size_t max_pending_bytes = 4 * 1024 * 1024;
  // The most bytes of an unfinished message a session may hold between
  // reads (a PacketSession: at least its largest packet). Reads land in a
  // buffer of the worker's (or, on io_uring, in buffers the kernel picks
  // from a ring the worker provides); a session keeps memory of its own
  // only for a message split across reads, and gives it back once quiet.
  size_t recv_buffer_size = 16 * 1024;
  // 0 = never (the default). Otherwise a session whose socket has taken no
  // byte of pending output for this long is a slow receiver too, even under
  // max_pending_bytes: a time limit on a peer that stopped reading but still
  // talks. Memory does not need it (max_pending_bytes bounds the chunks a
  // session keeps alive, max_memory the whole); it is for servers that
  // would rather not keep such peers.
  std::chrono::milliseconds send_stall_timeout{0};
  // Liveness (0 = never). A session whose OnRecv consumes nothing for
  // idle_timeout (for a PacketSession: no whole packet arrives) is closed
  // with kIdleTimeout. A session holding received bytes it has not consumed
  // (a packet begun and not finished) for packet_timeout is closed with
  // kPacketTimeout, so a peer cannot pin a receive buffer by going silent
  // mid-packet or by trickling one packet a byte at a time. Each worker
  // checks its sessions in one sweep a few times per timeout (at most once a
  // second), from two timestamps per session: no timer per session.
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::milliseconds packet_timeout{0};
  // The memory held for the sessions: their receive tails (capacity) and
  // the send-buffer chunks that unsent output pins (process-wide; a buffer
  // shared by many sessions counts once). Past 90% the service stops
  // accepting (connections wait in the backlog) until below 80%; a Send that
  // would pass 100% disconnects the session with the most unsent output as
  // kSlowReceiver, and so does a receive tail that would take the sessions'
  // receive memory alone past it (its own session). NetStats shows the use.
  size_t max_memory = size_t{1} << 30;
};

class Service {
 public:
  using SessionFactory = std::function<SessionRef()>;

  Service(ServiceOptions options, SessionFactory factory);
  virtual ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Chooses the backend (for Backend::kAuto: the SERVERCORE_BACKEND
  // environment variable, else io_uring when a probe ring comes up with
  // every operation we use, else epoll, with one log line saying why) and
  // starts the workers, each with its own instance of it.
  [[nodiscard]] std::error_code Start();
  // Stops accepting, disconnects every session (kServiceStopped), waits for
  // their in-flight I/O, joins the workers. Bounded; idempotent. A Connect
  // racing with Stop fails or yields a session closed with kServiceStopped.
  void Stop();

  // The backend actually running (kAuto resolved); kAuto before Start.
  Backend backend() const noexcept;
  const ServiceOptions& options() const noexcept;
  size_t WorkerCount() const noexcept;
  size_t SessionCount() const noexcept;
  NetStats GetStats() const;
  // Any thread: memory the application holds on its sessions' behalf
  // (work queued for them, say), counted in the memory budget with the
  // library's own (NetStats::memory_used): the accept pause and the Sends'
  // shedding see it. Give back what was charged, in any order. One relaxed
  // atomic add: charge in steps, not per byte.
  void ChargeMemory(std::ptrdiff_t bytes) noexcept;

 protected:
  // The workers and what they share (service.cc).
  struct Impl;
  Impl& impl() noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

class ServerService : public Service {
 public:
  using Service::Service;
  ~ServerService() override;

  // After Start: binds host:port (port 0 picks a free one) and accepts on
  // the first worker, which deals the connections out to every worker in
  // turn (sessions are created in accept order, see Session::OnCreated).
  [[nodiscard]] std::error_code Listen(std::string_view host, uint16_t port);
  // The bound port; 0 before Listen.
  uint16_t port() const noexcept { return port_; }

 private:
  uint16_t port_ = 0;
};

class ClientService : public Service {
 public:
  using Service::Service;
  ~ClientService() override;

  // After Start: connects to host:port within `timeout` (on the calling
  // thread), then hands the socket to a worker, which calls OnConnected. The
  // new session is stored in *session when given.
  [[nodiscard]] std::error_code Connect(std::string_view host, uint16_t port,
                                        std::chrono::milliseconds timeout,
                                        SessionRef* session = nullptr);
};

}  // namespace servercore

#endif  // SERVERCORE_SERVICE_H_
