/* uring_echo_server: the io_uring floor for the echo scenarios (S1, S2, S5
 * of bench/scenarios.py), the twin of epoll_echo_server.c: the least an
 * io_uring server must do to answer docs/PROTOCOL.md's C_ECHO, in plain C on
 * one thread. It answers how little CPU per message io_uring can spend where
 * epoll_echo_server spends its floor.
 *
 * One ring (SINGLE_ISSUER | DEFER_TASKRUN where the kernel has them, a large
 * CQ), one io_uring_submit_and_wait per round: every completion of the round
 * is handled, then what it prepared goes in with the next wait.
 *   - One multishot accept, straight into the registered file table (direct
 *     descriptors: no fd lookup per operation), armed again when a
 *     completion says it has ended (plain descriptors where the table
 *     cannot be registered). TCP_NODELAY is inherited from the listening
 *     socket.
 *   - One multishot recv per connection into a ring of provided buffers
 *     shared by all connections, armed again when it ends (ENOBUFS: the
 *     buffers given back this round serve it). A buffer goes back to the
 *     ring as soon as its bytes are framed; only the tail of a packet split
 *     across receives is copied, into a per-connection buffer.
 *   - Per connection one growing output buffer: every reply framed in one
 *     round is appended to it, and at the end of the round it goes out in
 *     one IORING_OP_SEND. At most one send in flight per connection (two
 *     could complete out of order): what a round appends meanwhile waits in
 *     the other buffer of the pair for the next. Short sends send the rest.
 * No allocation per message, no framework, no rooms: packets other than
 * C_ECHO (id 1) are ignored.
 *
 *   uring_echo_server --port 0     # prints "listening on HOST:PORT"
 *
 * Takes GameServer's flags so the scenario runner can start it alike
 * (--host and --port are used, the rest ignored). On SIGTERM or SIGINT it
 * prints one "[summary]" line with the counts the runner reads (packets in
 * and out, writes: the sends submitted) and exits 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
  kRingEntries = 4096,
  kCqEntries = 65536,
  /* Provided buffers (a power of two): more than the connections that
   * receive in one round of S1, S2 and S5, so ENOBUFS stays rare. 128 MiB of
   * address space, of which only the pages the kernel writes are resident. */
  kBufCount = 4096,
  kBufSize = 32 * 1024,
  kBufGroup = 0,
  kMaxFiles = 1 << 20, /* cap on the registered file table */
  kEcho = 1,
  kEchoReply = 2,
};

/* user_data: a connection's address with the operation in its low bits, or
 * the operation alone. */
enum { kOpRecv = 1, kOpSend, kOpCancel, kOpAccept, kOpStop, kOpClose };

struct conn {
  int fd;       /* a direct descriptor (an index), or a plain one */
  unsigned ops; /* operations in flight: recv, send, cancel */
  unsigned char recv_armed, sending, closing, dead, dirty;
  struct conn* next_dirty;
  unsigned char* tail; /* a packet split across receives, so far */
  size_t tail_len, tail_cap;
  unsigned char* out; /* replies of this round, sent at its end */
  size_t out_len, out_cap;
  unsigned char* wire; /* the send in flight */
  size_t wire_len, wire_cap, wire_sent;
};

static unsigned long long packets_in, packets_out, writes;
static struct io_uring ring;
static struct io_uring_buf_ring* buf_ring;
static unsigned char* buffers;
static int returned; /* buffers given back this round, not yet published */
static int direct;   /* connections are direct descriptors */
static int listen_fd, stop_fd;
static uint64_t stop_count;
static struct conn* dirty_list; /* connections with replies to send */

/* Any thread may take the signal (an LD_PRELOADed library's thread, say):
 * the handler only completes the eventfd read kept armed on the ring. */
static void on_stop_signal(int sig) {
  (void)sig;
  const uint64_t one = 1;
  if (write(stop_fd, &one, sizeof(one)) < 0) {
    /* the loop is already waking */
  }
}

