// The io_uring backend: a proactor, like the IOCP of the original design. One
// ring per worker, filled only by its worker (rings are not thread-safe for
// submission); other threads reach it through the worker's inbox and an
// eventfd read kept armed on the ring. Operations prepared during a round are
// submitted together by the next Poll, in one io_uring_enter that also waits.
//
// Receiving: one multishot recv per socket, armed once and left armed, into
// buffers the kernel picks from a ring of buffers the worker provides (one
// group per worker). The poll behind it is armed once per connection, not
// once per read, and a connection holds no receive memory of its own: its
// bytes are handed to the session straight from the provided buffer
// (SocketState::Received), and the buffer goes back to the ring at once.
// Where the kernel consumes provided buffers incrementally (6.12+), a few
// large buffers serve every socket, each read taking only the bytes it
// needs; elsewhere each read takes a whole smaller buffer. A recv that finds
// the ring empty ends with ENOBUFS and is armed again (the next submission
// finds the buffers returned meanwhile). Kernels without multishot recv
// (before 6.0) get one recv at a time, from the same buffers.
//
// Per socket: that recv and at most one send in flight (two sends in flight
// on one socket can complete out of order: liburing issue 1001). A send of
// one buffer is a plain IORING_OP_SEND, a gather write an IORING_OP_SENDMSG.
// Closing shuts the socket down and cancels by fd; the worker closes the
// descriptor only after both operations have completed
// (SocketState::ops_in_flight 0).
#include <fcntl.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "io/buffer_target.h"
#include "io/io_backend.h"
#include "io/io_worker.h"
#include "io/socket_state.h"
#include "memory_budget.h"
#include "servercore/check.h"
#include "servercore/log.h"

