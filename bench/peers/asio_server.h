// Worker and Server of the Asio peer (see asio_peer.h for the threading).
//
// Worker: one io_context, run by one thread, and the room lists of the
// sessions that live on it. Thread safety: every member but context() and
// counters() (read side) is called on the worker's own thread only.
//
// Server: the workers, the acceptor (on worker 0), the global member count of
// each room (for S_JOIN), the signal set and the stats timer. Thread safety:
// Broadcast and the room counts may be called from any worker; the rest from
// the thread that called Run (worker 0's).
#ifndef SERVERCORE_BENCH_PEERS_ASIO_SERVER_H_
#define SERVERCORE_BENCH_PEERS_ASIO_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "asio_handler_memory.h"
#include "asio_output.h"
#include "asio_peer.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#pragma GCC diagnostic pop

namespace asio_peer {

class Server;
class Session;

class Worker {
 public:
  explicit Worker(Server& server);

  asio::io_context& context() noexcept { return context_; }
  Server& server() noexcept { return server_; }
  const Config& config() const noexcept;
  Counters& counters() noexcept { return counters_; }
  const Counters& counters() const noexcept { return counters_; }
  bool InThisThread() noexcept {
    return context_.get_executor().running_in_this_thread();
  }

  // Adds `session` to `room`'s local member list; LeaveRoom takes it out of
  // the one it is in (the session says whether it is in one).
  void JoinRoom(Session& session, uint32_t room);
  void LeaveRoom(Session& session);
  // Appends the packet [data, data + size) to every local member's output:
  // a copy each, or with --broadcast shared one SharedPacket they all refer
  // to. The members are flushed by the caller's FlushQueued.
  void Deliver(uint32_t room, const uint8_t* data, size_t size);
  // Sessions given output during the current handler; FlushQueued starts
  // their writes, and every handler that can give output calls it last.
  void QueueFlush(Session& session) { flush_queue_.push_back(&session); }
  void FlushQueued();

  // The one read buffer of this worker's sessions (see asio_session.h).
  uint8_t* read_buffer() noexcept { return read_buffer_.get(); }
  size_t read_capacity() const noexcept { return read_capacity_; }
  // Where a broadcast packet is built before it is delivered.
  std::vector<uint8_t>& scratch() noexcept { return scratch_; }
  PacketPool& packet_pool() noexcept { return packet_pool_; }
  OpPool& op_pool() noexcept { return op_pool_; }
  // Every open session of this worker, for CloseAll.
  void AddSession(Session& session) { sessions_.insert(&session); }
  void RemoveSession(Session& session) { sessions_.erase(&session); }
  // On stop: closes every local session and lets run() return once their
  // handlers have drained.
  void CloseAll();

 private:
  Server& server_;
  // Before context_: sessions and operations, destroyed with the handlers the
  // context still holds, go back to these.
  PacketPool packet_pool_;
  OpPool op_pool_;
  asio::io_context context_{1};  // run by one thread
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unordered_map<uint32_t, std::vector<Session*>> rooms_;
  std::unordered_set<Session*> sessions_;
  std::vector<Session*> flush_queue_;
  std::vector<Session*> flushing_;
  const size_t read_capacity_;
  std::unique_ptr<uint8_t[]> read_buffer_;
  std::vector<uint8_t> scratch_;
  Counters counters_;
};

class Server {
 public:
  explicit Server(const Config& config);
  ~Server();

  // Binds and listens; the port is known after this.
  [[nodiscard]] boost::system::error_code Listen();
  uint16_t port() const;
  size_t WorkerCount() const noexcept { return workers_.size(); }
  // Runs worker 0 on the calling thread and the others on their own threads,
  // until SIGINT or SIGTERM; returns once every worker has stopped.
  void Run();

  const Config& config() const noexcept { return config_; }
  // From the sender's worker: local delivery now, one post (with one copy of
  // the packet) to each other worker.
  void Broadcast(Worker& from, uint32_t room, const uint8_t* data, size_t size);
  // Room member counts over all workers: join returns members after it.
  uint32_t CountJoin(std::optional<uint32_t> old_room, uint32_t room);
  void CountLeave(uint32_t room);
  uint64_t RoomCount();
  void SessionClosed() noexcept {
    open_sessions_.fetch_sub(1, std::memory_order_relaxed);
  }
  uint64_t OpenSessions() const noexcept {
    return open_sessions_.load(std::memory_order_relaxed);
  }

  Totals Sum() const;
  void PrintStats();
  void PrintSummary() const;

 private:
  void Accept();
  void OnAccept(Worker& target, const boost::system::error_code& error,
                tcp::socket socket);
  void ArmStatsTimer();
  void Stop();

  const Config config_;
  const std::chrono::steady_clock::time_point start_;
  std::vector<std::unique_ptr<Worker>> workers_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_;
  asio::signal_set signals_;
  asio::steady_timer stats_timer_;
  size_t next_worker_ = 0;
  uint64_t next_session_id_ = 1;
  std::atomic<uint64_t> open_sessions_{0};

  std::mutex counts_mu_;  // joins only, never per message
  std::unordered_map<uint32_t, uint32_t> room_members_;  // guarded

  std::chrono::steady_clock::time_point last_time_;
  Totals last_;
};

}  // namespace asio_peer

#endif  // SERVERCORE_BENCH_PEERS_ASIO_SERVER_H_
