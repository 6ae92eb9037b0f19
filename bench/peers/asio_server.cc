#include "asio_server.h"

#include <algorithm>
#include <cassert>
#include <csignal>
#include <cstdio>
#include <thread>
#include <utility>

#include "asio_session.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#include <boost/asio/post.hpp>
#pragma GCC diagnostic pop

namespace asio_peer {
namespace {

std::vector<std::unique_ptr<Worker>> MakeWorkers(Server& server, int threads) {
  size_t count = threads > 0 ? static_cast<size_t>(threads)
                             : std::thread::hardware_concurrency();
  if (count == 0) count = 1;
  std::vector<std::unique_ptr<Worker>> workers;
  for (size_t i = 0; i < count; ++i) {
    workers.push_back(std::make_unique<Worker>(server));
  }
  return workers;
}

double PerSecond(uint64_t now, uint64_t before, double seconds) {
  return seconds > 0 ? static_cast<double>(now - before) / seconds : 0.0;
}

double Ratio(uint64_t a, uint64_t b) {
  return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : 0.0;
}

}  // namespace

// --- Worker ---------------------------------------------------------------

Worker::Worker(Server& server)
    : server_(server),
      work_(context_.get_executor()),
      // 64 KiB, or two of the largest packets: a kept tail leaves room.
      read_capacity_(
          std::max<size_t>(64 * 1024, 2 * server.config().max_packet)),
      read_buffer_(std::make_unique<uint8_t[]>(read_capacity_)) {}

const Config& Worker::config() const noexcept { return server_.config(); }

void Worker::JoinRoom(Session& session, uint32_t room) {
  assert(InThisThread());
  std::vector<Session*>& members = rooms_[room];
  session.set_room(room, members.size());
  members.push_back(&session);
}

void Worker::LeaveRoom(Session& session) {
  assert(InThisThread());
  auto it = rooms_.find(session.room());
  if (it == rooms_.end()) return;
  std::vector<Session*>& members = it->second;
  const size_t slot = session.room_slot();
  assert(slot < members.size() && members[slot] == &session);
  Session* last = members.back();
  members[slot] = last;
  last->set_room_slot(slot);
  members.pop_back();
  if (members.empty()) rooms_.erase(it);
}

void Worker::Deliver(uint32_t room, const uint8_t* data, size_t size) {
  assert(InThisThread());
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return;
  // Send never closes a session synchronously (a kick is posted), so the
  // member list stays as it is while we walk it.
  if (server_.config().broadcast == Broadcast::kCopy) {
    for (Session* member : it->second) member->Send(data, size);
    return;
  }
  SharedPacket* packet = packet_pool_.Make(data, size);
  packet_pool_.Ref(packet);  // held while the members take theirs
  for (Session* member : it->second) member->SendShared(packet);
  packet_pool_.Unref(packet);
}

void Worker::FlushQueued() {
  assert(InThisThread());
  // Flush never queues again, but keep the walk independent of the queue.
  flushing_.swap(flush_queue_);
  for (Session* session : flushing_) session->Flush();
  flushing_.clear();
}

void Worker::CloseAll() {
  assert(InThisThread());
  const std::vector<Session*> all(sessions_.begin(), sessions_.end());
  for (Session* session : all) session->Close(CloseReason::kStopped);
  work_.reset();  // run() returns once the aborted handlers have run
}

// --- Server ---------------------------------------------------------------

Server::Server(const Config& config)
    : config_(config),
      start_(std::chrono::steady_clock::now()),
      workers_(MakeWorkers(*this, config.threads)),
      acceptor_(workers_[0]->context()),
      accept_retry_(workers_[0]->context()),
      signals_(workers_[0]->context(), SIGINT, SIGTERM),
      stats_timer_(workers_[0]->context()),
      last_time_(start_) {}

Server::~Server() = default;

boost::system::error_code Server::Listen() {
  boost::system::error_code error;
  const asio::ip::address address = asio::ip::make_address(config_.host, error);
  if (error) return error;
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(config_.port));
  if (acceptor_.open(endpoint.protocol(), error)) return error;
  if (acceptor_.set_option(tcp::acceptor::reuse_address(true), error)) {
    return error;
  }
  if (acceptor_.bind(endpoint, error)) return error;
  acceptor_.listen(asio::socket_base::max_listen_connections, error);
  return error;
}

