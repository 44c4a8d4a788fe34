/*
 * px_sleep, px_timeout and px_interval over whichever timer backend is built
 * in. Sleeps and interval ticks share one px_timer_entry (pollux/time.h): it
 * registers its embedded node on the first poll that must wait (no
 * allocation), is re-armed in place, and leaves the timer when its future
 * completes or is dropped. The runtime that holds the node is kept in the
 * owning future's output slot while it is pending (`owner` below).
 */
#include <string.h>

#include "api/internal/px_internal.h"
#include "api/internal/services.h"
#include "timers/timer.h"

px_instant px_now(void) { return px__now_ns(); }

/* ---- the timer entry: what sleeps and interval ticks embed ------------- */

/* The runtime whose timer holds the entry, or NULL: the owner's output
 * slot until the owner is READY. Every READY path releases the entry
 * first, so a finished sleep's slot is 0; a finished interval tick's is
 * its instant, never a runtime, which tick_drop checks for. */
static px_runtime *entry_rt(const px_future *owner) {
  return (px_runtime *)(uintptr_t)owner->output.u64;
}

static void entry_set_rt(px_future *owner, px_runtime *rt) {
  owner->output.u64 = (uint64_t)(uintptr_t)rt;
}

/* The entry keeps its deadline as the node's tick only (pollux/time.h):
 * rounded up to the millisecond, which is when it can fire anyway. The
 * owner was just initialised (px_future_init), so it names no runtime. */
static void entry_init(px_timer_entry *e, px_instant deadline) {
  memset(&e->node, 0, sizeof e->node);
  e->node.tick = px__timer_tick(deadline);
}

/* Leaves the timer (if registered), which lets go of the waker; the entry
 * can be registered again afterwards. */
static void entry_release(px_future *owner, px_timer_entry *e) {
  px_runtime *rt = entry_rt(owner);
  if (rt != NULL) {
    px__runtime_timer_cancel(rt, &e->node);
    entry_set_rt(owner, NULL);
  }
}

/*
 * One poll of an entry: READY with *err = 0 once its deadline has passed
 * (it has then left the timer), READY with *err < 0 when the timer cannot
 * take it, PENDING once it is armed to wake cx->waker.
 */
static px_poll entry_poll(px_future *owner, px_timer_entry *e, px_context *cx,
                          int *err) {
  *err = 0;
  /* The runtime's time decides (px__elapsed_for, services.h): never early,
   * even if a timer backend rounds or a spurious wake polls us, and never
   * before the I/O that came before the deadline was dispatched. */
  if (e->node.tick <= px__timer_tick_floor(px__elapsed_for(cx->runtime))) {
    /* Due already: completing costs budget, or a loop of past-due ticks
     * (PX_MISSED_BURST after a stall) would run on inside one poll. */
    if (!px__coop_proceed(cx)) return PX_PENDING;
    entry_release(owner, e);
    return PX_READY;
  }
  /*
   * Registered for the same task: nothing to change. The waker is read from
   * the node without the timer's lock (services.h says why that is safe):
   * if the node fired since the clock was read above, the deadline has just
   * passed and the wake for this very task is on its way; entry_reset
   * re-arms the node, or forgets a fired one's waker, when the deadline
   * moves.
   */
  px_runtime *rt = entry_rt(owner);
  if (rt == cx->runtime && px_waker_will_wake(&e->node.waker, cx->waker))
    return PX_PENDING;
  /* Polled from another runtime (a future handed over after a shutdown):
   * the old one must let go of the node before the new one takes it. */
  if (rt != NULL && rt != cx->runtime) entry_release(owner, e);
  int rc = px__runtime_timer_insert(cx->runtime, &e->node, cx->waker);
  if (rc < 0) {
    entry_release(owner, e);
    *err = rc;
    return PX_READY;
  }
  entry_set_rt(owner, cx->runtime);
  return PX_PENDING;
}

/*
 * Moves the deadline. A registered entry is re-armed now, for the waker it
 * was armed for, so the task is not woken for nothing at the old deadline,
 * nor left asleep past an earlier new one. If the node fired already, its
 * wake is on the way and the woken task's poll registers the new deadline.
 * If the timer cannot take it, the task is woken, so that its next poll
 * tries again and reports the error.
 */
static void entry_reset(px_future *owner, px_timer_entry *e,
                        px_instant deadline) {
  uint64_t tick = px__timer_tick(deadline);
  px_runtime *rt = entry_rt(owner);
  if (rt != NULL)
    px__runtime_timer_rearm(rt, &e->node, tick); /* under its lock */
  else
    e->node.tick = tick; /* no timer holds the node: only we see it */
}

/* ---- sleep ------------------------------------------------------------ */

static px_poll sleep_poll(px_future *self, px_context *cx) {
  px_sleep *s = (px_sleep *)self;
  if (cx->runtime == NULL) {
    entry_release(self, &s->entry); /* READY: the slot becomes the output */
    s->base.error = PX_ENORUNTIME;
    return PX_READY;
  }
  int err;
  if (entry_poll(self, &s->entry, cx, &err) == PX_PENDING) return PX_PENDING;
  s->base.error = err;
  return PX_READY;
}

static void sleep_drop(px_future *self) {
  entry_release(self, &((px_sleep *)self)->entry);
}

static const px_future_vtable sleep_vtable = {sizeof(px_sleep), "sleep",
                                              sleep_poll, sleep_drop};

