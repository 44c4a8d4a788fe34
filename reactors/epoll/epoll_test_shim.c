/* See epoll_test_shim.h: plain-typed wrappers around the reactor internals. */
#include "reactors/epoll/epoll_test_shim.h"

#include <stdlib.h>

#include "pollux/runtime.h"
#include "reactors/reactor.h"

_Static_assert(SHIM_READABLE == PX__READABLE, "bits drifted");
_Static_assert(SHIM_WRITABLE == PX__WRITABLE, "bits drifted");
_Static_assert(SHIM_HUP == PX__HUP, "bits drifted");
_Static_assert(SHIM_ERROR == PX__ERROR, "bits drifted");

extern const px__reactor_ops px__epoll_ops;

struct shim_reactor {
  px__reactor *r;
};

struct shim_io {
  px__io io;
};

int shim_reactor_new(uint32_t capacity, shim_reactor **out) {
  px_config cfg = {
      .workers = 1, .event_capacity = capacity, .event_interval = 61};
  shim_reactor *s = calloc(1, sizeof(*s));
  if (s == NULL) return PX_ENOMEM;
  int err = px__epoll_ops.create(capacity == 0 ? NULL : &cfg, &s->r);
  if (err < 0) {
    free(s);
    return err;
  }
  *out = s;
  return 0;
}

void shim_reactor_free(shim_reactor *r) {
  px__epoll_ops.destroy(r->r);
  free(r);
}

int shim_poll(shim_reactor *r, int timeout_ms) {
  return px__epoll_ops.poll(r->r, timeout_ms);
}

int shim_wakeup(shim_reactor *r) { return px__epoll_ops.wakeup(r->r); }

const char *shim_name(void) { return px__epoll_ops.name; }

unsigned shim_features(void) { return px__epoll_ops.features; }

shim_io *shim_io_new(int fd) {
  shim_io *s = calloc(1, sizeof(*s));
  if (s != NULL) px__io_init(&s->io, fd);
  return s;
}

void shim_io_free(shim_io *io) {
  px__io_deregister(&io->io);
  free(io);
}

int shim_register(shim_io *io, shim_reactor *r) {
  return px__io_register(&io->io, &px__epoll_ops, r->r);
}

void shim_deregister(shim_io *io) { px__io_deregister(&io->io); }

int shim_modify(shim_io *io, unsigned interest) {
  return px__epoll_ops.modify(io->io.reactor, &io->io, interest);
}

bool shim_poll_ready(shim_io *io, const px_waker *waker, unsigned interest,
                     unsigned *ready, uint64_t *tick) {
  px_context cx = {.waker = waker, .runtime = NULL};
  px__io_event ev = {0, 0};
  bool ok = px__io_poll_ready(&io->io, &cx, interest, &ev);
  *ready = ev.ready;
  *tick = ev.tick;
  return ok;
}

void shim_clear_ready(shim_io *io, unsigned ready, uint64_t tick) {
  px__io_event ev = {.ready = ready, .tick = tick};
  px__io_clear_ready(&io->io, ev);
}

void shim_dispatch(shim_io *io, unsigned ready) {
  px__io_dispatch(&io->io, ready);
}

void shim_wake_all(shim_io *io) { px__io_wake_all(&io->io); }

unsigned shim_ready_bits(shim_io *io) {
  return (unsigned)(atomic_load(&io->io.state) & PX__READY_MASK);
}