uint16_t Server::port() const {
  boost::system::error_code error;
  return acceptor_.local_endpoint(error).port();
}

void Server::Run() {
  signals_.async_wait([this](const boost::system::error_code& error, int) {
    if (!error) Stop();
  });
  Accept();
  last_time_ = std::chrono::steady_clock::now();
  last_ = Sum();
  if (config_.stats_interval > 0) ArmStatsTimer();
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers_.size(); ++i) {
    threads.emplace_back(
        [worker = workers_[i].get()] { worker->context().run(); });
  }
  workers_[0]->context().run();
  for (std::thread& thread : threads) thread.join();
}

void Server::Stop() {
  std::printf("stopping\n");
  std::fflush(stdout);
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  stats_timer_.cancel();
  // Accepted sessions were posted to their workers before this, so CloseAll
  // runs after their Start.
  for (const std::unique_ptr<Worker>& worker : workers_) {
    asio::post(worker->context(), [w = worker.get()] { w->CloseAll(); });
  }
}

void Server::Accept() {
  Worker& target = *workers_[next_worker_];
  next_worker_ = (next_worker_ + 1) % workers_.size();
  acceptor_.async_accept(target.context(),
                         [this, &target](const boost::system::error_code& error,
                                         tcp::socket socket) {
                           OnAccept(target, error, std::move(socket));
                         });
}

void Server::OnAccept(Worker& target, const boost::system::error_code& error,
                      tcp::socket socket) {
  if (!acceptor_.is_open() || error == asio::error::operation_aborted) return;
  if (error) {
    // Out of descriptors or memory: back off instead of spinning.
    if (error == asio::error::no_descriptors ||
        error == asio::error::no_buffer_space ||
        error == asio::error::no_memory) {
      std::fprintf(stderr, "accept: %s; retrying in 100 ms\n",
                   error.message().c_str());
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](const boost::system::error_code& e) {
        if (!e) Accept();
      });
      return;
    }
    Accept();
    return;
  }
  Counters& counters = workers_[0]->counters();
  if (OpenSessions() >= config_.max_sessions) {
    counters.rejected.Add();
    boost::system::error_code ignored;
    socket.close(ignored);
  } else {
    counters.accepted.Add();
    open_sessions_.fetch_add(1, std::memory_order_relaxed);
    auto session = std::make_shared<Session>(target, std::move(socket),
                                             next_session_id_++);
    if (&target == workers_[0].get()) {
      session->Start();
    } else {
      asio::post(target.context(), [session] { session->Start(); });
    }
  }
  Accept();
}

void Server::Broadcast(Worker& from, uint32_t room, const uint8_t* data,
                       size_t size) {
  from.Deliver(room, data, size);
  if (workers_.size() == 1) return;
  // The sender's bytes live in its worker's buffers: the others get a copy.
  auto packet = std::make_shared<const std::vector<uint8_t>>(data, data + size);
  for (const std::unique_ptr<Worker>& worker : workers_) {
    if (worker.get() == &from) continue;
    asio::post(worker->context(), [w = worker.get(), room, packet] {
      w->Deliver(room, packet->data(), packet->size());
      w->FlushQueued();
    });
  }
}

uint32_t Server::CountJoin(std::optional<uint32_t> old_room, uint32_t room) {
  std::lock_guard<std::mutex> lock(counts_mu_);
  if (old_room) {
    auto it = room_members_.find(*old_room);
    if (it != room_members_.end() && --it->second == 0) room_members_.erase(it);
  }
  return ++room_members_[room];
}

void Server::CountLeave(uint32_t room) {
  std::lock_guard<std::mutex> lock(counts_mu_);
  auto it = room_members_.find(room);
  if (it != room_members_.end() && --it->second == 0) room_members_.erase(it);
}

