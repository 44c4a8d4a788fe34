/*
 * Streams with read, write and idle time limits (pollux/stream.h's
 * px_deadline_stream): a wrapper whose poll functions pass through to the
 * inner stream and, when it answers PX_PENDING, wait on one px_sleep per
 * direction as well.
 *
 * The idle deadline moves with every byte, in either direction, possibly
 * on another thread; moving a timer that often (and from the wrong task)
 * would cost more than the I/O. So activity only stores a timestamp, and
 * a direction's timer is armed for the deadline as it stood when the
 * operation started waiting; when it fires it recomputes the deadline and,
 * if activity pushed it later, re-arms for it (px_sleep_reset) instead of
 * failing. A timed-out or finished operation drops its sleep, so no timer
 * keeps a waker of a task (or of a block_on frame) that has moved on.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "api/internal/px_internal.h"
#include "api/internal/services.h"
#include "pollux/stream.h"
#include "pollux/time.h"

#define NO_DEADLINE UINT64_MAX

typedef struct direction {
  px_sleep sleep;
  px_duration limit; /* per operation; 0: none */
  px_instant started; /* when the operation began to wait; 0: not waiting */
  int armed;          /* sleep was polled: it may hold a timer entry */
} direction;

struct px_deadline_stream {
  px_stream base; /* ops == &deadline_ops */
  px_stream *inner;
  px_duration idle; /* 0: none */
  px__atomic(uint64_t) last_activity;
  direction rd, wr;
};

static px_instant add_sat(px_instant t, px_duration d) {
  return t > NO_DEADLINE - d ? NO_DEADLINE : t + d;
}

static px_instant deadline_of(px_deadline_stream *d, const direction *dir) {
  px_instant at = NO_DEADLINE;
  if (dir->limit > 0) at = add_sat(dir->started, dir->limit);
  if (d->idle > 0) {
    px_instant idle_at = add_sat(
        atomic_load_explicit(&d->last_activity, memory_order_relaxed), d->idle);
    if (idle_at < at) at = idle_at;
  }
  return at;
}

/* The operation is over (done, failed, timed out or dropped). */
static void disarm(direction *dir) {
  if (dir->armed) px__future_drop(&dir->sleep.base);
  dir->armed = 0;
  dir->started = 0;
}

/* Without a runtime there is nothing to wait with: the sleep below fails
 * with PX_ENORUNTIME, unless the clock already says the deadline passed. */
static bool passed(const px_context *cx, px_instant at) {
  return cx->runtime != NULL ? at <= px__elapsed_for(cx->runtime)
                             : px_now() >= at;
}

/*
 * Called with the inner stream's answer `rc` for direction `which`:
 * passes it on, except that a PX_PENDING past the deadline becomes
 * PX_ETIMEDOUT (with the inner operation cancelled).
 */
static int guard(px_deadline_stream *d, direction *dir, px_stream_dir which,
                 px_context *cx, int rc, size_t moved) {
  if (rc != PX_PENDING) {
    if (rc == PX_READY && moved > 0 && d->idle > 0)
      atomic_store_explicit(&d->last_activity, px_now(), memory_order_relaxed);
    disarm(dir);
    return rc;
  }
  if (dir->limit == 0 && d->idle == 0) return PX_PENDING;
  if (dir->started == 0) dir->started = px_now();
  for (;;) {
    px_instant at = deadline_of(d, dir);
    if (at == NO_DEADLINE) return PX_PENDING;
    /* Passed by the runtime's time, not the clock (px__elapsed_for,
     * services.h): a stall between the inner poll above and this check
     * must not time out an operation whose bytes came during it. */
    if (passed(cx, at)) {
      px_stream_cancel(d->inner, which);
      disarm(dir);
      return PX_ETIMEDOUT;
    }
    if (!dir->armed) {
      px_sleep_until_init(&dir->sleep, at);
      dir->armed = 1;
    } else if (px_future_is_done(&dir->sleep.base)) {
      /* Fired early: activity moved the deadline since it was armed. */
      px_sleep_reset(&dir->sleep, at);
    }
    int p = px__future_poll(&dir->sleep.base, cx);
    if (p == PX_PENDING) return PX_PENDING;
    int err = p < 0 ? p : dir->sleep.base.error;
    if (err < 0) { /* no runtime to time with, say */
      px_stream_cancel(d->inner, which);
      disarm(dir);
      return err;
    }
  }
}

