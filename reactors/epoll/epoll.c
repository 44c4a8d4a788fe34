/*
 * The epoll(7) reactor, edge-triggered.
 *
 * Every descriptor is added once with EPOLLIN | EPOLLOUT | EPOLLRDHUP |
 * EPOLLET and its px__io as the event's data. Edge-triggered means the
 * kernel reports a change (the socket *became* readable), not a state, so a
 * descriptor never needs another epoll_ctl between operations: the px__io
 * remembers the edge until a syscall returns EAGAIN and clears it (see
 * reactors/readiness.c for why that clear is race-free). That is one system call
 * per registration instead of one per wait, which is what mio and tokio do.
 *
 * Cross-thread wake-ups go through an eventfd in the same epoll set: writing
 * to it makes a blocked epoll_wait return. Its event carries a sentinel
 * pointer instead of a px__io so poll can tell it apart.
 *
 * Threading: add, modify and del may be called from any thread (epoll_ctl
 * is thread-safe); poll must be called by one thread at a time, since the
 * event array is shared; wakeup (the core's eventfd) from anywhere.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "reactors/core.h"
#include "reactors/reactor.h"

#define DEFAULT_EVENT_CAPACITY 1024u

struct px__reactor {
  /* wakeup_fd is an eventfd, written by wakeup (a self-pipe without one,
   * drained by poll); epoll_ctl needs no lock of ours. */
  px__reactor_core core;
  int epfd;
  bool wake_edge; /* the eventfd is edge-triggered: poll never reads it */
  uint32_t capacity;
  struct epoll_event *events; /* capacity entries, reused by every poll */
};

_Static_assert(offsetof(struct px__reactor, core) == 0,
               "px__reactor_new needs the core first");

/* Its address marks the eventfd's events; no px__io can live there. */
static char wake_sentinel;

static void ep_destroy(px__reactor *r) {
  if (r->epfd >= 0) close(r->epfd);
  px__free(r->events, (size_t)r->capacity * sizeof(struct epoll_event));
  px__reactor_free(r, sizeof(*r));
}

static int ep_create(const px_config *cfg, px__reactor **out) {
  uint32_t capacity = DEFAULT_EVENT_CAPACITY;
  /* px_config_validate rejects 0; treating it as "default" here keeps a
   * zeroed config usable by callers that skip validation (tests). */
  if (cfg != NULL && cfg->event_capacity != 0) capacity = cfg->event_capacity;

  /* CLOEXEC everywhere: a child started with exec must not inherit the
   * runtime's descriptors (and keep its sockets open). */
  int err;
  px__reactor *r = px__reactor_new(sizeof(*r), PX__WAKEUP_FD_EVENTFD, &err);
  if (r == NULL) return err;
  r->epfd = -1;
  r->capacity = capacity;
  r->events = px__alloc((size_t)capacity * sizeof(struct epoll_event));
  if (r->events == NULL) {
    ep_destroy(r);
    return PX_ENOMEM;
  }

  r->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (r->epfd < 0) goto fail;

  /* An eventfd is edge-triggered, as mio's waker: each write is an edge
   * (the kernel queues the event again even while the counter is not
   * zero), so a wake-up needs no read to re-arm it: one system call less
   * per wake-up than reading the counter back. The counter only grows;
   * px__wakeup_fd_signal resets it if it ever fills (2^64 - 1 wake-ups).
   * A self-pipe (no eventfd) fills after a few thousand writes, so it is
   * level-triggered and drained: while it holds data every epoll_wait
   * returns at once, and a wake-up racing with the drain is not lost. */
  r->wake_edge = r->core.wakeup_fd.rd == r->core.wakeup_fd.wr;
  struct epoll_event ev = {
      .events = EPOLLIN | (r->wake_edge ? (uint32_t)EPOLLET : 0),
      .data = {.ptr = &wake_sentinel}};
  if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->core.wakeup_fd.rd, &ev) < 0) goto fail;

  *out = r;
  return 0;

fail:
  err = px_err_from_errno(errno);
  ep_destroy(r);
  return err;
}