namespace servercore::internal {
namespace {

// user_data: a SocketState pointer (8-aligned) with the operation in the low
// bits, or an operation of the backend's own with no pointer.
enum Op : uint64_t {
  kOpRecv = 1,
  kOpWrite = 2,
  kOpWake = 3,
  kOpAccept = 4,
  kOpIgnore = 5,  // cancel requests: nothing to do on completion
};
constexpr uint64_t kOpMask = 7;
static_assert(alignof(SocketState) >= 8);

constexpr unsigned kRingEntries = 4096;
constexpr unsigned kCqEntries = 16 * kRingEntries;  // 65536: 1 MiB

// Newer than liburing 2.3's headers (Linux 6.12): a provided-buffer ring
// whose buffers the kernel consumes a read at a time, and the completion
// flag that says a buffer is not used up yet.
constexpr uint16_t kPbufRingIncremental = 2;  // IOU_PBUF_RING_INC
constexpr unsigned kCqeBufMore = 1U << 4;     // IORING_CQE_F_BUF_MORE

// The provided buffers: their group id, and the two shapes. Incremental:
// 32 buffers of 64 KiB (2 MiB per worker), each shared by many reads, of
// which the kernel holds at least 4 (256 KiB; see BufferTarget) and at most
// the worker's share of an eighth of the memory budget
// (MemoryBudget::worker_read_bytes: 8 of them with eight workers under a
// 32 MiB budget; all 32 under the default 1 GiB). Otherwise
// every read takes a whole buffer, so many small ones, enough for a round in
// which a thousand sockets each had something to say, all held.
constexpr uint16_t kBufferGroup = 0;
struct BufferShape {
  unsigned count;
  size_t size;
  bool incremental;
  unsigned least_held;
  unsigned most_held;  // the memory budget may lower it (SetUp)
};
constexpr BufferShape kIncrementalBuffers{32, 64 * 1024, true, 4, 32};
constexpr BufferShape kWholeBuffers{1024, 4 * 1024, false, 1024, 1024};

// At most this many receive completions are handed on as one read.
constexpr size_t kMaxPieces = 8;

constexpr size_t kPage = 4096;
size_t RoundUpToPage(size_t bytes) {
  return (bytes + kPage - 1) / kPage * kPage;
}

uint64_t Tag(SocketState& socket, Op op) {
  return reinterpret_cast<uint64_t>(&socket) | op;
}

// Creates `ring` with the flags we want (falling back for kernels before
// 6.1) and checks it has every operation we use. On failure the ring is torn
// down again, *why says why, and the result is -errno.
int SetUpRing(io_uring* ring, std::string* why) {
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
                 IORING_SETUP_DEFER_TASKRUN;
  params.cq_entries = kCqEntries;
  int r = io_uring_queue_init_params(kRingEntries, ring, &params);
  if (r == -EINVAL) {  // kernel older than 6.1: no DEFER_TASKRUN
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = kCqEntries;
    r = io_uring_queue_init_params(kRingEntries, ring, &params);
  }
  if (r < 0) {
    *why = std::string("io_uring_queue_init: ") + std::strerror(-r);
    return r;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  if (probe == nullptr) {
    *why = "io_uring: cannot probe supported operations";
    io_uring_queue_exit(ring);
    return -ENOSYS;
  }
  const int needed[] = {IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SENDMSG,
                        IORING_OP_READ, IORING_OP_ASYNC_CANCEL};
  int missing = -1;
  for (int op : needed) {
    if (!io_uring_opcode_supported(probe, op)) missing = op;
  }
  io_uring_free_probe(probe);
  if (missing >= 0) {
    *why = "io_uring: operation " + std::to_string(missing) +
           " not supported by this kernel";
    io_uring_queue_exit(ring);
    return -ENOSYS;
  }
  return 0;
}

// A ring of provided buffers, registered with one io_uring as kBufferGroup.
// The worker hands buffers back (Give) once it has handed their bytes on.
class ProvidedBuffers {
 public:
  ProvidedBuffers() = default;
  ~ProvidedBuffers() { Unmap(); }
  ProvidedBuffers(const ProvidedBuffers&) = delete;
  ProvidedBuffers& operator=(const ProvidedBuffers&) = delete;

  // Maps and registers the buffers, incremental where the kernel has it,
  // of which the kernel is to hold at most `max_held_bytes`' worth (but
  // never fewer than the shape's least). -errno (and *why) when this kernel
  // has no provided-buffer rings.
  int SetUp(io_uring* ring, size_t max_held_bytes, std::string* why) {
    BufferShape incremental = kIncrementalBuffers;
    incremental.most_held = static_cast<unsigned>(
        std::clamp<size_t>(max_held_bytes / incremental.size,
                           incremental.least_held, incremental.count));
    int r = SetUp(ring, incremental);
    if (r == -EINVAL) r = SetUp(ring, kWholeBuffers);
    if (r < 0) {
      *why = std::string("io_uring: cannot register provided buffers: ") +
             std::strerror(-r);
    }
    return r;
  }

  bool incremental() const noexcept { return shape_.incremental; }

  // Where the bytes of a completion with `flags` (IORING_CQE_F_BUFFER set)
  // begin: what Take returns, without taking them.
  const std::byte* Peek(unsigned flags) const {
    const unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
    SERVERCORE_CHECK(id < shape_.count, "io_uring: buffer id %u", id);
    return base_ + id * shape_.size + consumed_[id];
  }

  // The bytes a completion with `flags` (IORING_CQE_F_BUFFER set) and
  // `length` received; `*done` is set when the kernel is finished with the
  // buffer, which must then be given back after the bytes are used.
  std::byte* Take(unsigned flags, size_t length, bool* done) {
    const unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
    SERVERCORE_CHECK(id < shape_.count, "io_uring: buffer id %u", id);
    std::byte* data = base_ + id * shape_.size + consumed_[id];
    // An incremental buffer is retired only by bytes written into it. Kernels
    // before the fix for liburing issue 1553 leave IORING_CQE_F_BUF_MORE off
    // a completion of no bytes (end of stream, an error) although the buffer
    // stays at the ring's head: giving it back would put it there twice.
    *done = !shape_.incremental || (length > 0 && (flags & kCqeBufMore) == 0);
    consumed_[id] = *done ? 0 : consumed_[id] + length;
    used_ = true;
    resident_ = true;
    return data;
  }
  // Takes buffer `flags >> IORING_CQE_BUFFER_SHIFT` back from the kernel,
  // once its bytes are used. Publish decides when it goes back.
  void Give(unsigned flags) {
    const unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
    SERVERCORE_CHECK(!free_[id], "io_uring: buffer %u given back twice", id);
    free_[id] = true;
    --with_kernel_;
    target_.Given();
  }

  // A receive found no buffer (-ENOBUFS).
  void RanDry() { target_.RanDry(); }

  // Between rounds, about once a second (UringBackend::ReleaseIdleMemory):
  // when no read has landed in the buffers since the last call, gives their
  // pages back to the kernel and lets it hold only the least again. After a
  // flood every buffer has been written, up to 2 MiB a worker, and a quiet
  // worker has no rounds to shrink its target by: with eight workers that
  // alone kept 13 MiB after the sessions had gone, past the contract's
  // 10 MiB. Buffers still with the kernel are dropped too. That is safe
  // only when the kernel writes into them nowhere but inside this thread's
  // own io_uring_enter (DEFER_TASKRUN: receives run as task work there),
  // and every completion of the last one has been handled, its bytes
  // copied where they are kept: so the ring must defer its
  // task work, and no completion may wait unseen (a receive issued at once
  // by a submission in the middle of a round): `safe` says both. A read
  // into a dropped buffer later finds fresh zeroed pages.
  void ReleaseIfQuiet(bool safe) {
    const bool quiet = !used_;
    used_ = false;
    if (!quiet || !resident_ || !safe) return;
    ::madvise(base_, buffer_bytes_, MADV_DONTNEED);
    target_.Reset();
    resident_ = false;
  }

  // Ends a round: hands buffers back to the kernel until it holds as many
  // as the target (BufferTarget) says, in order of id, round and round the
  // first target's worth. The kernel fills them in the order given, so a read
  // cut off at one buffer's end goes on at the start of the next one in
  // memory, and OnRecvRun joins the pieces again.
  //
  // So a buffer still with the kernel when its turn comes (the target has
  // just changed) is waited for, never long: the kernel uses them up in the
  // same order. Except after the kernel ran dry, when every buffer it had
  // has come back, unless one never will (a lost completion): then it is
  // passed over, since waiting would starve every socket of this worker.
  void Publish() {
    const bool ran_dry = target_.EndRound();
    const unsigned target = target_.value();
    int added = 0;
    for (unsigned passed = 0; with_kernel_ < target && passed < target;) {
      if (next_ >= target) next_ = 0;
      const unsigned id = next_++;
      if (!free_[id]) {
        if (!ran_dry) break;
        ++passed;
        continue;
      }
      free_[id] = false;
      io_uring_buf_ring_add(ring_, base_ + id * shape_.size,
                            static_cast<unsigned>(shape_.size),
                            static_cast<unsigned short>(id),
                            io_uring_buf_ring_mask(shape_.count), added);
      ++added;
      ++with_kernel_;
    }
    if (added > 0) io_uring_buf_ring_advance(ring_, added);
  }

 private:
  int SetUp(io_uring* ring, BufferShape shape) {
    Unmap();
    shape_ = shape;
    ring_bytes_ = RoundUpToPage(shape.count * sizeof(io_uring_buf));
    buffer_bytes_ = shape.count * shape.size;
    void* ring_memory = ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void* buffers = ::mmap(nullptr, buffer_bytes_, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring_memory == MAP_FAILED || buffers == MAP_FAILED) {
      if (ring_memory != MAP_FAILED) ::munmap(ring_memory, ring_bytes_);
      if (buffers != MAP_FAILED) ::munmap(buffers, buffer_bytes_);
      return -ENOMEM;
    }
    // Best effort: names them in /proc/PID/smaps.
    ::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, buffers, buffer_bytes_,
            "servercore-recv");
    ring_ = static_cast<io_uring_buf_ring*>(ring_memory);
    base_ = static_cast<std::byte*>(buffers);
    io_uring_buf_ring_init(ring_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(ring_);
    reg.ring_entries = shape.count;
    reg.bgid = kBufferGroup;
    reg.pad = shape.incremental ? kPbufRingIncremental : 0;  // flags
    const int r = io_uring_register_buf_ring(ring, &reg, 0);
    if (r < 0) {
      Unmap();
      return r;
    }
    consumed_.assign(shape.count, 0);
    free_.assign(shape.count, true);
    next_ = 0;
    with_kernel_ = 0;
    target_ = BufferTarget(shape.least_held, shape.most_held);
    Publish();
    return 0;
  }

  // The ring goes with the io_uring it was registered with (or failed to
  // register): only the memory is ours to drop.
  void Unmap() {
    if (ring_ != nullptr) ::munmap(ring_, ring_bytes_);
    if (base_ != nullptr) ::munmap(base_, buffer_bytes_);
    ring_ = nullptr;
    base_ = nullptr;
  }

  BufferShape shape_{};
  io_uring_buf_ring* ring_ = nullptr;
  std::byte* base_ = nullptr;
  size_t ring_bytes_ = 0;
  size_t buffer_bytes_ = 0;
  std::vector<size_t> consumed_;  // incremental: bytes used of each buffer
  std::vector<bool> free_;        // per buffer: not with the kernel
  unsigned next_ = 0;             // the buffer to give the kernel next
  unsigned with_kernel_ = 0;      // published and not given back
  BufferTarget target_{1, 1};     // how many the kernel should hold
  bool used_ = false;      // a read landed since ReleaseIfQuiet last looked
  bool resident_ = false;  // a read landed since the pages were dropped
};

}  // namespace

class UringBackend final : public IoBackend {
  struct Completion {
    uint64_t user_data;
    int res;
    unsigned flags;
  };