uint64_t Server::RoomCount() {
  std::lock_guard<std::mutex> lock(counts_mu_);
  return room_members_.size();
}

// --- Stats ----------------------------------------------------------------

Totals Server::Sum() const {
  Totals t;
  for (const std::unique_ptr<Worker>& worker : workers_) {
    const Counters& c = worker->counters();
    t.accepted += c.accepted.Get();
    t.rejected += c.rejected.Get();
    t.packets_in += c.packets_in.Get();
    t.packets_out += c.packets_out.Get();
    t.bytes_in += c.bytes_in.Get();
    t.bytes_out += c.bytes_out.Get();
    t.recvs += c.recvs.Get();
    t.writes += c.writes.Get();
    t.write_somes += c.write_somes.Get();
    t.buffers_written += c.buffers_written.Get();
    t.partial_writes += c.partial_writes.Get();
    for (size_t i = 0; i < kCloseReasons; ++i) t.closed[i] += c.closed[i].Get();
  }
  return t;
}

void Server::ArmStatsTimer() {
  stats_timer_.expires_after(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::duration<double>(config_.stats_interval)));
  stats_timer_.async_wait([this](const boost::system::error_code& error) {
    if (error) return;
    PrintStats();
    ArmStatsTimer();
  });
}

void Server::PrintStats() {
  const auto now = std::chrono::steady_clock::now();
  const Totals t = Sum();
  const double seconds =
      std::chrono::duration<double>(now - last_time_).count();
  std::printf(
      "[stats] sessions %llu rooms %llu | in %.0f pkt/s out %.0f pkt/s "
      "%.2f MB/s | writes %.0f/s %.1f iov/write, write_somes %.0f/s | "
      "kicks %llu protocol-errors %llu\n",
      static_cast<unsigned long long>(OpenSessions()),
      static_cast<unsigned long long>(RoomCount()),
      PerSecond(t.packets_in, last_.packets_in, seconds),
      PerSecond(t.packets_out, last_.packets_out, seconds),
      PerSecond(t.bytes_out, last_.bytes_out, seconds) / 1e6,
      PerSecond(t.writes, last_.writes, seconds),
      Ratio(t.buffers_written - last_.buffers_written, t.writes - last_.writes),
      PerSecond(t.write_somes, last_.write_somes, seconds),
      static_cast<unsigned long long>(t.ClosedBy(CloseReason::kSlow)),
      static_cast<unsigned long long>(t.ClosedBy(CloseReason::kProtocol)));
  std::fflush(stdout);
  last_ = t;
  last_time_ = now;
}

void Server::PrintSummary() const {
  const Totals t = Sum();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  using ull = unsigned long long;
  std::printf(
      "[summary] %.1f s | accepted %llu closed %llu (peer %llu, reset %llu, "
      "slow %llu, protocol %llu, stopped %llu) rejected %llu | packets in "
      "%llu out %llu | bytes in %llu out %llu | writes %llu, %.1f iov/write, "
      "%llu partial | write_somes %llu, %.1f iov/write_some | recvs %llu\n",
      seconds, static_cast<ull>(t.accepted), static_cast<ull>(t.Closed()),
      static_cast<ull>(t.ClosedBy(CloseReason::kPeer)),
      static_cast<ull>(t.ClosedBy(CloseReason::kReset)),
      static_cast<ull>(t.ClosedBy(CloseReason::kSlow)),
      static_cast<ull>(t.ClosedBy(CloseReason::kProtocol)),
      static_cast<ull>(t.ClosedBy(CloseReason::kStopped)),
      static_cast<ull>(t.rejected), static_cast<ull>(t.packets_in),
      static_cast<ull>(t.packets_out), static_cast<ull>(t.bytes_in),
      static_cast<ull>(t.bytes_out), static_cast<ull>(t.writes),
      Ratio(t.buffers_written, t.writes), static_cast<ull>(t.partial_writes),
      static_cast<ull>(t.write_somes), Ratio(t.buffers_written, t.write_somes),
      static_cast<ull>(t.recvs));
  std::fflush(stdout);
}

}  // namespace asio_peer
