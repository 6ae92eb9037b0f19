/* LD_PRELOAD heap-allocation counter for the scenario runner: counts every
 * malloc, calloc, realloc and aligned allocation in a process that we do not
 * build ourselves (the Boost.Asio peer) as well as in ours, the same way.
 *
 *   ALLOC_COUNT_FILE=/tmp/n LD_PRELOAD=build/release/bench/liballoc_count.so prog
 *
 * A background thread rewrites the file with the running count every 50 ms
 * (and at exit), so the runner can read it at the start and the end of a
 * measurement window. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);

static atomic_ullong g_count;
static const char* g_path;

void* malloc(size_t n) {
  atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
  return __libc_realloc(p, n);
}
void* aligned_alloc(size_t align, size_t n) {
  atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
  return __libc_memalign(align, n);
}
void* memalign(size_t align, size_t n) {
  atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, size_t align, size_t n) {
  atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
  void* p = __libc_memalign(align, n);
  if (p == NULL) return 12; /* ENOMEM */
  *out = p;
  return 0;
}

/* Raw syscalls and a stack buffer: the writer itself allocates nothing. */
static void WriteCount(void) {
  if (g_path == NULL) return;
  char tmp[4096];
  char line[32];
  snprintf(tmp, sizeof(tmp), "%s.tmp", g_path);
  const int n = snprintf(line, sizeof(line), "%llu\n",
                         (unsigned long long)atomic_load(&g_count));
  const int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  if (write(fd, line, (size_t)n) == n) rename(tmp, g_path);
  close(fd);
}

static void* Writer(void* unused) {
  (void)unused;
  for (;;) {
    WriteCount();
    usleep(50 * 1000);
  }
  return NULL;
}

__attribute__((constructor)) static void Start(void) {
  g_path = getenv("ALLOC_COUNT_FILE");
  if (g_path == NULL) return;
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_create(&thread, &attr, Writer, NULL);
  pthread_attr_destroy(&attr);
}

__attribute__((destructor)) static void Stop(void) { WriteCount(); }
