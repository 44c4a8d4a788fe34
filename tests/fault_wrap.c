/*
 * Syscall fault injection for tests/fault_test.cc. The test binary is linked
 * with -Wl,--wrap=recv,--wrap=send,--wrap=accept4,--wrap=accept, so every
 * call pollux
 * makes to those functions lands here first (accept: where the platform
 * layer has no accept4, as under --config=portable); we decide whether to pass it
 * to the real one (__real_*) or to fail it the way the kernel could:
 * EINTR, a short transfer, or EMFILE. The test's own client sockets use
 * read()/write(), which are not wrapped.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "reactors/reactor.h"
#include "tests/fault_wrap.h"

fault_plan g_fault;

ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
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

static size_t shorten(size_t len) {
  if (!atomic_load(&g_fault.short_io) || len <= 1) return len;
  size_t n = 1 + next_rand() % len;
  if (n < len) atomic_fetch_add(&g_fault.short_injected, 1);
  return n;
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags) {
  if (inject_eintr()) return -1;
  return __real_recv(fd, buf, shorten(len), flags);
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags) {
  if (inject_eintr()) return -1;
  return __real_send(fd, buf, shorten(len), flags);
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

/* A connection the completion wrap below took from the kernel while
 * pretending EMFILE: it stands for the one still in the backlog, so the
 * next accept (the listener's shed) gets it. -1: none. */
static _Atomic int held_fd = -1;

static int take_held(void) { return atomic_exchange(&held_fd, -1); }

int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags) {
  int held = take_held();
  if (held >= 0) return held;
  if (inject_emfile()) return -1;
  return __real_accept4(fd, addr, alen, flags);
}

/*
 * Over io_uring the kernel accepts itself (reactors/completion.c), with no
 * accept4 call to fail: the EMFILE is injected where its completion is
 * reported instead (--wrap=px__op_complete, which catches io_uring.c's
 * calls). The connection the kernel did accept is held back for the shed's
 * accept above, as if it still waited in the backlog.
 */
void __real_px__op_complete(px__reactor *r, px__op *op, int res);

void __wrap_px__op_complete(px__reactor *r, px__op *op, int res) {
  if (op->kind == PX__OP_ACCEPT && res >= 0 && inject_emfile()) {
    atomic_store(&held_fd, res);
    res = -EMFILE;
  }
  __real_px__op_complete(r, op, res);
}

int __wrap_accept(int fd, struct sockaddr *addr, socklen_t *alen) {
  if (inject_emfile()) return -1;
  return __real_accept(fd, addr, alen);
}