static struct io_uring_sqe* get_sqe(void) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  if (sqe == NULL) { /* full: hand what is there to the kernel now */
    io_uring_submit(&ring);
    sqe = io_uring_get_sqe(&ring);
    if (sqe == NULL) abort();
  }
  return sqe;
}

/* An operation on a connection's descriptor. */
static void on_conn_fd(struct io_uring_sqe* sqe) {
  if (direct) sqe->flags |= IOSQE_FIXED_FILE;
}

static void arm_accept(void) {
  struct io_uring_sqe* sqe = get_sqe();
  if (direct) {
    io_uring_prep_multishot_accept_direct(sqe, listen_fd, NULL, NULL, 0);
  } else {
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
  }
  io_uring_sqe_set_data64(sqe, kOpAccept);
}

static void arm_stop(void) {
  struct io_uring_sqe* sqe = get_sqe();
  io_uring_prep_read(sqe, stop_fd, &stop_count, sizeof(stop_count), 0);
  io_uring_sqe_set_data64(sqe, kOpStop);
}

static void arm_recv(struct conn* c) {
  struct io_uring_sqe* sqe = get_sqe();
  io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
  on_conn_fd(sqe);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufGroup;
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | kOpRecv);
  c->recv_armed = 1;
  ++c->ops;
}

/* Sends the rest of c->wire. */
static void send_wire(struct conn* c) {
  struct io_uring_sqe* sqe = get_sqe();
  io_uring_prep_send(sqe, c->fd, c->wire + c->wire_sent,
                     c->wire_len - c->wire_sent, MSG_NOSIGNAL);
  on_conn_fd(sqe);
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | kOpSend);
  c->sending = 1;
  ++c->ops;
  ++writes;
}

/* The round's replies become the send in flight; the buffer that carried
 * the last one takes the next round's. */
static void start_send(struct conn* c) {
  unsigned char* const p = c->wire;
  const size_t cap = c->wire_cap;
  c->wire = c->out;
  c->wire_cap = c->out_cap;
  c->wire_len = c->out_len;
  c->wire_sent = 0;
  c->out = p;
  c->out_cap = cap;
  c->out_len = 0;
  send_wire(c);
}

static void mark_dirty(struct conn* c) {
  if (c->dirty) return;
  c->dirty = 1;
  c->next_dirty = dirty_list;
  dirty_list = c;
}

/* Frees c once nothing is in flight and nothing is left to send. */
static void maybe_release(struct conn* c) {
  if (!c->closing || c->ops > 0 || c->dirty) return;
  if (c->out_len > 0 && !c->dead) return;
  if (direct) {
    struct io_uring_sqe* sqe = get_sqe();
    io_uring_prep_close_direct(sqe, (unsigned)c->fd);
    io_uring_sqe_set_data64(sqe, kOpClose);
  } else {
    close(c->fd);
  }
  free(c->tail);
  free(c->out);
  free(c->wire);
  free(c);
}

/* Drops the connection: what it has in flight is cancelled. */
static void kill_conn(struct conn* c) {
  if (c->dead) return;
  c->dead = c->closing = 1;
  c->out_len = 0;
  if (c->ops == 0) return;
  struct io_uring_sqe* sqe = get_sqe();
  io_uring_prep_cancel_fd(
      sqe, c->fd,
      IORING_ASYNC_CANCEL_ALL | (direct ? IORING_ASYNC_CANCEL_FD_FIXED : 0));
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | kOpCancel);
  ++c->ops;
}

static void grow(unsigned char** p, size_t* cap, size_t need) {
  if (need <= *cap) return;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  unsigned char* grown = realloc(*p, n);
  if (grown == NULL) abort();
  *p = grown;
  *cap = n;
}

/* Appends an S_ECHO for a C_ECHO; `p` holds one whole packet. */
static void on_packet(struct conn* c, const unsigned char* p, unsigned size) {
  ++packets_in;
  if ((p[2] | (unsigned)p[3] << 8) != kEcho) return;
  grow(&c->out, &c->out_cap, c->out_len + size);
  unsigned char* o = c->out + c->out_len;
  o[0] = p[0];
  o[1] = p[1];
  o[2] = kEchoReply;
  o[3] = 0;
  memcpy(o + 4, p + 4, size - 4);
  c->out_len += size;
  ++packets_out;
}

