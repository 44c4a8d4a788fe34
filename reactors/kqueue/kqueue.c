/*
 * The kqueue(2) reactor: FreeBSD, macOS and the other BSDs.
 *
 * Written against the system's <sys/event.h> and nothing else, so it
 * builds unchanged wherever kqueue exists. (Linux has none; there the build
 * links a test-only emulation on epoll, tests/kqueue_emu, so this file runs
 * through the same conformance suite and integration tests.)
 *
 * kqueue's unit is the knote, one per (descriptor, filter): a registration
 * adds an EVFILT_READ and an EVFILT_WRITE knote with EV_ADD | EV_CLEAR and
 * its px__io as udata. EV_CLEAR resets a knote's state when it is reported,
 * so each is reported once per change: edge-triggered, like EPOLLET, and
 * one kevent() call per registration for its whole life. A peer's close
 * comes as EV_EOF on the read filter (readable + HUP); a socket error as
 * EV_EOF with the error in fflags (ERROR).
 *
 * Wake-ups: an EVFILT_USER knote (EV_CLEAR) that wakeup fires with
 * NOTE_TRIGGER; where EVFILT_USER is missing (older BSDs), a self-pipe
 * watched by EVFILT_READ.
 *
 * Threading: add, modify and del may be called from any thread. kevent
 * copies events out to the poller, and another thread may delete a knote
 * right after; so the poller checks each event's px__io against the core's
 * table (descriptor -> px__io) under the core's mutex and dispatches under
 * that mutex, which del also takes: once del has returned no dispatch reaches its
 * px__io. A closed registration's memory is freed only when the next poll
 * begins (PX__REACTOR_DEFER_FREE), so a new registration of the same
 * descriptor cannot have its address while an event may still name it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/event.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "reactors/core.h"
#include "reactors/reactor.h"

#define DEFAULT_EVENT_CAPACITY 1024u
#define WAKE_IDENT 0 /* EVFILT_USER idents are ours to choose */

/* With EVFILT_USER the kqueue wakes itself; without, a self-pipe does. */
#ifdef EVFILT_USER
#define WAKE_KIND PX__WAKEUP_FD_NONE
#else
#define WAKE_KIND PX__WAKEUP_FD_PIPE
#endif

struct px__reactor {
  px__reactor_core core; /* wake: see WAKE_KIND */
  int kq;
  uint32_t capacity;
  struct kevent *events; /* capacity entries, reused by every poll */
};

_Static_assert(offsetof(struct px__reactor, core) == 0,
               "px__reactor_new needs the core first");

/*
 * Closes the kqueue: close() with a real one. The test-only emulation on
 * Linux keeps descriptors of its own behind each kqueue and cannot see
 * close(), so it has a call of its own; this is the one place this file
 * knows about it.
 */
static void close_kqueue(int kq) {
#ifdef PX_KQUEUE_EMULATION
  (void)kqueue_emu_close(kq);
#else
  close(kq);
#endif
}

static void kq_destroy(px__reactor *r) {
  if (r->kq >= 0) close_kqueue(r->kq);
  px__free(r->events, (size_t)r->capacity * sizeof(*r->events));
  px__reactor_free(r, sizeof(*r));
}