 public:
  UringBackend(IoWorker& worker, int wake_fd)
      : worker_(worker), wake_fd_(wake_fd) {}
  ~UringBackend() override {
    Shutdown();
    ::close(wake_fd_);
  }

  // Creates the ring (on the worker's thread: SINGLE_ISSUER binds it).
  [[nodiscard]] int Init(std::string* why) SERVERCORE_ON_WORKER {
    if (const int r = SetUpRing(&ring_, why); r < 0) return r;
    ring_ready_ = true;
    if (const int r =
            buffers_.SetUp(&ring_, worker_.budget().worker_read_bytes(), why);
        r < 0) {
      return r;
    }
    // Best effort: io_uring_enter then skips looking the ring's fd up.
    io_uring_register_ring_fd(&ring_);
    ArmWake();
    return 0;
  }

  void Attach(SocketState& socket) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    // io_uring never blocks the thread; a blocking socket lets the kernel
    // wait for readiness itself instead of answering -EAGAIN.
    const int flags = ::fcntl(socket.fd(), F_GETFL);
    if (flags >= 0) ::fcntl(socket.fd(), F_SETFL, flags & ~O_NONBLOCK);
    // The first read is small: a multishot receive armed now would take a
    // flood's first reads whole, before the session could pause (what a
    // pause keeps is the rest of its read). Its completion arms the usual
    // receive.
    ArmRecv(socket, /*small=*/true);
  }

