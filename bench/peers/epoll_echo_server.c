/* epoll_echo_server: the floor reference for the echo scenarios (S1, S2,
 * S5 of bench/scenarios.py): the least a server must do to answer
 * docs/PROTOCOL.md's C_ECHO, in plain C on one thread with level-triggered
 * epoll. Per connection one 64 KiB read buffer and one growing output
 * buffer: every reply framed out of one read is appended to it and the lot
 * goes out in one write(); what the kernel does not take waits for
 * EPOLLOUT. No allocation per message, no framework, no rooms: packets
 * other than C_ECHO (id 1) are ignored.
 *
 *   epoll_echo_server --port 0     # prints "listening on HOST:PORT"
 *
 * With --in-place it copies nothing in user space: when nothing waits to
 * go out and a read holds only C_ECHO packets, it turns each into its
 * S_ECHO where it lies (the id) and writes the read buffer itself; only
 * what the kernel does not take is copied out. That is not a server
 * anyone would write (the reply must be the request with another id, and
 * the buffer is held until written), but it bounds from below what any
 * server that reads and writes the bytes through the socket can spend on
 * 4 KiB echoes (bench/scenarios.py's floor-epoll-inplace).
 *
 * Takes GameServer's flags so the scenario runner can start it alike
 * (--host and --port are used, the rest ignored). On SIGTERM or SIGINT it
 * prints one "[summary]" line with the counts the runner reads (packets in
 * and out, writes) and exits 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kReadSize = 64 * 1024, kMaxEvents = 256, kEcho = 1, kEchoReply = 2 };

struct conn {
  int fd;
  size_t in_len;
  unsigned char in[kReadSize];
  unsigned char* out;
  size_t out_len, out_cap, out_sent;
};

static unsigned long long packets_in, packets_out, writes;
static int in_place;
static int stop_pipe[2];

/* Any thread may take the signal (an LD_PRELOADed library's thread, say):
 * the handler only wakes the loop. */
static void on_stop_signal(int sig) {
  (void)sig;
  const char byte = 1;
  if (write(stop_pipe[1], &byte, 1) < 0) {
    /* the loop is already waking */
  }
}

static void out_append(struct conn* c, const unsigned char* p, size_t n) {
  if (c->out_len + n > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + n) cap *= 2;
    unsigned char* grown = realloc(c->out, cap);
    if (grown == NULL) abort();
    c->out = grown;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
}

/* Writes what is pending; 0 when all went, 1 when some waits, -1 on error. */
static int flush_out(struct conn* c) {
  while (c->out_sent < c->out_len) {
    ssize_t n = write(c->fd, c->out + c->out_sent, c->out_len - c->out_sent);
    ++writes;
    if (n < 0) return errno == EAGAIN ? 1 : -1;
    c->out_sent += (size_t)n;
  }
  c->out_len = c->out_sent = 0;
  return 0;
}

/* --in-place: with nothing waiting to go out, turns the whole packets read
 * so far into their replies where they lie and writes them from there.
 * Returns how many bytes were framed, or 0 when the read holds a packet
 * other than C_ECHO or a bad size (the copying path then handles it). */
static size_t echo_in_place(struct conn* c) {
  size_t at = 0;
  while (c->in_len - at >= 4) {
    const unsigned size = c->in[at] | (unsigned)c->in[at + 1] << 8;
    const unsigned id = c->in[at + 2] | (unsigned)c->in[at + 3] << 8;
    if (size < 4 || id != kEcho) return 0;
    if (c->in_len - at < size) break;
    at += size;
  }
  size_t done = 0;
  for (size_t p = 0; p < at; p += (c->in[p] | (unsigned)c->in[p + 1] << 8)) {
    c->in[p + 2] = kEchoReply;
    ++packets_in;
    ++packets_out;
  }
  while (done < at) {
    ssize_t n = write(c->fd, c->in + done, at - done);
    ++writes;
    if (n < 0) {
      if (errno != EAGAIN) done = at; /* the next read sees the error */
      break;
    }
    done += (size_t)n;
  }
  if (done < at) out_append(c, c->in + done, at - done);
  memmove(c->in, c->in + at, c->in_len - at);
  c->in_len -= at;
  return at;
}

/* Frames the packets read so far and appends an S_ECHO for each C_ECHO;
 * -1 on a bad size. */
static int handle_input(struct conn* c) {
  size_t at = 0;
  while (c->in_len - at >= 4) {
    const unsigned size = c->in[at] | (unsigned)c->in[at + 1] << 8;
    const unsigned id = c->in[at + 2] | (unsigned)c->in[at + 3] << 8;
    if (size < 4) return -1;
    if (c->in_len - at < size) break;
    ++packets_in;
    if (id == kEcho) {
      unsigned char header[4] = {c->in[at], c->in[at + 1], kEchoReply, 0};
      out_append(c, header, 4);
      out_append(c, c->in + at + 4, size - 4);
      ++packets_out;
    }
    at += size;
  }
  memmove(c->in, c->in + at, c->in_len - at);
  c->in_len -= at;
  return 0;
}

static void close_conn(int ep, struct conn* c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->out);
  free(c);
}

static void on_readable(int ep, struct conn* c) {
  ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
  if (n <= 0) {
    if (n < 0 && errno == EAGAIN) return;
    close_conn(ep, c);
    return;
  }
  c->in_len += (size_t)n;
  const int waiting = c->out_len > 0; /* EPOLLOUT already armed */
  if (in_place && !waiting && echo_in_place(c) > 0) {
    /* What is left is at most an unfinished packet. */
    if (c->out_len > 0) {
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
      epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    return;
  }
  if (handle_input(c) < 0) {
    close_conn(ep, c);
    return;
  }
  if (waiting) return;
  const int r = flush_out(c);
  if (r < 0) {
    close_conn(ep, c);
  } else if (r > 0) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  }
}

static void on_writable(int ep, struct conn* c) {
  const int r = flush_out(c);
  if (r < 0) {
    close_conn(ep, c);
  } else if (r == 0) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  }
}

int main(int argc, char** argv) {
  const char* host = "0.0.0.0";
  int port = 7777;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--in-place") == 0) {
      in_place = 1;
    } else if (i + 1 < argc) {
      if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
      if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
      ++i;
    }
  }
  if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
  struct sigaction sa = {.sa_handler = on_stop_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int stop_token;

  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, host, &addr.sin_addr);
  socklen_t len = sizeof(addr);
  if (bind(lfd, (struct sockaddr*)&addr, sizeof(addr)) != 0 ||
      listen(lfd, 4096) != 0 ||
      getsockname(lfd, (struct sockaddr*)&addr, &len) != 0) {
    perror("epoll_echo_server: listen");
    return 1;
  }
  printf("listening on %s:%u\n", host, (unsigned)ntohs(addr.sin_port));
  fflush(stdout);

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &stop_token};
  epoll_ctl(ep, EPOLL_CTL_ADD, stop_pipe[0], &sev);
  struct epoll_event events[kMaxEvents];
  for (int running = 1; running;) {
    const int n = epoll_wait(ep, events, kMaxEvents, -1);
    for (int i = 0; i < n; ++i) {
      void* p = events[i].data.ptr;
      if (p == &stop_token) {
        running = 0;
      } else if (p == NULL) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          struct conn* c = calloc(1, sizeof(*c));
          c->fd = fd;
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
      } else if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP) &&
                 ((struct conn*)p)->out_len > 0) {
        on_writable(ep, p);
      } else {
        on_readable(ep, p);
      }
    }
  }
  printf("[summary] packets in %llu out %llu | writes %llu\n", packets_in,
         packets_out, writes);
  return 0;
}
