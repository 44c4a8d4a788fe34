/*
 * The select(2) reactor: POSIX, level-triggered, limited to FD_SETSIZE.
 *
 * select is the oldest readiness interface and the most portable one. It
 * takes bit sets of descriptors (fd_set) and rewrites them with what is
 * ready, so every wait rebuilds the sets from a table and every answer is
 * found by scanning them: O(highest descriptor) per wait, however few are
 * ready. An fd_set has room for FD_SETSIZE descriptors (1024 on Linux) and
 * FD_SET with a larger number writes past its end, so add refuses such a
 * descriptor with PX_ERANGE before it could ever reach FD_SET. (PX_ERANGE
 * rather than PX_EINVAL: the descriptor is valid, just out of this
 * backend's range, and a program that sees it knows to pick another.)
 *
 * Level-triggered: select reports states, so the backend only watches the
 * directions somebody waits for and stops watching a direction once it has
 * fired; px__io_poll_ready re-arms it through modify (reactors/readiness.c).
 *
 * The table is indexed by descriptor: registration, modify and del are
 * O(1). A self-pipe in the read set carries cross-thread wake-ups.
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

#include "internal/px_internal.h"
#include "reactors/core.h"
#include "reactors/reactor.h"

struct px__reactor {
  px__reactor_core core;     /* mu guards the rest; wake is the self-pipe */
  px__io *table[FD_SETSIZE]; /* the registration of each descriptor */
  unsigned char watch[FD_SETSIZE]; /* PX__READABLE | PX__WRITABLE watched */
  int nfds;                        /* one past the highest registered fd */
};

_Static_assert(offsetof(struct px__reactor, core) == 0,
               "px__reactor_new needs the core first");

static void sel_destroy(px__reactor *r) {
  if (r == NULL) return;
  px__reactor_free(r, sizeof(*r));
}

static int sel_create(const px_config *cfg, px__reactor **out) {
  (void)cfg; /* event_capacity does not apply: select fills fixed sets */
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
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

static int sel_add(px__reactor *r, px__io *io, unsigned interest) {
  if (r == NULL || io == NULL || io->fd < 0) return PX_EINVAL;
  int fd = io->fd;
  if (fd >= FD_SETSIZE) return PX_ERANGE;
  /* select would fail the whole wait with EBADF: refuse it here instead. */
  if (fcntl(fd, F_GETFD) < 0) return px_err_from_errno(errno);
  pthread_mutex_lock(&r->core.mu);
  int err = 0;
  if (r->table[fd] != NULL && r->table[fd] != io) {
    err = PX_EBUSY;
  } else {
    r->table[fd] = io;
    r->watch[fd] = (unsigned char)(interest & (PX__READABLE | PX__WRITABLE));
    io->interest = r->watch[fd];
    if (fd + 1 > r->nfds) r->nfds = fd + 1;
  }
  px__reactor_unlock(&r->core, err == 0 && interest != 0);
  return err;
}

static int sel_modify(px__reactor *r, px__io *io, unsigned interest) {
  if (r == NULL || io == NULL || io->fd < 0 || io->fd >= FD_SETSIZE)
    return PX_EINVAL;
  interest &= PX__READABLE | PX__WRITABLE;
  pthread_mutex_lock(&r->core.mu);
  if (r->table[io->fd] != io) {
    pthread_mutex_unlock(&r->core.mu);
    return PX_ENOENT;
  }
  /* A poller blocked in another thread built its sets before this change;
   * only a wider interest needs it to start over. */
  bool widened = (interest & ~r->watch[io->fd]) != 0;
  r->watch[io->fd] = (unsigned char)interest;
  io->interest = interest;
  px__reactor_unlock(&r->core, widened);
  return 0;
}

static int sel_del(px__reactor *r, px__io *io) {
  if (r == NULL || io == NULL || io->fd < 0 || io->fd >= FD_SETSIZE)
    return PX_EINVAL;
  pthread_mutex_lock(&r->core.mu);
  if (r->table[io->fd] == io) {
    r->table[io->fd] = NULL;
    r->watch[io->fd] = 0;
    while (r->nfds > 0 && r->table[r->nfds - 1] == NULL) r->nfds--;
  }
  /* A poller blocked in another thread may still have this descriptor in
   * its sets; once the caller closes it, select fails with EBADF, which the
   * poller handles by starting over. No wake-up is needed. */
  pthread_mutex_unlock(&r->core.mu);
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
    if (r->table[fd] == NULL || r->watch[fd] == 0) continue;
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      r->watch[fd] = 0;
      px__io_dispatch(r->table[fd], PX__ERROR);
      n++;
    }
  }
  return n;
}

static int sel_poll(px__reactor *r, int timeout_ms) {
  if (r == NULL) return PX_EINVAL;
  fd_set rd, wr;
  FD_ZERO(&rd);
  FD_ZERO(&wr);
  pthread_mutex_lock(&r->core.mu);
  int nfds = r->nfds;
  for (int fd = 0; fd < nfds; fd++) {
    if (r->watch[fd] & PX__READABLE) FD_SET(fd, &rd);
    if (r->watch[fd] & PX__WRITABLE) FD_SET(fd, &wr);
  }
  FD_SET(r->core.wakeup_fd.rd, &rd);
  if (r->core.wakeup_fd.rd + 1 > nfds) nfds = r->core.wakeup_fd.rd + 1;
  r->core.polling = true;
  pthread_mutex_unlock(&r->core.mu);

  struct timeval tv, *tvp = NULL;
  if (timeout_ms >= 0) {
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    tvp = &tv;
  }
  int n = select(nfds, &rd, &wr, NULL, tvp);
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
  if (FD_ISSET(r->core.wakeup_fd.rd, &rd)) px__wakeup_fd_drain(&r->core.wakeup_fd);
  /* Only descriptors that are still registered, and only the directions
   * still watched: the table may have changed while we waited. A number
   * that was deregistered and reused meanwhile may see one spurious
   * readiness, which futures tolerate (their syscall says EAGAIN). */
  int limit = nfds < r->nfds ? nfds : r->nfds;
  for (int fd = 0; fd < limit; fd++) {
    unsigned ready = 0;
    if (FD_ISSET(fd, &rd)) ready |= PX__READABLE;
    if (FD_ISSET(fd, &wr)) ready |= PX__WRITABLE;
    ready &= r->watch[fd];
    if (ready == 0 || r->table[fd] == NULL) continue;
    /* One-shot interest: what fired is not watched until a waiter asks. */
    r->watch[fd] &= (unsigned char)~ready;
    r->table[fd]->interest = r->watch[fd];
    px__io_dispatch(r->table[fd], ready);
    dispatched++;
  }
  pthread_mutex_unlock(&r->core.mu);
  return dispatched;
}

const px__reactor_ops px__select_ops = {
    .name = "select",
    .features = PX__REACTOR_FD_LIMIT,
    .max_fd = FD_SETSIZE,
    .create = sel_create,
    .destroy = sel_destroy,
    .add = sel_add,
    .modify = sel_modify,
    .del = sel_del,
    .poll = sel_poll,
    .wakeup = px__reactor_wakeup,
};