static uint32_t ep_bits(unsigned interest) {
  /* EPOLLRDHUP tells a half-close apart from plain readability; EPOLLERR
   * and EPOLLHUP are always reported and need not be asked for. */
  uint32_t bits = EPOLLET | EPOLLRDHUP;
  if (interest & PX__READABLE) bits |= EPOLLIN;
  if (interest & PX__WRITABLE) bits |= EPOLLOUT;
  return bits;
}

static int ep_ctl_io(px__reactor *r, int op, px__io *io, unsigned interest) {
  struct epoll_event ev = {.events = ep_bits(interest), .data = {.ptr = io}};
  if (epoll_ctl(r->epfd, op, io->fd, &ev) < 0) return px_err_from_errno(errno);
  return 0;
}

static int ep_add(px__reactor *r, px__io *io, unsigned interest, void *slot) {
  (void)slot; /* no table: events name the px__io itself */
  /* With EPOLLET, ADD also reports the current state once: a socket that is
   * already readable gets its edge on the next poll, so registering after
   * data arrived loses nothing. */
  return ep_ctl_io(r, EPOLL_CTL_ADD, io, interest);
}

static int ep_modify(px__reactor *r, px__io *io, unsigned interest,
                     void *slot) {
  /* Edge-triggered registrations watch both directions for their whole
   * life, so px__io never asks; a real change of interest (the core calls
   * only for one) is still honoured. */
  (void)slot;
  return ep_ctl_io(r, EPOLL_CTL_MOD, io, interest);
}

static int ep_del(px__reactor *r, px__io *io, void *slot) {
  (void)slot;
  /* The event argument is ignored by DEL but must be non-NULL before
   * Linux 2.6.9. ENOENT (never added) and EBADF (already closed, which
   * removed it) both mean "not watched any more", which is what we want. */
  struct epoll_event ev = {0};
  if (epoll_ctl(r->epfd, EPOLL_CTL_DEL, io->fd, &ev) < 0 && errno != ENOENT &&
      errno != EBADF)
    return px_err_from_errno(errno);
  return 0;
}

/* Translates epoll's bits into px__io's. */
static unsigned ready_bits(uint32_t events) {
  unsigned ready = 0;
  if (events & EPOLLIN) ready |= PX__READABLE;
  if (events & EPOLLOUT) ready |= PX__WRITABLE;
  /* A half-close by the peer: the next read returns 0, so it is readable. */
  if (events & EPOLLRDHUP) ready |= PX__READABLE | PX__HUP;
  if (events & EPOLLHUP) ready |= PX__HUP;
  if (events & EPOLLERR) ready |= PX__ERROR;
  return ready;
}

static int ep_poll(px__reactor *r, int timeout_ms) {
  int n = epoll_wait(r->epfd, r->events, (int)r->capacity, timeout_ms);
  if (n < 0) {
    /* A signal interrupted the wait: report "nothing happened" and let the
     * caller loop, as the interface promises. */
    if (errno == EINTR) return 0;
    return px_err_from_errno(errno);
  }
  int dispatched = 0;
  for (int i = 0; i < n; i++) {
    struct epoll_event *ev = &r->events[i];
    if (ev->data.ptr == &wake_sentinel) {
      if (!r->wake_edge) px__wakeup_fd_drain(&r->core.wakeup_fd);
      continue;
    }
    px__io_dispatch((px__io *)ev->data.ptr, ready_bits(ev->events));
    dispatched++;
  }
  return dispatched;
}

const px__reactor_ops px__epoll_ops = {
    .name = "epoll",
    /* DEFER_FREE: a batch of events names registrations by pointer
     * (data.ptr), so one closed on another worker while the batch is
     * dispatched is freed only when the next poll begins (reactors/core.c);
     * EPOLL_CTL_DEL made sure no later batch names it. No table: the kernel
     * keeps the one registration per descriptor. */
    .features = PX__REACTOR_EDGE | PX__REACTOR_O1 | PX__REACTOR_DEFER_FREE |
                PX__REACTOR_HANGUPS,
    .create = ep_create,
    .destroy = ep_destroy,
    .add = ep_add,
    .modify = ep_modify,
    .del = ep_del,
    .poll = ep_poll,
};