static void tail_append(struct conn* c, const unsigned char* p, size_t n) {
  grow(&c->tail, &c->tail_cap, c->tail_len + n);
  memcpy(c->tail + c->tail_len, p, n);
  c->tail_len += n;
}

/* Frames received bytes: the packet the tail started first, then whole
 * packets straight from the provided buffer, then a new tail; -1 on a bad
 * size. */
static int on_bytes(struct conn* c, const unsigned char* p, size_t n) {
  if (c->tail_len > 0) {
    if (c->tail_len < 4) {
      const size_t take = 4 - c->tail_len < n ? 4 - c->tail_len : n;
      tail_append(c, p, take);
      p += take;
      n -= take;
      if (c->tail_len < 4) return 0;
    }
    const unsigned size = c->tail[0] | (unsigned)c->tail[1] << 8;
    if (size < 4) return -1;
    const size_t want = size - c->tail_len;
    const size_t take = want < n ? want : n;
    tail_append(c, p, take);
    p += take;
    n -= take;
    if (c->tail_len < size) return 0;
    on_packet(c, c->tail, size);
    c->tail_len = 0;
  }
  while (n >= 4) {
    const unsigned size = p[0] | (unsigned)p[1] << 8;
    if (size < 4) return -1;
    if (n < size) break;
    on_packet(c, p, size);
    p += size;
    n -= size;
  }
  if (n > 0) tail_append(c, p, n);
  return 0;
}

static void on_recv(struct conn* c, int res, unsigned flags) {
  if (flags & IORING_CQE_F_BUFFER) {
    const unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
    unsigned char* data = buffers + (size_t)id * kBufSize;
    if (res > 0 && !c->dead) {
      if (on_bytes(c, data, (size_t)res) < 0) {
        kill_conn(c);
      } else if (c->out_len > 0) {
        mark_dirty(c);
      }
    }
    io_uring_buf_ring_add(buf_ring, data, kBufSize, (unsigned short)id,
                          io_uring_buf_ring_mask(kBufCount), returned++);
  }
  if (flags & IORING_CQE_F_MORE) return;
  c->recv_armed = 0;
  --c->ops;
  if ((res > 0 || res == -ENOBUFS) && !c->closing) {
    arm_recv(c); /* ended, the connection has not */
  } else {
    c->closing = 1; /* end of stream, error, or cancelled */
  }
  maybe_release(c);
}

static void on_send(struct conn* c, int res) {
  c->sending = 0;
  --c->ops;
  if (res <= 0) {
    kill_conn(c);
  } else if (!c->dead) {
    c->wire_sent += (size_t)res;
    if (c->wire_sent < c->wire_len) {
      send_wire(c); /* short send: the rest */
    } else {
      c->wire_len = c->wire_sent = 0;
      if (c->out_len > 0) mark_dirty(c);
    }
  }
  maybe_release(c);
}

static void on_accept(int res, unsigned flags) {
  if (res >= 0) {
    struct conn* c = calloc(1, sizeof(*c));
    if (c == NULL) abort();
    c->fd = res;
    arm_recv(c);
  }
  if (!(flags & IORING_CQE_F_MORE)) arm_accept();
}

/* One send per connection with replies and none in flight. */
static void flush_dirty(void) {
  while (dirty_list != NULL) {
    struct conn* c = dirty_list;
    dirty_list = c->next_dirty;
    c->dirty = 0;
    if (!c->sending && !c->dead && c->out_len > 0) start_send(c);
    maybe_release(c);
  }
}