/* Applies changes; returns 0 or a PX_E* code. */
static int apply(px__reactor *r, struct kevent *changes, int n) {
  if (n == 0) return 0;
  int rc;
  do {
    rc = kevent(r->kq, changes, n, NULL, 0, NULL);
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? px_err_from_errno(errno) : 0;
}

static int make_wake(px__reactor *r) {
#ifdef EVFILT_USER
  struct kevent kev;
  EV_SET(&kev, WAKE_IDENT, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
  return apply(r, &kev, 1);
#else
  /* Level-triggered (no EV_CLEAR): reported until poll drains it. */
  struct kevent kev;
  EV_SET(&kev, r->core.wakeup_fd.rd, EVFILT_READ, EV_ADD, 0, 0, NULL);
  return apply(r, &kev, 1);
#endif
}

static int kq_create(const px_config *cfg, px__reactor **out) {
  uint32_t capacity = DEFAULT_EVENT_CAPACITY;
  if (cfg != NULL && cfg->event_capacity != 0) capacity = cfg->event_capacity;
  int err;
  px__reactor *r = px__reactor_new(sizeof(*r), WAKE_KIND, &err);
  if (r == NULL) return err;
  r->kq = -1;
  r->capacity = capacity;
  r->events = px__alloc((size_t)capacity * sizeof(*r->events));
  if (r->events == NULL) {
    kq_destroy(r);
    return PX_ENOMEM;
  }
  r->kq = kqueue();
  if (r->kq < 0) {
    err = px_err_from_errno(errno);
    kq_destroy(r);
    return err;
  }
  /* kqueue descriptors are not inherited by fork; CLOEXEC covers exec
   * where the system allows setting it. */
  (void)fcntl(r->kq, F_SETFD, FD_CLOEXEC);
  err = make_wake(r);
  if (err < 0) {
    kq_destroy(r);
    return err;
  }
  *out = r;
  return 0;
}

/* Fills changes that add the filters in `on` and delete those in `off`. */
static int changes_for(px__io *io, unsigned on, unsigned off,
                       struct kevent ch[2]) {
  int n = 0;
  static const struct {
    unsigned bit;
    short filter;
  } filters[2] = {{PX__READABLE, EVFILT_READ}, {PX__WRITABLE, EVFILT_WRITE}};
  for (int i = 0; i < 2; i++) {
    if (on & filters[i].bit)
      EV_SET(&ch[n++], io->fd, filters[i].filter, EV_ADD | EV_CLEAR, 0, 0,
             (void *)io);
    else if (off & filters[i].bit)
      EV_SET(&ch[n++], io->fd, filters[i].filter, EV_DELETE, 0, 0, NULL);
  }
  return n;
}

/* add, modify and del run under the core's mutex, which the poller also
 * holds while it dispatches. */

static int kq_add(px__reactor *r, px__io *io, unsigned interest, void *slot) {
  (void)slot;
  interest &= PX__READABLE | PX__WRITABLE;
  struct kevent ch[2];
  /* A closed descriptor fails here with EBADF. */
  return apply(r, ch, changes_for(io, interest, 0, ch));
}

static int kq_modify(px__reactor *r, px__io *io, unsigned interest,
                     void *slot) {
  (void)slot;
  interest &= PX__READABLE | PX__WRITABLE;
  /* Only filters that change are touched. (Edge-triggered registrations
   * never come here from px__io.) */
  struct kevent ch[2];
  unsigned on = interest & ~io->interest, off = io->interest & ~interest;
  return apply(r, ch, changes_for(io, on, off, ch));
}

static int kq_del(px__reactor *r, px__io *io, void *slot) {
  (void)slot;
  struct kevent ch[2];
  /* ENOENT (a filter never added) and EBADF (the descriptor was closed,
   * which removed its knotes) both mean "not watched any more". Each
   * filter separately, so one failure does not hide the other. */
  int n = changes_for(io, 0, io->interest, ch);
  for (int i = 0; i < n; i++) (void)apply(r, &ch[i], 1);
  return 0;
}

static unsigned ready_bits(const struct kevent *ev) {
  unsigned ready = ev->filter == EVFILT_READ ? PX__READABLE : PX__WRITABLE;
  if (ev->flags & EV_EOF) {
    /* Read side: the peer will send nothing more. Write side: the peer is
     * gone. Either way a hang-up; fflags carries a socket error, if any. */
    ready |= PX__HUP;
    if (ev->fflags != 0) ready |= PX__ERROR;
  }
  if (ev->flags & EV_ERROR) ready |= PX__ERROR;
  return ready;
}

static int kq_poll(px__reactor *r, int timeout_ms) {
  struct timespec ts;
  int n = kevent(r->kq, NULL, 0, r->events, (int)r->capacity,
                 px__timeout_timespec(timeout_ms, &ts));
  if (n < 0) {
    /* A signal: "nothing happened", as reactor.h promises. */
    if (errno == EINTR) return 0;
    return px_err_from_errno(errno);
  }
  int dispatched = 0;
  pthread_mutex_lock(&r->core.mu);
  for (int i = 0; i < n; i++) {
    struct kevent *ev = &r->events[i];
#ifdef EVFILT_USER
    if (ev->filter == EVFILT_USER) continue; /* a wake-up, EV_CLEAR'd */
#else
    if (ev->filter == EVFILT_READ && (int)ev->ident == r->core.wakeup_fd.rd) {
      px__wakeup_fd_drain(&r->core.wakeup_fd);
      continue;
    }
#endif
    px__io *io = (px__io *)(uintptr_t)ev->udata;
    /* Deregistered since kevent returned? Then this event is stale. */
    if (px__reactor_lookup(r, ev->ident, io) == NULL) continue;
    px__io_dispatch(io, ready_bits(ev));
    dispatched++;
  }
  pthread_mutex_unlock(&r->core.mu);
  return dispatched;
}

static int kq_wakeup(px__reactor *r) {
#ifdef EVFILT_USER
  struct kevent kev;
  EV_SET(&kev, WAKE_IDENT, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
  return apply(r, &kev, 1);
#else
  return px__wakeup_fd_signal(&r->core.wakeup_fd);
#endif
}

const px__reactor_ops px__kqueue_ops = {
    .name = "kqueue",
    /* DEFER_FREE: events name registrations by pointer (udata). */
    .features = PX__REACTOR_EDGE | PX__REACTOR_O1 | PX__REACTOR_FD_TABLE |
                PX__REACTOR_DEFER_FREE | PX__REACTOR_HANGUPS,
    .create = kq_create,
    .destroy = kq_destroy,
    .add = kq_add,
    .modify = kq_modify,
    .del = kq_del,
    .poll = kq_poll,
    .wakeup = kq_wakeup,
};