  int64_t Write(SocketState& socket) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    io_uring_sqe* sqe = GetSqe();
    const msghdr& message = socket.write_message();
    if (message.msg_iovlen == 1) {
      // One buffer: a send, which spares the kernel copying the msghdr.
      io_uring_prep_send(sqe, socket.fd(), message.msg_iov[0].iov_base,
                         message.msg_iov[0].iov_len, MSG_NOSIGNAL);
    } else {
      io_uring_prep_sendmsg(sqe, socket.fd(), &message, MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data64(sqe, Tag(socket, kOpWrite));
    ++socket.ops_in_flight;
    return kInFlight;
  }

  void StopRecv(SocketState& socket) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    if (!socket.recv_armed) return;
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_cancel64(sqe, Tag(socket, kOpRecv), 0);
    io_uring_sqe_set_data64(sqe, kOpIgnore);
  }

  void ResumeRecv(SocketState& socket) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    // Still armed: the cancel of the pause has not landed yet; it ends the
    // receive with -ECANCELED, and OnRecv arms it again.
    if (!socket.recv_armed && socket.CanRead()) ArmRecv(socket);
  }

  // The receive ended with the stream (no F_MORE). No poll can wait for a
  // reset here: io_uring always reports POLLRDHUP, which the peer's FIN
  // has set already; IoWorker::SweepSessions asks the socket instead.
  void ReadEnded(SocketState& socket) override SERVERCORE_ON_WORKER {
    StopRecv(socket);
  }