static int setup_ring(void) {
  struct io_uring_params params = {.flags = IORING_SETUP_CQSIZE |
                                            IORING_SETUP_SINGLE_ISSUER |
                                            IORING_SETUP_DEFER_TASKRUN,
                                   .cq_entries = kCqEntries};
  int r = io_uring_queue_init_params(kRingEntries, &ring, &params);
  if (r == -EINVAL) { /* kernel before 6.1 */
    memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = kCqEntries;
    r = io_uring_queue_init_params(kRingEntries, &ring, &params);
  }
  if (r < 0) return r;
  /* Best effort: io_uring_enter then skips looking the ring's fd up. */
  io_uring_register_ring_fd(&ring);

  const size_t ring_bytes = kBufCount * sizeof(struct io_uring_buf);
  buf_ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  buffers = mmap(NULL, (size_t)kBufCount * kBufSize, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (buf_ring == MAP_FAILED || buffers == MAP_FAILED) return -ENOMEM;
  io_uring_buf_ring_init(buf_ring);
  struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)buf_ring,
                                 .ring_entries = kBufCount,
                                 .bgid = kBufGroup};
  r = io_uring_register_buf_ring(&ring, &reg, 0);
  if (r < 0) return r;
  for (int id = 0; id < kBufCount; ++id) {
    io_uring_buf_ring_add(buf_ring, buffers + (size_t)id * kBufSize, kBufSize,
                          (unsigned short)id, io_uring_buf_ring_mask(kBufCount),
                          id);
  }
  io_uring_buf_ring_advance(buf_ring, kBufCount);

  /* As many direct descriptors as the process may open; plain descriptors
   * where the table cannot be registered. */
  struct rlimit lim;
  unsigned files = 4096;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
    files = lim.rlim_cur < kMaxFiles ? (unsigned)lim.rlim_cur : kMaxFiles;
  direct = io_uring_register_files_sparse(&ring, files) == 0;
  return 0;
}

int main(int argc, char** argv) {
  const char* host = "0.0.0.0";
  int port = 7777;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
    if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
  }
  /* Blocking: io_uring would complete a read of a non-blocking one with
   * EAGAIN instead of waiting. */
  stop_fd = eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) return 1;
  struct sigaction sa = {.sa_handler = on_stop_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  /* Accepted sockets inherit it (a direct descriptor cannot be given it). */
  setsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, host, &addr.sin_addr);
  socklen_t len = sizeof(addr);
  if (bind(listen_fd, (struct sockaddr*)&addr, sizeof(addr)) != 0 ||
      listen(listen_fd, 4096) != 0 ||
      getsockname(listen_fd, (struct sockaddr*)&addr, &len) != 0) {
    perror("uring_echo_server: listen");
    return 1;
  }
  const int r = setup_ring();
  if (r < 0) {
    fprintf(stderr, "uring_echo_server: io_uring: %s\n", strerror(-r));
    return 1;
  }
  printf("listening on %s:%u\n", host, (unsigned)ntohs(addr.sin_port));
  fflush(stdout);

  arm_accept();
  arm_stop();
  for (int running = 1; running;) {
    const int w = io_uring_submit_and_wait(&ring, 1);
    if (w < 0 && w != -EINTR && w != -EAGAIN && w != -EBUSY) {
      fprintf(stderr, "uring_echo_server: io_uring_enter: %s\n", strerror(-w));
      return 1;
    }
    unsigned head, seen = 0;
    struct io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const uint64_t data = io_uring_cqe_get_data64(cqe);
      struct conn* c = (struct conn*)(uintptr_t)(data & ~(uint64_t)7);
      switch (data & 7) {
        case kOpRecv:
          on_recv(c, cqe->res, cqe->flags);
          break;
        case kOpSend:
          on_send(c, cqe->res);
          break;
        case kOpCancel:
          --c->ops;
          maybe_release(c);
          break;
        case kOpAccept:
          on_accept(cqe->res, cqe->flags);
          break;
        case kOpStop:
          running = 0;
          break;
        default: /* kOpClose */
          break;
      }
    }
    io_uring_cq_advance(&ring, seen);
    if (returned > 0) {
      io_uring_buf_ring_advance(buf_ring, returned);
      returned = 0;
    }
    flush_dirty();
  }
  printf("[summary] packets in %llu out %llu | writes %llu\n", packets_in,
         packets_out, writes);
  return 0;
}
