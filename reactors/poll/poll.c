/*
 * The poll(2) reactor: POSIX, level-triggered, no descriptor limit.
 *
 * poll takes an array of struct pollfd instead of select's bit sets, so any
 * descriptor number works and the cost is the number of registrations, not
 * the highest descriptor. It is still O(n) per wait: the kernel looks at
 * every entry, and so do we when we read the answers.
 *
 * The array is dense. Entry 0 is the self-pipe that carries cross-thread
 * wake-ups; every registration owns one entry, and a parallel array holds
 * its px__io. The core's descriptor table keeps each descriptor's index,
 * which makes modify and del O(1): del moves the last entry into the hole.
 *
 * Level-triggered, so the interest is one-shot (reactors/readiness.c explains):
 * an entry watches only the directions with a waiter and drops a direction
 * once it fired. An entry that watches nothing gets a negative fd, which
 * poll skips; with events = 0 alone it would still report POLLHUP and
 * POLLERR, which cannot be masked, and a hung-up socket nobody waits on
 * would make every wait return at once.
 *
 * Threading: a mutex guards the arrays. The poller copies them under it,
 * waits on the copy without it (so add, modify and del never wait for a
 * blocked poll), and dispatches under it after checking that each entry is
 * still the same registration: once del has returned, no dispatch reaches
 * its px__io. A modify that widens what a poller blocked in another thread
 * should watch wakes that poller so it copies again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "reactors/core.h"
#include "reactors/reactor.h"

#define INITIAL_CAPACITY 64u

struct px__reactor {
  px__reactor_core core; /* mu guards the rest; wake is the self-pipe */
  struct pollfd *fds;    /* [0] is the wake pipe, then one per registration */
  px__io **ios;          /* parallel to fds ([0] is NULL) */
  size_t len, cap;
  struct pollfd *wait_fds; /* the poller's private copies */
  px__io **wait_ios;
  size_t wait_cap;
};

_Static_assert(offsetof(struct px__reactor, core) == 0,
               "px__reactor_new needs the core first");

static void pl_destroy(px__reactor *r) {
  px__free(r->fds, r->cap * sizeof(*r->fds));
  px__free(r->ios, r->cap * sizeof(*r->ios));
  px__free(r->wait_fds, r->wait_cap * sizeof(*r->wait_fds));
  px__free(r->wait_ios, r->wait_cap * sizeof(*r->wait_ios));
  px__reactor_free(r, sizeof(*r));
}

/*
 * Grows a pollfd array and its parallel px__io array together to hold
 * `need` entries. Both new buffers are allocated before either old one is
 * given up, so a failure leaves everything as it was.
 */
static bool grow_pair(struct pollfd **fds, px__io ***ios, size_t *cap,
                      size_t len, size_t need) {
  if (need <= *cap) return true;
  size_t n = *cap ? *cap : INITIAL_CAPACITY;
  while (n < need) n *= 2;
  struct pollfd *nf = px__alloc(n * sizeof(*nf));
  px__io **ni = px__alloc(n * sizeof(*ni));
  if (nf == NULL || ni == NULL) {
    px__free(nf, n * sizeof(*nf));
    px__free(ni, n * sizeof(*ni));
    return false;
  }
  if (len > 0) {
    memcpy(nf, *fds, len * sizeof(*nf));
    memcpy(ni, *ios, len * sizeof(*ni));
  }
  px__free(*fds, *cap * sizeof(*nf));
  px__free(*ios, *cap * sizeof(*ni));
  *fds = nf;
  *ios = ni;
  *cap = n;
  return true;
}

static int pl_create(const px_config *cfg, px__reactor **out) {
  (void)cfg; /* poll returns per-entry answers; no event buffer to size */
  int err;
  px__reactor *r = px__reactor_new(sizeof(*r), PX__WAKEUP_FD_PIPE, &err);
  if (r == NULL) return err;
  /* Room for the first registrations up front, in the table and the
   * poller's copy, so that a program with a few sockets allocates nothing
   * after start-up. */
  if (!grow_pair(&r->fds, &r->ios, &r->cap, 0, INITIAL_CAPACITY) ||
      !grow_pair(&r->wait_fds, &r->wait_ios, &r->wait_cap, 0,
                 INITIAL_CAPACITY)) {
    pl_destroy(r);
    return PX_ENOMEM;
  }
  r->fds[0] = (struct pollfd){.fd = r->core.wakeup_fd.rd, .events = POLLIN};
  r->ios[0] = NULL;
  r->len = 1;
  *out = r;
  return 0;
}

/* What an entry watching `interest` asks poll for. */
static void set_entry(struct pollfd *p, int fd, unsigned interest) {
  short events = 0;
  if (interest & PX__READABLE) events |= POLLIN;
  if (interest & PX__WRITABLE) events |= POLLOUT;
#ifdef POLLRDHUP
  /* Linux: tells a half-close by the peer apart from plain data. */
  if (interest & PX__READABLE) events |= POLLRDHUP;
#endif
  p->events = events;
  /* A negative fd is skipped entirely (see the file comment); ~fd keeps it
   * negative for fd 0 too. */
  p->fd = interest != 0 ? fd : ~fd;
  p->revents = 0;
}