static int dl_poll_read(px_stream *self, px_context *cx, void *buf,
                        size_t len, size_t *n) {
  px_deadline_stream *d = (px_deadline_stream *)self;
  int rc = px_stream_poll_read(d->inner, cx, buf, len, n);
  return guard(d, &d->rd, PX_STREAM_READ, cx, rc, *n);
}

static int dl_poll_write(px_stream *self, px_context *cx, const void *buf,
                         size_t len, size_t *n) {
  px_deadline_stream *d = (px_deadline_stream *)self;
  int rc = px_stream_poll_write(d->inner, cx, buf, len, n);
  return guard(d, &d->wr, PX_STREAM_WRITE, cx, rc, *n);
}

static int dl_poll_flush(px_stream *self, px_context *cx) {
  px_deadline_stream *d = (px_deadline_stream *)self;
  int rc = px_stream_poll_flush(d->inner, cx);
  return guard(d, &d->wr, PX_STREAM_WRITE, cx, rc, 0);
}

static int dl_poll_shutdown(px_stream *self, px_context *cx) {
  px_deadline_stream *d = (px_deadline_stream *)self;
  int rc = px_stream_poll_shutdown(d->inner, cx);
  return guard(d, &d->wr, PX_STREAM_WRITE, cx, rc, 0);
}

static void dl_cancel(px_stream *self, px_stream_dir which) {
  px_deadline_stream *d = (px_deadline_stream *)self;
  px_stream_cancel(d->inner, which);
  disarm(which == PX_STREAM_READ ? &d->rd : &d->wr);
}

static void dl_close(px_stream *self) {
  px_deadline_stream *d = (px_deadline_stream *)self;
  disarm(&d->rd);
  disarm(&d->wr);
  px_stream_close(d->inner);
  px__free(d, sizeof(*d));
}

static const px_stream_ops deadline_ops = {
    "deadline",    dl_poll_read, dl_poll_write, dl_poll_flush,
    dl_poll_shutdown, dl_cancel, dl_close};

int px_deadline_stream_new(px_stream *inner, px_deadline_stream **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  if (inner == NULL) return PX_EINVAL;
  px_deadline_stream *d = px__alloc(sizeof(*d));
  if (d == NULL) return PX_ENOMEM;
  memset(d, 0, sizeof(*d));
  d->base.ops = &deadline_ops;
  d->inner = inner;
  atomic_store_explicit(&d->last_activity, px_now(), memory_order_relaxed);
  *out = d;
  return 0;
}

px_stream *px_deadline_stream_stream(px_deadline_stream *d) {
  return d == NULL ? NULL : &d->base;
}

px_stream *px_deadline_stream_inner(px_deadline_stream *d) {
  return d == NULL ? NULL : d->inner;
}

int px_deadline_stream_set_read_timeout(px_deadline_stream *d,
                                        px_duration limit) {
  if (d == NULL) return PX_EINVAL;
  d->rd.limit = limit;
  return 0;
}

int px_deadline_stream_set_write_timeout(px_deadline_stream *d,
                                         px_duration limit) {
  if (d == NULL) return PX_EINVAL;
  d->wr.limit = limit;
  return 0;
}

int px_deadline_stream_set_idle_timeout(px_deadline_stream *d,
                                        px_duration limit) {
  if (d == NULL) return PX_EINVAL;
  d->idle = limit;
  atomic_store_explicit(&d->last_activity, px_now(), memory_order_relaxed);
  return 0;
}

void px_deadline_stream_close(px_deadline_stream *d) {
  if (d != NULL) px_stream_close(&d->base);
}
