/*
 * Syscall fault injection for tests/fault_test.cc. The test binary is linked
 * with -Wl,--wrap=px__recv,--wrap=px__send,--wrap=accept4,--wrap=accept, so
 * every socket read and write pollux makes (through the platform layer,
 * which on Linux enters the kernel without libc's recv and send) and every
 * accept (accept: where the platform layer has no accept4, as under
 * --config=portable) lands here first; we decide whether to pass it
 * to the real one (__real_*) or to fail it the way the kernel could:
 * EINTR, a short transfer, EMFILE, or another accept error (ENOBUFS...). The test's own client sockets use
 * read()/write(), which are not wrapped. px__reactor_poll is wrapped too
 * (--wrap=px__reactor_poll): a stall after a wait, on demand.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "reactors/reactor.h"
#include "tests/fault_wrap.h"

fault_plan g_fault;

ssize_t __real_px__recv(int fd, void *buf, size_t len);
ssize_t __real_px__send(int fd, const void *buf, size_t len);
int __real_accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags);
int __real_accept(int fd, struct sockaddr *addr, socklen_t *alen);

/* A tiny deterministic generator: faults are random-looking but
 * reproducible run to run. */
static unsigned next_rand(void) {
  static _Atomic unsigned state = 12345u;
  unsigned s = atomic_load(&state) * 1103515245u + 12345u;
  atomic_store(&state, s);
  return s >> 16;
}

static int inject_eintr(void) {
  int every = atomic_load(&g_fault.eintr_every);
  if (every <= 0) return 0;
  if (atomic_fetch_add(&g_fault.calls, 1) % every != 0) return 0;
  atomic_fetch_add(&g_fault.eintr_injected, 1);
  errno = EINTR;
  return 1;
}

/* Short transfers are injected on Unix sockets only. On a TCP connection
 * pollux takes a short one as "the queue is empty" or "the buffer is full"
 * (PX__STREAM_TCP, reactors/fd_future.h), which the kernel guarantees and
 * an injected one would not honour: the bytes it left would wait for an
 * event that never comes. */
static bool tcp_socket(int fd) {
  int domain = 0;
  socklen_t n = sizeof domain;
  return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &n) == 0 &&
         domain != AF_UNIX;
}

static size_t shorten(int fd, size_t len) {
  if (!atomic_load(&g_fault.short_io) || len <= 1 || tcp_socket(fd))
    return len;
  size_t n = 1 + next_rand() % len;
  if (n < len) atomic_fetch_add(&g_fault.short_injected, 1);
  return n;
}

ssize_t __wrap_px__recv(int fd, void *buf, size_t len) {
  atomic_fetch_add(&g_fault.recv_calls, 1);
  if (inject_eintr()) return -1;
  return __real_px__recv(fd, buf, shorten(fd, len));
}

ssize_t __wrap_px__send(int fd, const void *buf, size_t len) {
  if (inject_eintr()) return -1;
  return __real_px__send(fd, buf, shorten(fd, len));
}

/* True when this accept is to fail with EMFILE (errno set). */
static int inject_emfile(void) {
  int left = atomic_load(&g_fault.emfile_next);
  if (left > 0 && atomic_compare_exchange_strong(&g_fault.emfile_next, &left, left - 1)) {
    atomic_fetch_add(&g_fault.emfile_injected, 1);
    errno = EMFILE;
    return 1;
  }
  return 0;
}

/* True when this accept is to fail with accept_errno (errno set). */
static int inject_accept_error(void) {
  int left = atomic_load(&g_fault.accept_fail_next);
  if (left > 0 && atomic_compare_exchange_strong(&g_fault.accept_fail_next, &left, left - 1)) {
    atomic_fetch_add(&g_fault.accept_failed, 1);
    errno = atomic_load(&g_fault.accept_errno);
    return 1;
  }
  return 0;
}

int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags) {
  if (inject_emfile() || inject_accept_error()) return -1;
  return __real_accept4(fd, addr, alen, flags);
}

/*
 * Over io_uring the kernel accepts itself (reactors/completion.c) and
 * pollux makes no accept4 call to fail: the faults are injected where
 * tcp.c asks for the accept's result instead (--wrap=px__op_accept catches
 * its calls). That is where io_uring's own EMFILE shows, before the
 * backlog is touched: the connection stays queued (or in the op) for the
 * shed or the accept after the error.
 */
int __real_px__op_accept(px__io *io, px_context *cx, int *fd);

int __wrap_px__op_accept(px__io *io, px_context *cx, int *fd) {
  if (inject_emfile() || inject_accept_error()) return px_err_from_errno(errno);
  return __real_px__op_accept(io, cx, fd);
}

int __wrap_accept(int fd, struct sockaddr *addr, socklen_t *alen) {
  if (inject_emfile() || inject_accept_error()) return -1;
  return __real_accept(fd, addr, alen);
}

/*
 * The runtime's calls into the reactor (executors/runtime.c) land here: a
 * wait that could block (timeout_ms != 0) and brought events is followed,
 * once, by the stall the plan asks for, with `stalling` set meanwhile so
 * that the test can act during it (send the bytes that must not lose to a
 * timer that falls due in the stall).
 */
int __real_px__reactor_poll(px__reactor *r, int timeout_ms);

int __wrap_px__reactor_poll(px__reactor *r, int timeout_ms) {
  int n = __real_px__reactor_poll(r, timeout_ms);
  if (timeout_ms == 0 || n <= 0) return n;
  int ms = atomic_exchange(&g_fault.stall_after_wait_ms, 0);
  if (ms <= 0) return n;
  atomic_store(&g_fault.stalling, 1);
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
  atomic_store(&g_fault.stalling, 0);
  atomic_fetch_add(&g_fault.stalls, 1);
  return n;
}
