/*
 * The libevent reactor: the same job done through libevent 2.1's
 * event_base, to show how pollux sits on an existing event library.
 *
 * One struct event per registration, created with
 * EV_READ | EV_WRITE | EV_PERSIST | EV_ET (and EV_CLOSED where the method
 * reports half-closes): persistent and edge-triggered, so, as with epoll,
 * each descriptor is set up once and the px__io record keeps the edges.
 * The base is created requiring EV_FEATURE_ET and EV_FEATURE_O1, which
 * libevent's epoll (Linux) and kqueue (BSD, macOS) methods provide; where
 * neither exists create fails with PX_ENOTSUP instead of silently falling
 * back to a level-triggered method that would spin on writability.
 *
 * poll(timeout) is one event_base_loop(EVLOOP_ONCE): it blocks until some
 * event is active, runs the callbacks, and returns. A timeout is a timer
 * event added for the call (its activation ends the loop); timeout 0 is
 * EVLOOP_NONBLOCK. The callbacks call px__io_dispatch and count.
 *
 * Wake-ups: an eventfd (a pipe where there is none) registered as a plain
 * persistent read event. Writing to it activates that event, which ends a
 * concurrent loop and, because the descriptor stays readable until
 * drained, also the next one. (event_base_loopbreak would not do: a
 * loopbreak before the loop starts is forgotten.)
 *
 * Threading: libevent's locking is switched on (evthread_use_pthreads, once
 * per process), so add, modify and del may run in any thread while another
 * is inside the loop. event_del waits for a callback of that event running
 * in another thread to finish, which gives reactor.h's promise: no dispatch
 * once del has returned. The descriptor -> event table is the core's.
 *
 * Allocation: each struct event lives in memory from px__alloc (event_assign
 * instead of event_new). libevent's own internal allocations (the base, its
 * epoll buffers) use libevent's allocator, which is process-wide and not
 * ours to replace.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "reactors/core.h"
#include "reactors/reactor.h"

struct px__reactor {
  px__reactor_core core; /* wake: an eventfd, or a pipe */
  struct event_base *base;
  short extra;        /* EV_CLOSED when the method supports it, else 0 */
  struct event *wake; /* the wake-up descriptor's read event */
  struct event *timer;
  int dispatched; /* counted by the callbacks during one poll */
};

_Static_assert(offsetof(struct px__reactor, core) == 0,
               "px__reactor_new needs the core first");

/*
 * One registration: who to dispatch to and where to count, followed by
 * the struct event itself (whose size only libevent knows), in one block.
 */
typedef struct reg {
  px__reactor *r;
  px__io *io;
  _Alignas(max_align_t) unsigned char event[];
} reg;

#define EVENT_OF(g) ((struct event *)(void *)(g)->event)

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static int threads_rc;

static void use_threads(void) { threads_rc = evthread_use_pthreads(); }

static struct event *event_alloc(void) {
  return px__alloc(event_get_struct_event_size());
}

static void event_release(struct event *ev) {
  if (ev == NULL) return;
  event_del(ev);
  px__free(ev, event_get_struct_event_size());
}

static size_t reg_size(void) {
  return sizeof(reg) + event_get_struct_event_size();
}

static void reg_release(reg *g) {
  if (g == NULL) return;
  event_del(EVENT_OF(g));
  px__free(g, reg_size());
}

static void le_destroy(px__reactor *r) {
  /* Registrations left behind by their owners: their events go too. */
  void *slot;
  int end = px__reactor_table_end(r);
  for (int fd = 0; fd < end; fd++)
    if (px__reactor_at(r, fd, &slot) != NULL) reg_release(*(reg **)slot);
  event_release(r->wake);
  event_release(r->timer);
  if (r->base != NULL) event_base_free(r->base);
  px__reactor_free(r, sizeof(*r));
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  px__reactor *r = arg;
  px__wakeup_fd_drain(&r->core.wakeup_fd);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  /* Nothing to do: being active is what ends the loop. */
  (void)fd;
  (void)what;
  (void)arg;
}

static void on_event(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  reg *g = arg;
  unsigned ready = 0;
  /* libevent folds EPOLLERR and EPOLLHUP into EV_READ | EV_WRITE, so a
   * reset reads as both directions ready, with nothing to tell it from
   * plain readiness: the next syscall tells which. That is why this backend
   * does not claim PX__REACTOR_HANGUPS (a short read must not be taken as
   * the end of what a reset's edge announced). A half-close (EV_CLOSED,
   * where the method has it) is reported as such. */
  if (what & EV_READ) ready |= PX__READABLE;
  if (what & EV_WRITE) ready |= PX__WRITABLE;
  if (what & EV_CLOSED) ready |= PX__READABLE | PX__HUP;
  px__io_dispatch(g->io, ready);
  /* Callbacks run in the polling thread only: a plain counter will do. */
  g->r->dispatched++;
}

