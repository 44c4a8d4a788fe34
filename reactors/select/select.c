/*
 * The select(2) reactor: POSIX, level-triggered, limited to FD_SETSIZE.
 *
 * select is the oldest readiness interface and the most portable one. It
 * takes bit sets of descriptors (fd_set) and rewrites them with what is
 * ready, so every wait rebuilds the sets from a table and every answer is
 * found by scanning them: O(highest descriptor) per wait, however few are
 * ready. An fd_set has room for FD_SETSIZE descriptors (1024 on Linux) and
 * FD_SET with a larger number writes past its end, so registration
 * (px__io_register, for max_fd) refuses such a descriptor with PX_ERANGE
 * before it could ever reach FD_SET. (PX_ERANGE
 * rather than PX_EINVAL: the descriptor is valid, just out of this
 * backend's range, and a program that sees it knows to pick another.)
 *
 * Level-triggered: select reports states, so the backend only watches the
 * directions somebody waits for and stops watching a direction once it has
 * fired; px__io_poll_ready re-arms it through modify (reactors/readiness.c).
 *
 * The core's table, indexed by descriptor, says which registration owns
 * each descriptor and what it watches (io->interest): registration, modify
 * and del are O(1). A self-pipe in the read set carries cross-thread
 * wake-ups.
 *
 * Threading: the table is guarded by a mutex. The poller copies the sets
 * under it, waits without it, and dispatches under it again, so a del from
 * another thread either happens before the dispatch (and the entry is gone)
 * or after it: no dispatch reaches a registration once del has returned.
 * When a modify widens what a poller blocked in another thread should
 * watch, it wakes that poller so it rebuilds its sets.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/select.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "reactors/core.h"
#include "reactors/reactor.h"

struct px__reactor {
  px__reactor_core core; /* mu guards nfds and the table; wake: self-pipe */
  int nfds;              /* one past the highest registered fd */
};

_Static_assert(offsetof(struct px__reactor, core) == 0,
               "px__reactor_new needs the core first");

static void sel_destroy(px__reactor *r) { px__reactor_free(r, sizeof(*r)); }

static int sel_create(const px_config *cfg, px__reactor **out) {
  (void)cfg; /* event_capacity does not apply: select fills fixed sets */
  int err;
  px__reactor *r = px__reactor_new(sizeof(*r), PX__WAKEUP_FD_PIPE, &err);
  if (r == NULL) return err;
  /* The pipe itself has to fit in an fd_set. */
  if (r->core.wakeup_fd.rd >= FD_SETSIZE) {
    sel_destroy(r);
    return PX_ERANGE;
  }
  *out = r;
  return 0;
}

/*
 * The watched directions of each descriptor are its registration's
 * io->interest, which the core keeps; the fd_sets are built from them.
 * The core has checked that fd < FD_SETSIZE (max_fd) and that the
 * descriptor is open, and holds the mutex.
 */
static int sel_add(px__reactor *r, px__io *io, unsigned interest, void *slot) {
  (void)interest;
  (void)slot;
  if (io->fd + 1 > r->nfds) r->nfds = io->fd + 1;
  return 0;
}

static int sel_del(px__reactor *r, px__io *io, void *slot) {
  (void)io;
  (void)slot;
  /* A poller blocked in another thread may still have this descriptor in
   * its sets, and the kernel keeps the file open for it until its select
   * returns (a close elsewhere does not end the wait): the core wakes it
   * (px__reactor_del). */
  while (r->nfds > 0 && px__reactor_at(r, r->nfds - 1, NULL) == NULL)
    r->nfds--;
  return 0;
}

/*
 * select failed with EBADF: some watched descriptor was closed without
 * being deregistered. Its registration gets an error (what poll(2) reports
 * as POLLNVAL) and is no longer watched, so the next wait can succeed.
 */
static int report_closed(px__reactor *r) {
  int n = 0;
  for (int fd = 0; fd < r->nfds; fd++) {
    px__io *io = px__reactor_at(r, fd, NULL);
    if (io == NULL || io->interest == 0) continue;
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      io->interest = 0;
      px__io_dispatch(io, PX__ERROR);
      n++;
    }
  }
  return n;
}

static int sel_poll(px__reactor *r, int timeout_ms) {
  fd_set rd, wr;
  FD_ZERO(&rd);
  FD_ZERO(&wr);
  pthread_mutex_lock(&r->core.mu);
  int nfds = r->nfds;
  for (int fd = 0; fd < nfds; fd++) {
    px__io *io = px__reactor_at(r, fd, NULL);
    if (io == NULL) continue;
    if (io->interest & PX__READABLE) FD_SET(fd, &rd);
    if (io->interest & PX__WRITABLE) FD_SET(fd, &wr);
  }
  FD_SET(r->core.wakeup_fd.rd, &rd);
  if (r->core.wakeup_fd.rd + 1 > nfds) nfds = r->core.wakeup_fd.rd + 1;
  r->core.polling = true;
  pthread_mutex_unlock(&r->core.mu);

  struct timeval tv;
  int n = select(nfds, &rd, &wr, NULL, px__timeout_timeval(timeout_ms, &tv));
  int saved = errno;

  pthread_mutex_lock(&r->core.mu);
  r->core.polling = false;
  int dispatched = 0;
  if (n < 0) {
    if (saved == EBADF) dispatched = report_closed(r);
    pthread_mutex_unlock(&r->core.mu);
    /* EINTR (a signal) and EBADF (handled above) are not errors of the
     * wait as a whole: the caller simply polls again. */
    if (saved == EINTR || saved == EBADF) return dispatched;
    return px_err_from_errno(saved);
  }
  if (FD_ISSET(r->core.wakeup_fd.rd, &rd))
    px__wakeup_fd_drain(&r->core.wakeup_fd);
  /* Only descriptors that are still registered, and only the directions
   * still watched: the table may have changed while we waited. A number
   * that was deregistered and reused meanwhile may see one spurious
   * readiness, which futures tolerate (their syscall says EAGAIN). */
  int limit = nfds < r->nfds ? nfds : r->nfds;
  for (int fd = 0; fd < limit; fd++) {
    unsigned ready = 0;
    if (FD_ISSET(fd, &rd)) ready |= PX__READABLE;
    if (FD_ISSET(fd, &wr)) ready |= PX__WRITABLE;
    if (ready == 0) continue;
    px__io *io = px__reactor_at(r, fd, NULL);
    if (io == NULL || (ready &= io->interest) == 0) continue;
    /* One-shot interest: what fired is not watched until a waiter asks. */
    io->interest &= ~ready;
    px__io_dispatch(io, ready);
    dispatched++;
  }
  pthread_mutex_unlock(&r->core.mu);
  return dispatched;
}

const px__reactor_ops px__select_ops = {
    .name = "select",
    .features = PX__REACTOR_FD_LIMIT | PX__REACTOR_FD_TABLE,
    .max_fd = FD_SETSIZE,
    .create = sel_create,
    .destroy = sel_destroy,
    .add = sel_add,
    /* No modify: the sets are rebuilt from io->interest on every wait. */
    .del = sel_del,
    .poll = sel_poll,
};
