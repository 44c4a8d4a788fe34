/*
 * px_sleep and px_timeout over whichever timer backend is built in. The
 * sleep registers its embedded timer node on first poll (no allocation) and
 * leaves the timer when it completes or is dropped.
 */
#include <string.h>

#include "api/internal/px_internal.h"
#include "executors/executor.h"
#include "timers/timer.h"

px_instant px_now(void) { return px__now_ns(); }

static px_poll sleep_poll(px_future *self, px_context *cx) {
  px_sleep *s = (px_sleep *)self;
  if (cx->runtime == NULL) {
    s->base.error = PX_ENORUNTIME;
    return PX_READY;
  }
  /* The clock, not the timer, decides: a sleep never completes early even
   * if a timer backend rounds or a spurious wake polls us. */
  if (px__now_ns() >= s->deadline) {
    if (s->timer != NULL) {
      px__runtime_timer_cancel(s->timer, &s->node);
      s->timer = NULL;
    }
    s->base.error = 0;
    return PX_READY;
  }
  /* Already armed for the same task: nothing to change. */
  if ((s->node.flags & PX__TIMER_ARMED) &&
      px_waker_will_wake(&s->node.waker, cx->waker))
    return PX_PENDING;
  int rc = px__runtime_timer_insert(cx->runtime, &s->node, s->deadline,
                                    cx->waker);
  if (rc < 0) {
    s->base.error = rc;
    return PX_READY;
  }
  s->timer = cx->runtime;
  return PX_PENDING;
}

static void sleep_drop(px_future *self) {
  px_sleep *s = (px_sleep *)self;
  if (s->timer != NULL) {
    px__runtime_timer_cancel(s->timer, &s->node);
    s->timer = NULL;
  }
}

static const px_future_vtable sleep_vtable = {sizeof(px_sleep), "sleep",
                                              sleep_poll, sleep_drop};

px_future *px_sleep_until_init(px_sleep *s, px_instant deadline) {
  if (s == NULL) return NULL;
  px_future_init(&s->base, &sleep_vtable);
  s->deadline = deadline;
  s->timer = NULL;
  memset(&s->node, 0, sizeof s->node);
  return &s->base;
}

px_future *px_sleep_init(px_sleep *s, px_duration duration) {
  uint64_t now = px__now_ns();
  /* Saturate: a duration past the end of time means "never". */
  uint64_t deadline = duration > UINT64_MAX - now ? UINT64_MAX : now + duration;
  return px_sleep_until_init(s, deadline);
}

/* ---- timeout ---------------------------------------------------------- */

static px_poll timeout_poll(px_future *self, px_context *cx) {
  px_timeout *t = (px_timeout *)self;
  int r = px_future_poll(t->inner, cx);
  if (r != PX_PENDING) {
    t->base.output = r < 0 ? px_u64(0) : t->inner->output;
    t->base.error = r < 0 ? r : t->inner->error;
    px_future_drop(&t->sleep.base);
    return PX_READY;
  }
  r = px_future_poll(&t->sleep.base, cx);
  if (r == PX_PENDING) return PX_PENDING;
  /* The deadline passed first: cancel the inner future now. */
  px_future_drop(t->inner);
  t->base.output = px_u64(0);
  t->base.error = t->sleep.base.error < 0 ? t->sleep.base.error : PX_ETIMEDOUT;
  return PX_READY;
}

static void timeout_drop(px_future *self) {
  px_timeout *t = (px_timeout *)self;
  px_future_drop(t->inner);
  px_future_drop(&t->sleep.base);
}

static const px_future_vtable timeout_vtable = {sizeof(px_timeout), "timeout",
                                                timeout_poll, timeout_drop};

px_future *px_timeout_init(px_timeout *t, px_future *inner,
                           px_duration duration) {
  if (t == NULL) return NULL;
  px_future_init(&t->base, &timeout_vtable);
  t->inner = inner;
  px_sleep_init(&t->sleep, duration);
  return &t->base;
}