static int le_create(const px_config *cfg, px__reactor **out) {
  (void)cfg; /* libevent sizes its own event buffers */
  pthread_once(&threads_once, use_threads);
  if (threads_rc != 0) return PX_ENOTSUP;

  int err;
  px__reactor *r = px__reactor_new(sizeof(*r), PX__WAKEUP_FD_EVENTFD, &err);
  if (r == NULL) return err;
  struct event_config *ec = event_config_new();
  if (ec == NULL) {
    le_destroy(r);
    return PX_ENOMEM;
  }
  event_config_require_features(ec, EV_FEATURE_ET | EV_FEATURE_O1);
  r->base = event_base_new_with_config(ec);
  event_config_free(ec);
  if (r->base == NULL) {
    le_destroy(r);
    return PX_ENOTSUP; /* no edge-triggered O(1) method here */
  }
  if (event_base_get_features(r->base) & EV_FEATURE_EARLY_CLOSE)
    r->extra = EV_CLOSED;

  r->wake = event_alloc();
  r->timer = event_alloc();
  if (r->wake == NULL || r->timer == NULL) {
    px__free(r->wake, event_get_struct_event_size());
    px__free(r->timer, event_get_struct_event_size());
    r->wake = r->timer = NULL;
    le_destroy(r);
    return PX_ENOMEM;
  }
  /* Level-triggered on purpose: it stays active until drained, so a
   * wake-up written before or during a loop always ends it. */
  if (event_assign(r->wake, r->base, r->core.wakeup_fd.rd, EV_READ | EV_PERSIST,
                   on_wake, r) < 0 ||
      evtimer_assign(r->timer, r->base, on_timer, r) < 0 ||
      event_add(r->wake, NULL) < 0) {
    le_destroy(r);
    return PX_EIO;
  }
  *out = r;
  return 0;
}

static short ev_bits(px__reactor *r, unsigned interest) {
  short what = EV_PERSIST | EV_ET;
  if (interest & PX__READABLE) what |= EV_READ | r->extra;
  if (interest & PX__WRITABLE) what |= EV_WRITE;
  return what;
}

/* (Re)arms g's event for interest; an empty interest leaves it unarmed. */
static int arm(reg *g, unsigned interest) {
  px__reactor *r = g->r;
  if (event_assign(EVENT_OF(g), r->base, g->io->fd, ev_bits(r, interest),
                   on_event, g) < 0)
    return PX_EINVAL;
  if (interest != 0 && event_add(EVENT_OF(g), NULL) < 0) return PX_EIO;
  return 0;
}

/* The core's slot of a descriptor holds its struct reg *; add, modify
 * and del run under the core's mutex. */

static int le_add(px__reactor *r, px__io *io, unsigned interest, void *slot) {
  interest &= PX__READABLE | PX__WRITABLE;
  reg *g = px__alloc(reg_size());
  if (g == NULL) return PX_ENOMEM;
  g->r = r;
  g->io = io;
  int err = arm(g, interest);
  if (err < 0) {
    px__free(g, reg_size());
    return err;
  }
  *(reg **)slot = g;
  return 0;
}

static int le_modify(px__reactor *r, px__io *io, unsigned interest,
                     void *slot) {
  (void)r;
  (void)io;
  /* An event's flags are fixed while it is added: delete, reassign, add.
   * Edge-triggered registrations never come here from px__io. */
  reg *g = *(reg **)slot;
  event_del(EVENT_OF(g));
  return arm(g, interest & (PX__READABLE | PX__WRITABLE));
}

static int le_del(px__reactor *r, px__io *io, void *slot) {
  (void)r;
  (void)io;
  /* event_del waits for this event's callback to finish in the polling
   * thread; the callback never takes the core's mutex, which we hold. */
  reg_release(*(reg **)slot);
  return 0;
}

static int le_poll(px__reactor *r, int timeout_ms) {
  r->dispatched = 0;
  int flags = EVLOOP_ONCE;
  if (timeout_ms == 0) {
    flags = EVLOOP_NONBLOCK;
  } else if (timeout_ms > 0) {
    struct timeval tv;
    if (evtimer_add(r->timer, px__timeout_timeval(timeout_ms, &tv)) < 0)
      return PX_EIO;
  }
  /* A signal makes libevent's epoll_wait return EINTR, which it treats as
   * "nothing yet" and, with EVLOOP_ONCE, waits again: never an error. */
  int rc = event_base_loop(r->base, flags);
  if (timeout_ms > 0) evtimer_del(r->timer);
  if (rc < 0) return PX_EIO;
  return r->dispatched;
}

const px__reactor_ops px__libevent_ops = {
    .name = "libevent",
    .features = PX__REACTOR_EDGE | PX__REACTOR_O1 | PX__REACTOR_FD_TABLE,
    .slot_size = sizeof(reg *),
    .create = le_create,
    .destroy = le_destroy,
    .add = le_add,
    .modify = le_modify,
    .del = le_del,
    .poll = le_poll,
};