px_future *px_sleep_until_init(px_sleep *s, px_instant deadline) {
  if (s == NULL) return NULL;
  px_future_init(&s->base, &sleep_vtable);
  entry_init(&s->entry, deadline);
  return &s->base;
}

/* a + b, saturated: a duration past the end of time means "never". */
static uint64_t add_sat(uint64_t a, uint64_t b) {
  return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

px_future *px_sleep_init(px_sleep *s, px_duration duration) {
  return px_sleep_until_init(s, add_sat(px__now_ns(), duration));
}

int px_sleep_reset(px_sleep *s, px_instant new_deadline) {
  if (s == NULL) return PX_EINVAL;
  /* Finished or dropped: its node has left the timer, so starting over is
   * exactly what tokio's reset of an elapsed sleep does. */
  if (s->base.state & (PX_FUTURE_DONE | PX_FUTURE_DROPPED)) {
    px_sleep_until_init(s, new_deadline);
    return 0;
  }
  entry_reset(&s->base, &s->entry, new_deadline);
  return 0;
}

/* ---- timeout ---------------------------------------------------------- */

static px_poll timeout_poll(px_future *self, px_context *cx) {
  px_timeout *t = (px_timeout *)self;
  int r = px__future_poll(t->inner, cx);
  if (r != PX_PENDING) {
    t->base.output = r < 0 ? px_u64(0) : t->inner->output;
    t->base.error = r < 0 ? r : t->inner->error;
    px__future_drop(&t->sleep.base);
    return PX_READY;
  }
  r = px__future_poll(&t->sleep.base, cx);
  if (r == PX_PENDING) return PX_PENDING;
  /* The deadline passed first: cancel the inner future now. */
  px__future_drop(t->inner);
  t->base.output = px_u64(0);
  t->base.error = t->sleep.base.error < 0 ? t->sleep.base.error : PX_ETIMEDOUT;
  return PX_READY;
}

static void timeout_drop(px_future *self) {
  px_timeout *t = (px_timeout *)self;
  px__future_drop(t->inner);
  px__future_drop(&t->sleep.base);
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

/* ---- interval --------------------------------------------------------- */

/* How late a tick may complete before it counts as missed (tokio's 5 ms):
 * a 1 ms timer fires a little late all the time, and that is not a miss. */
#define PX__INTERVAL_TOLERANCE_NS 5000000u

/*
 * The instant of the tick after the one due at `due`, which completed at
 * `now` (tokio's MissedTickBehavior::next_timeout; see pollux/time.h).
 */
static px_instant interval_next(const px_interval *iv, px_instant due,
                                px_instant now) {
  if (now <= add_sat(due, PX__INTERVAL_TOLERANCE_NS) ||
      iv->policy == PX_MISSED_BURST)
    return add_sat(due, iv->period);
  if (iv->policy == PX_MISSED_DELAY) return add_sat(now, iv->period);
  /* SKIP: the first instant of the original schedule after now. */
  return add_sat(now, iv->period - (now - due) % iv->period);
}

static px_poll tick_poll(px_future *self, px_context *cx) {
  px_interval *iv = (px_interval *)self; /* the tick is the first member */
  if (iv->period == 0) {
    self->error = PX_EINVAL; /* px_interval_init refused it */
    return PX_READY;
  }
  if (cx->runtime == NULL) {
    entry_release(self, &iv->entry); /* READY: the slot becomes the output */
    self->error = PX_ENORUNTIME;
    return PX_READY;
  }
  int err;
  if (entry_poll(self, &iv->entry, cx, &err) == PX_PENDING) return PX_PENDING;
  if (err < 0) {
    self->error = err; /* the schedule stays: the next tick retries it */
    return PX_READY;
  }
  /* Completed, so released: the next deadline needs no lock. */
  px_instant due = iv->next;
  iv->next = interval_next(iv, due, px__now_ns());
  entry_reset(self, &iv->entry, iv->next);
  self->output = px_u64(due);
  self->error = 0;
  return PX_READY;
}

static void tick_drop(px_future *self) {
  /* A finished tick released its entry, and its slot is its instant. */
  if (!(self->state & PX_FUTURE_DONE))
    entry_release(self, &((px_interval *)self)->entry);
}

static const px_future_vtable tick_vtable = {sizeof(px_interval),
                                             "interval_tick", tick_poll,
                                             tick_drop};

int px_interval_init_at(px_interval *iv, px_instant start, px_duration period,
                        px_missed_tick policy) {
  if (iv == NULL) return PX_EINVAL;
  px_future_init(&iv->tick, &tick_vtable);
  entry_init(&iv->entry, start);
  iv->next = start;
  int valid = period > 0 && (policy == PX_MISSED_BURST ||
                             policy == PX_MISSED_DELAY ||
                             policy == PX_MISSED_SKIP);
  /* A period of 0 marks the interval invalid for its ticks to report. */
  iv->period = valid ? period : 0;
  iv->policy = valid ? policy : PX_MISSED_BURST;
  return valid ? 0 : PX_EINVAL;
}

int px_interval_init(px_interval *iv, px_duration period,
                     px_missed_tick policy) {
  return px_interval_init_at(iv, px__now_ns(), period, policy);
}

px_future *px_interval_tick(px_interval *iv) {
  if (iv == NULL) return NULL;
  /* A tick still pending is abandoned: release its node first. */
  tick_drop(&iv->tick);
  px_future_init(&iv->tick, &tick_vtable);
  return &iv->tick;
}
