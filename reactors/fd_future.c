/*
 * The readiness loop every descriptor future shares (see fd_future.h). The
 * byte streams built on it (TCP and Unix connections, pipes, wrapped
 * descriptors) are in fd_stream.c.
 *
 * Registration with the reactor is lazy: a descriptor may be created
 * anywhere, and the first poll of a future on it registers it with the
 * reactor of the runtime polling it. With no runtime there is no reactor to
 * wait on, so such a future fails with PX_ENORUNTIME instead of hanging.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/internal/services.h"
#include "api/internal/px_internal.h"
#include "platform/platform.h"
#include "reactors/fd_future.h"

/* ---- The readiness loop --------------------------------------------- */

int px__fd_after_failure(void) {
  if (errno == EINTR) return PX__FD_RETRY;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return PX__FD_WOULD_BLOCK;
  return px_err_from_errno(errno);
}

/*
 * Registers io with the reactor of the runtime polling us (once; later
 * calls find it registered). Fails when there is no runtime, or when io is
 * registered with another runtime's reactor, whose events this runtime
 * would never see.
 */
static int register_slow(px__io *io, px_context *cx, bool completion);

static inline int register_io(px__io *io, px_context *cx, bool completion) {
  if (px__fd_registered_here(io, cx)) return 0;
  return register_slow(io, cx, completion);
}

/* The first poll on io under this runtime (or none: PX_ENORUNTIME). Out of
 * line, so the check above inlines without this function's frame. */
__attribute__((noinline)) static int register_slow(px__io *io, px_context *cx,
                                                   bool completion) {
  if (cx->runtime == NULL) return PX_ENORUNTIME;
  const px__reactor_ops *ops = NULL;
  px__reactor *r = NULL;
  px__runtime_reactor(cx->runtime, &ops, &r);
  if (ops == NULL || r == NULL) return PX_ENORUNTIME;
  int err = 0;
  if (!px__io_registered_with(io, r))
    err = completion ? px__io_register_completion(io, r)
                     : px__io_register(io, r);
  if (err == 0) __atomic_store_n(&io->runtime, cx->runtime, __ATOMIC_RELAXED);
  return err;
}

static int ensure_registered(px__io *io, px_context *cx) {
  return register_io(io, cx, false);
}

int px__fd_completes_slow(px__io *io, px_context *cx) {
  int err = register_io(io, cx, true);
  if (err < 0) return err;
  return px__io_completes(io) ? 1 : 0;
}

int px__fd_op_result(px_context *cx, int rc) {
  (void)cx;
  /* Waiting costs no budget: nothing was done. */
  if (rc == PX_PENDING) px__coop_refund();
  return rc;
}

px_poll px__fd_finish(px_future *f, px__io *io, unsigned interest, int err) {
  px__fd_forget_waker(f, io, interest);
  return px__fd_complete(f, err);
}

px_poll px__fd_drive_slow(px_future *f, px_context *cx, px__io *io,
                          unsigned interest, px__fd_attempt_fn attempt) {
  int err = ensure_registered(io, cx);
  if (err < 0) return px__fd_finish(f, io, interest, err);
  /* A socket that always has data must not monopolise its thread. */
  if (!px__coop_proceed(cx)) return PX_PENDING;

  px__io_event ev;
  if (!px__io_look(io, cx, interest, &ev)) {
    f->state |= PX__FD_WAITING;
    px__coop_refund(); /* nothing was done: waiting is free */
    return PX_PENDING;
  }
  return px__fd_attempted(f, cx, io, interest, attempt, ev, attempt(f));
}

px_poll px__fd_attempted(px_future *f, px_context *cx, px__io *io,
                         unsigned interest, px__fd_attempt_fn attempt,
                         px__io_event ev, int r) {
  for (bool first = true;; first = false) {
    /* Every attempt after the first costs budget too: a retry (EINTR,
     * ECONNABORTED), a connection shed at EMFILE or a fresh readiness is
     * work done for nothing the caller sees, and under a flood of them the
     * loop would otherwise never return. */
    if (!first) {
      if (!px__coop_proceed(cx)) return PX_PENDING;
      r = attempt(f);
    }
    if (r == PX__FD_RETRY) continue;
    if (r != PX__FD_WOULD_BLOCK) return px__fd_done(f, io, interest, ev, r);
    /* EAGAIN: the readiness we acted on is used up. The clear is skipped
     * if an event arrived after it was looked at (its tick moved), so
     * nothing is lost: the look below then finds it. */
    px__io_clear_ready(io, ev);
    if (!px__io_poll_ready(io, cx, interest, &ev)) {
      f->state |= PX__FD_WAITING;
      if (first) px__coop_refund(); /* nothing was done: waiting is free */
      return PX_PENDING;
    }
  }
}

void px__fd_close(px__io *io) {
  /* Deregister before closing: once closed, the number can be handed to a
   * new descriptor at once, and the reactor must not confuse the two. */
  px__io_deregister(io);
  /* A write still going out keeps the descriptor; the reactor closes it
   * after (reactors/completion.c). */
  if (io->fd_lingers) return;
  /* No retry on EINTR: on Linux the descriptor is gone either way, and a
   * retry could close someone else's new descriptor. */
  close(io->fd);
}

void px__fd_release(px__io *io, void *mem, size_t size) {
  /* Remember the reactor before deregistering forgets it. */
  px__reactor *r = io->reactor;
  px__fd_close(io);
  px__io_retire(r, io, mem, size);
}