static unsigned watched(const struct pollfd *p) {
  if (p->fd < 0) return 0;
  return ((p->events & POLLIN) ? PX__READABLE : 0u) |
         ((p->events & POLLOUT) ? PX__WRITABLE : 0u);
}

/* The core's slot of a descriptor holds the index of its entry in fds. */

static int pl_add(px__reactor *r, px__io *io, unsigned interest, void *slot) {
  /* The core checked that the descriptor is open (poll would report
   * POLLNVAL for it forever) and holds the mutex. */
  interest &= PX__READABLE | PX__WRITABLE;
  if (!grow_pair(&r->fds, &r->ios, &r->cap, r->len, r->len + 1))
    return PX_ENOMEM;
  size_t i = r->len++;
  set_entry(&r->fds[i], io->fd, interest);
  r->ios[i] = io;
  *(size_t *)slot = i;
  return 0;
}

static int pl_modify(px__reactor *r, px__io *io, unsigned interest,
                     void *slot) {
  set_entry(&r->fds[*(size_t *)slot], io->fd,
            interest & (PX__READABLE | PX__WRITABLE));
  return 0;
}

static int pl_del(px__reactor *r, px__io *io, void *slot) {
  (void)io;
  /* O(1) removal: the last entry moves into the hole. */
  size_t i = *(size_t *)slot;
  size_t last = --r->len;
  if (i != last) {
    r->fds[i] = r->fds[last];
    r->ios[i] = r->ios[last];
    *(size_t *)px__reactor_lookup(r, (uintptr_t)r->ios[i]->fd, r->ios[i]) = i;
  }
  /* A poller blocked in another thread may still wait on its copy of the
   * entry; it checks the table before dispatching, so nothing reaches io,
   * and the core wakes it so the kernel lets go of the file
   * (px__reactor_del). */
  return 0;
}

static int pl_poll(px__reactor *r, int timeout_ms) {
  pthread_mutex_lock(&r->core.mu);
  size_t n = r->len;
  /* The copy keeps the arrays' old contents out of the way: only the
   * first n entries are overwritten below. */
  if (!grow_pair(&r->wait_fds, &r->wait_ios, &r->wait_cap, 0, n)) {
    pthread_mutex_unlock(&r->core.mu);
    return PX_ENOMEM;
  }
  memcpy(r->wait_fds, r->fds, n * sizeof(*r->fds));
  memcpy(r->wait_ios, r->ios, n * sizeof(*r->ios));
  r->core.polling = true;
  pthread_mutex_unlock(&r->core.mu);

  int got = poll(r->wait_fds, (nfds_t)n, timeout_ms < 0 ? -1 : timeout_ms);
  int saved = errno;

  pthread_mutex_lock(&r->core.mu);
  r->core.polling = false;
  if (got < 0) {
    pthread_mutex_unlock(&r->core.mu);
    /* A signal interrupted the wait: "nothing happened", as promised. */
    if (saved == EINTR) return 0;
    return px_err_from_errno(saved);
  }
  if (r->wait_fds[0].revents & POLLIN) px__wakeup_fd_drain(&r->core.wakeup_fd);
  int dispatched = 0;
  for (size_t k = 1; k < n && got > 0; k++) {
    struct pollfd *w = &r->wait_fds[k];
    if (w->revents == 0) continue;
    got--;
    /* Still the same registration? It may have been deregistered (and the
     * entries moved) while we waited. */
    size_t *slot = px__reactor_lookup(r, (uintptr_t)w->fd, r->wait_ios[k]);
    if (slot == NULL) continue;
    size_t i = *slot;
    unsigned ready = px__ready_from_poll(w->revents);
    /* Only directions still watched, plus what cannot be masked. */
    ready &= watched(&r->fds[i]) | PX__HUP | PX__ERROR;
    if (ready == 0) continue;
    /* One-shot interest: what fired is no longer watched; a hang-up or an
     * error ends both directions (and would otherwise be reported on every
     * wait, since poll cannot mask them). */
    unsigned left = watched(&r->fds[i]) & ~ready;
    if (ready & (PX__HUP | PX__ERROR)) left = 0;
    set_entry(&r->fds[i], r->ios[i]->fd, left);
    r->ios[i]->interest = left;
    px__io_dispatch(r->ios[i], ready);
    dispatched++;
  }
  pthread_mutex_unlock(&r->core.mu);
  return dispatched;
}

const px__reactor_ops px__poll_ops = {
    .name = "poll",
    /* DEFER_FREE: the poller compares the pointers of its copy with the
     * table, and a freed registration's memory may come back as a new one
     * under the same descriptor. */
    .features = PX__REACTOR_FD_TABLE | PX__REACTOR_DEFER_FREE,
    .slot_size = sizeof(size_t),
    .create = pl_create,
    .destroy = pl_destroy,
    .add = pl_add,
    .modify = pl_modify,
    .del = pl_del,
    .poll = pl_poll,
};
