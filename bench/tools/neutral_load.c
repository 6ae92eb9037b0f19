/* neutral_load: a second load generator, written from docs/PROTOCOL.md alone
 * and sharing no code with DummyClient, to check that bench/scenarios.py's
 * ratios are not an artefact of our own client (issue 10: "the runner
 * reports what a neutral one would"). bench/neutral_check.py drives it.
 *
 *   neutral_load --port P --mode echo --sessions 100 --payload 64 --depth 16
 *   neutral_load --port P --mode chat --sessions 1000 --payload 128 --depth 16
 *       [--seconds 5] [--warmup 2]
 *
 * One thread, plain level-triggered epoll, non-blocking sockets, closed loop:
 *   echo: every session keeps `depth` C_ECHO packets in flight and sends the
 *         next one when an S_ECHO comes back;
 *   chat: every session stays in room 0; session 0 alone sends, keeping
 *         `depth` C_CHAT packets in flight, one more each time its own
 *         S_CHAT comes back (the server sends a chat to every member, the
 *         sender included).
 * Packets are checked only for framing and id; what it counts is what
 * arrived: echo replies, or S_CHAT packets at every member. It prints
 * "[measure] start" when the warm-up ends and "[measure] end" when the
 * measured seconds are over (a driver reads the server's CPU time at each),
 * then "delivered N in S s: R/s", and exits 0; any
 * error (connection refused or closed, bad framing) exits 1. Each session's
 * output is gathered into one buffer per round and written with one write(),
 * its input read 64 KiB at a time into one buffer per process. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kEcho = 1, kEchoReply = 2, kChat = 5, kChatOut = 6, kRead = 64 * 1024 };

struct session {
  int fd;
  unsigned char* tail; /* an unfinished packet kept between reads */
  size_t tail_len;
  unsigned char* out; /* packets to send, written once per round */
  size_t out_len, out_cap;
};

static struct session* sessions;
static int n_sessions, payload = 64, depth = 16, chat_mode;
static unsigned long long delivered;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char* what) {
  fprintf(stderr, "neutral_load: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void put_packet(struct session* s, unsigned id) {
  const size_t size = 4 + (size_t)payload;
  if (s->out_len + size > s->out_cap) {
    s->out_cap = (s->out_len + size) * 2;
    s->out = realloc(s->out, s->out_cap);
    if (s->out == NULL) die("realloc");
  }
  unsigned char* p = s->out + s->out_len;
  p[0] = (unsigned char)(size & 0xff);
  p[1] = (unsigned char)(size >> 8);
  p[2] = (unsigned char)(id & 0xff);
  p[3] = (unsigned char)(id >> 8);
  memset(p + 4, 'n', (size_t)payload);
  s->out_len += size;
}

static void flush(struct session* s) {
  size_t sent = 0;
  while (sent < s->out_len) {
    const ssize_t n = write(s->fd, s->out + sent, s->out_len - sent);
    if (n < 0) {
      if (errno == EAGAIN) continue; /* closed loop: the window is small */
      die("write");
    }
    sent += (size_t)n;
  }
  s->out_len = 0;
}

/* One whole packet received by session `s`. */
static void on_packet(struct session* s, unsigned id) {
  if (!chat_mode) {
    if (id != kEchoReply) {
      fprintf(stderr, "neutral_load: unexpected id %u\n", id);
      exit(1);
    }
    ++delivered;
    put_packet(s, kEcho);
    return;
  }
  if (id != kChatOut) return; /* S_JOIN and the like */
  ++delivered;
  if (s == &sessions[0]) put_packet(s, kChat); /* its own chat came back */
}

/* Frames `len` bytes at `p`; returns how many whole packets' bytes. */
static size_t frame(struct session* s, const unsigned char* p, size_t len) {
  size_t at = 0;
  while (len - at >= 4) {
    const unsigned size = p[at] | (unsigned)p[at + 1] << 8;
    const unsigned id = p[at + 2] | (unsigned)p[at + 3] << 8;
    if (size < 4) {
      fprintf(stderr, "neutral_load: bad size %u\n", size);
      exit(1);
    }
    if (len - at < size) break;
    on_packet(s, id);
    at += size;
  }
  return at;
}

static void on_readable(struct session* s, unsigned char* buffer) {
  /* The tail first, then the new bytes after it, in one buffer. */
  memcpy(buffer, s->tail, s->tail_len);
  const ssize_t n =
      read(s->fd, buffer + s->tail_len, kRead + 65536 - s->tail_len);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    fprintf(stderr, "neutral_load: the server closed a session\n");
    exit(1);
  }
  const size_t len = s->tail_len + (size_t)n;
  const size_t used = frame(s, buffer, len);
  s->tail_len = len - used;
  memcpy(s->tail, buffer + used, s->tail_len);
  if (s->out_len > 0) flush(s);
}