  // Nothing to stop: StopRecv cancelled the receive, and no poll is armed.
  void Unwatch(SocketState&) override SERVERCORE_ON_WORKER {}

  void Detach(SocketState& socket) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    if (socket.ops_in_flight == 0) return;
    // shutdown completes a pending recv (with 0) and a blocked send (with an
    // error); the cancel catches anything shutdown does not.
    ::shutdown(socket.fd(), SHUT_RDWR);
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_cancel_fd(sqe, socket.fd(), IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, kOpIgnore);
  }

  void Listen(int listen_fd) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    listen_fd_ = listen_fd;
    ResumeAccept();
  }
  void PauseAccept() override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    accepting_ = false;
    if (accept_armed_) {
      io_uring_sqe* sqe = GetSqe();
      io_uring_prep_cancel64(sqe, kOpAccept, 0);
      io_uring_sqe_set_data64(sqe, kOpIgnore);
    }
  }
  void ResumeAccept() override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    accepting_ = true;
    if (!accept_armed_) ArmAccept();
  }
  bool HasOwnOpsInFlight() const noexcept override { return accept_armed_; }

  void Poll(int timeout_ms) override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    __kernel_timespec timeout{};
    timeout.tv_sec = timeout_ms / 1000;
    timeout.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1'000'000;
    io_uring_cqe* cqe = nullptr;
    // One syscall: submit everything prepared this round, then wait.
    const int r =
        io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &timeout, nullptr);
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY) {
      SERVERCORE_LOG_ERROR("io_uring_submit_and_wait: %s", std::strerror(-r));
    }
    worker_.ReadClock();
    // Completions are copied out and the queue advanced before dispatching:
    // handlers prepare new operations and may submit them (when the
    // submission queue fills), which must find room in the completion queue.
    for (;;) {
      unsigned head;
      unsigned seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        batch_[seen] = Completion{cqe->user_data, cqe->res, cqe->flags};
        if (++seen == batch_.size()) break;
      }
      if (seen == 0) break;
      io_uring_cq_advance(&ring_, seen);
      for (unsigned i = 0; i < seen;) {
        if ((batch_[i].user_data & kOpMask) == kOpRecv) {
          i += OnRecvRun(std::span(batch_).first(seen).subspan(i));
        } else {
          Dispatch(batch_[i].user_data, batch_[i].res, batch_[i].flags);
          ++i;
        }
      }
      buffers_.Publish();
      if (seen < batch_.size()) break;
    }
  }

  void ReleaseIdleMemory() override SERVERCORE_ON_WORKER {
    worker_.AssertInWorkerThread();
    // A submission this round (GetSqe, with the queue full) may have issued
    // a receive at once, its bytes already in a buffer and its completion
    // not yet seen: then not now.
    buffers_.ReleaseIfQuiet((ring_.flags & IORING_SETUP_DEFER_TASKRUN) != 0 &&
                            io_uring_cq_ready(&ring_) == 0 &&
                            !io_uring_cq_has_overflow(&ring_));
  }

  void Wake() noexcept override {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wake_fd_, &one, sizeof(one));
  }

  void Shutdown() noexcept override {
    if (ring_ready_) io_uring_queue_exit(&ring_);
    ring_ready_ = false;
  }

 private:
  io_uring_sqe* GetSqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    // Queue full: hand what we have to the kernel. It refuses (-EBUSY) only
    // while completions overflow, which copying them out before dispatch
    // (Poll) prevents; the check below catches anything else.
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    SERVERCORE_CHECK(sqe != nullptr, "io_uring submission queue stuck full");
    return sqe;
  }

  void ArmRecv(SocketState& socket, bool small = false) SERVERCORE_ON_WORKER {
    io_uring_sqe* sqe = GetSqe();
    if (small || socket.SmallReads()) {
      // One small read at a time: what a pause keeps is what it read.
      io_uring_prep_recv(sqe, socket.fd(), nullptr, SocketState::kThrottledRead,
                         0);
    } else if (multishot_recv_) {
      io_uring_prep_recv_multishot(sqe, socket.fd(), nullptr, 0, 0);
    } else {
      io_uring_prep_recv(sqe, socket.fd(), nullptr, 0, 0);
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(sqe, Tag(socket, kOpRecv));
    socket.recv_armed = true;
    ++socket.ops_in_flight;
  }

  // Handles the receive completion at the front of `run`, with those after
  // it that continue the same read, and returns how many it handled.
  //
  // A read that fills the kernel's current buffer goes on into the next one,
  // in a completion of its own. Publish gives buffers back in order of id,
  // so that next one usually lies right after in memory: then the pieces are
  // handed on as the one read they were, and a session answers them in one
  // write instead of one per piece (S5, 4 KiB echoes: 0.19 writes per echo
  // without this, 0.13 with it, 0.125 on epoll).
  unsigned OnRecvRun(std::span<const Completion> run) SERVERCORE_ON_WORKER {
    const Completion& first = run[0];
    auto& socket = *reinterpret_cast<SocketState*>(first.user_data & ~kOpMask);
    const auto bytes = [](const Completion& c) {
      return c.res > 0 && (c.flags & IORING_CQE_F_BUFFER) != 0
                 ? static_cast<size_t>(c.res)
                 : 0;
    };
    size_t length = bytes(first);
    const std::byte* data = length > 0 ? buffers_.Peek(first.flags) : nullptr;
    size_t count = 1;
    while (count < std::min(run.size(), kMaxPieces) &&
           (run[count - 1].flags & IORING_CQE_F_MORE) != 0 &&
           run[count].user_data == first.user_data && bytes(run[count]) > 0 &&
           buffers_.Peek(run[count].flags) == data + length) {
      length += bytes(run[count]);
      ++count;
    }
    if (count == 1) {
      OnRecv(socket, first.res, first.flags);
      return 1;
    }
    // Only the last piece can have ended the receive.
    if ((run[count - 1].flags & IORING_CQE_F_MORE) == 0) {
      socket.recv_armed = false;
      --socket.ops_in_flight;
    }
    std::array<bool, kMaxPieces> done{};
    for (size_t i = 0; i < count; ++i) {
      buffers_.Take(run[i].flags, bytes(run[i]), &done[i]);
    }
    socket.Received(std::span(data, length));
    for (size_t i = 0; i < count; ++i) {
      if (done[i]) buffers_.Give(run[i].flags);
    }
    if (!socket.recv_armed && socket.CanRead() && !socket.recv_paused()) {
      ArmRecv(socket);
    }
    return static_cast<unsigned>(count);
  }

  void OnRecv(SocketState& socket, int res,
              unsigned flags) SERVERCORE_ON_WORKER {
    if ((flags & IORING_CQE_F_MORE) == 0) {  // the recv has ended
      socket.recv_armed = false;
      --socket.ops_in_flight;
    }
    if ((flags & IORING_CQE_F_BUFFER) != 0) {
      bool done = false;
      std::byte* data =
          buffers_.Take(flags, res > 0 ? static_cast<size_t>(res) : 0, &done);
      if (res > 0) {
        socket.Received(std::span(data, static_cast<size_t>(res)));
      } else {
        socket.RecvEnded(res);
      }
      if (done) buffers_.Give(flags);
    } else if (res == -ENOBUFS) {
      // The ring ran dry: armed again below, it finds the buffers this
      // round gives back.
      worker_.counters().recv_buffer_waits.Add();
      buffers_.RanDry();
    } else if (res == -EINVAL && multishot_recv_) {
      multishot_recv_ = false;  // kernel before 6.0: one recv at a time
    } else if (res == -ECANCELED) {
      // StopRecv's cancel: a pause (armed again below once resumed), or a
      // close (CanRead is false).
    } else {
      socket.RecvEnded(res);
    }
    if (!socket.recv_armed && socket.CanRead() && !socket.recv_paused()) {
      ArmRecv(socket);
    }
  }

  void ArmWake() {
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_read(sqe, wake_fd_, &wake_count_, sizeof(wake_count_), 0);
    io_uring_sqe_set_data64(sqe, kOpWake);
  }

  void ArmAccept() SERVERCORE_ON_WORKER {
    if (listen_fd_ < 0) return;
    io_uring_sqe* sqe = GetSqe();
    if (multishot_accept_) {
      io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr,
                                     SOCK_CLOEXEC);
    } else {
      io_uring_prep_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    }
    io_uring_sqe_set_data64(sqe, kOpAccept);
    accept_armed_ = true;
  }

  void Dispatch(uint64_t user_data, int res,
                unsigned flags) SERVERCORE_ON_WORKER {
    const uint64_t op = user_data & kOpMask;
    auto* socket = reinterpret_cast<SocketState*>(user_data & ~kOpMask);
    switch (op) {
      case kOpWrite:
        --socket->ops_in_flight;
        socket->WriteDone(res);
        break;
      case kOpWake:
        ArmWake();
        break;
      case kOpAccept:
        OnAccept(res, flags);
        break;
      default:
        break;
    }
  }

  void OnAccept(int res, unsigned flags) SERVERCORE_ON_WORKER {
    if ((flags & IORING_CQE_F_MORE) == 0) accept_armed_ = false;
    if (res >= 0) {
      worker_.OnAccepted(res);
    } else if (res == -EINVAL && multishot_accept_) {
      multishot_accept_ = false;  // kernel before 5.19: one accept at a time
    } else if (res != -ECANCELED && res != -EINTR) {
      worker_.OnAcceptError(-res);
    }
    if (accepting_ && !accept_armed_) ArmAccept();
  }

  IoWorker& worker_;
  const int wake_fd_;
  io_uring ring_{};
  ProvidedBuffers buffers_;
  std::array<Completion, 512> batch_{};
  bool ring_ready_ = false;
  uint64_t wake_count_ = 0;
  int listen_fd_ = -1;
  bool accepting_ = false;
  bool accept_armed_ = false;
  bool multishot_accept_ = true;
  bool multishot_recv_ = true;
};

std::unique_ptr<IoBackend> CreateUringBackend(IoWorker& worker,
                                              std::error_code* error,
                                              std::string* why) {
  const int wake_fd = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd < 0) {
    *error = std::error_code(errno, std::system_category());
    *why = "eventfd failed";
    return nullptr;
  }
  auto backend = std::make_unique<UringBackend>(worker, wake_fd);
  worker.AssertInWorkerThread();
  if (const int r = backend->Init(why); r < 0) {
    *error = std::error_code(-r, std::system_category());
    return nullptr;
  }
  return backend;
}

bool UringAvailable(std::string* why) {
  io_uring ring{};
  if (SetUpRing(&ring, why) < 0) return false;
  ProvidedBuffers buffers;
  const bool ok = buffers.SetUp(&ring, SIZE_MAX, why) == 0;
  io_uring_queue_exit(&ring);
  return ok;
}

}  // namespace servercore::internal