int main(int argc, char** argv) {
  int port = 0;
  double seconds = 5, warmup = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--sessions")) n_sessions = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--payload")) payload = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--depth")) depth = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--mode")) chat_mode = !strcmp(argv[i + 1], "chat");
    else {
      fprintf(stderr, "neutral_load: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (port <= 0 || n_sessions <= 0 || payload < 0 || payload > 4092 ||
      (chat_mode && payload + 12 > 4096)) {
    fprintf(stderr, "neutral_load: need --port and --sessions (payload "
                    "0..4092)\n");
    return 2;
  }
  const int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  sessions = calloc((size_t)n_sessions, sizeof(*sessions));
  unsigned char* buffer = malloc(kRead + 65536);
  if (sessions == NULL || buffer == NULL) die("malloc");
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int i = 0; i < n_sessions; ++i) {
    struct session* s = &sessions[i];
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0) die("socket");
    if (connect(s->fd, (struct sockaddr*)&addr, sizeof(addr)) < 0) {
      die("connect");
    }
    const int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->tail = malloc(65536);
    if (s->tail == NULL) die("malloc");
  }
  /* Every session is connected (and, for chat, in room 0, where a session
   * starts) before any load: one echo round trip each. */
  for (int i = 0; i < n_sessions; ++i) {
    put_packet(&sessions[i], kEcho);
    flush(&sessions[i]);
    unsigned char reply[4 + 4096];
    size_t got = 0;
    while (got < 4 + (size_t)payload) {
      const ssize_t n = read(sessions[i].fd, reply + got,
                             4 + (size_t)payload - got);
      if (n <= 0) die("first echo");
      got += (size_t)n;
    }
  }
  for (int i = 0; i < n_sessions; ++i) {
    const int flags = fcntl(sessions[i].fd, F_GETFL);
    if (flags < 0 || fcntl(sessions[i].fd, F_SETFL, flags | O_NONBLOCK) < 0) {
      die("fcntl");
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &sessions[i]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sessions[i].fd, &ev) < 0) {
      die("epoll_ctl");
    }
  }
  const int senders = chat_mode ? 1 : n_sessions;
  for (int i = 0; i < senders; ++i) {
    for (int k = 0; k < depth; ++k) {
      put_packet(&sessions[i], chat_mode ? kChat : kEcho);
    }
    flush(&sessions[i]);
  }
  struct epoll_event events[256];
  const double start = now();
  double measure_from = -1;
  unsigned long long at_start = 0;
  for (;;) {
    const int n = epoll_wait(ep, events, 256, 100);
    for (int i = 0; i < n; ++i) on_readable(events[i].data.ptr, buffer);
    const double t = now() - start;
    if (measure_from < 0 && t >= warmup) {
      measure_from = t;
      at_start = delivered;
      printf("[measure] start\n");
      fflush(stdout);
    } else if (measure_from >= 0 && t >= measure_from + seconds) {
      const unsigned long long count = delivered - at_start;
      printf("[measure] end\n");
      printf("delivered %llu in %.2f s: %.0f/s\n", count, t - measure_from,
             (double)count / (t - measure_from));
      return 0;
    }
  }
}
