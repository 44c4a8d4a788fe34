/*
 * The poll/drop wrappers that make misuse a defined error, and the small
 * futures every program needs: ready, yield, join, select, race.
 */
#include <stddef.h>
#include <stdlib.h>

#include "api/internal/px_internal.h"
#include "pollux/async.h"
#include "pollux/future.h"

/* The cooperative budget (px_internal.h) lives at the bottom layer: leaves
 * in api/ (streams, buffered I/O) spend it as well as those in sync/,
 * reactors/ and timers/; the executors set it. -1 outside a runtime. */
_Thread_local int px__coop_budget = -1;
_Thread_local px__time_snapshot px__poll_time;

int px_future_poll(px_future *f, px_context *cx) {
  return px__future_poll(f, cx);
}

void px_future_drop(px_future *f) { px__future_drop(f); }

/* One PX_DEFER registration; the frame's record keeps a list, newest
 * first. */
struct px_defer {
  px_defer_fn fn;
  void *arg;
  px_defer *next;
};

/*
 * Releases what a frame that did not finish through its output holds: the
 * awaited sub-future first (it may still use what the cleanups release: a
 * read pending on a stream the frame owns), then the cleanups, newest first,
 * as Go runs defers and Rust drops locals. Each node is unlinked before its
 * cleanup runs, and the record stays in the slot until the list is empty,
 * so a cleanup that registers or takes back another sees a consistent list.
 * Leaves the slot 0.
 */
static void async_release(px_async *a) {
  px_future *sub = px__async_awaited(a);
  px__async_await(a, NULL);
  px__future_drop(sub);
  px__async_rec *rec = px__async_rec_of(a);
  if (rec != NULL) {
    px_defer *d;
    while ((d = rec->defers) != NULL) {
      rec->defers = d->next;
      px_defer_fn fn = d->fn;
      void *arg = d->arg;
      px__free(d, sizeof *d);
      fn(arg);
    }
    px__free(rec, sizeof *rec);
  }
  a->base.output.u64 = 0;
}

void px_async_finish(px_async *frame) {
  if (frame != NULL && !(frame->base.state & PX_FUTURE_DONE))
    async_release(frame);
}

void px_async_drop(px_future *self) {
  /* A finished frame released everything as it finished, and its slot is
   * now its output, which a drop must leave alone. */
  if (!(self->state & PX_FUTURE_DONE)) async_release((px_async *)self);
}

/* True when the frame's code can no longer run: its slot is an output, or
 * nothing would ever run what is registered. */
static int async_over(const px_async *frame) {
  return (frame->base.state & (PX_FUTURE_DONE | PX_FUTURE_DROPPED)) != 0;
}

int px_async_defer(px_async *frame, px_defer_fn fn, void *arg) {
  if (frame == NULL || fn == NULL) return PX_EINVAL;
  if (async_over(frame)) {
    fn(arg); /* release now: no finish or drop is left to do it */
    return PX_EDONE;
  }
  px__async_rec *rec = px__async_rec_of(frame);
  if (rec == NULL) {
    rec = px__alloc(sizeof *rec);
    if (rec == NULL) {
      fn(arg); /* release now rather than leak: the caller fails right after */
      return PX_ENOMEM;
    }
    rec->awaiting = px__async_awaited(frame);
    rec->defers = NULL;
    frame->base.output.u64 = (uint64_t)(uintptr_t)rec | PX__ASYNC_REC;
  }
  px_defer *d = px__alloc(sizeof *d);
  if (d == NULL) {
    fn(arg);
    return PX_ENOMEM;
  }
  d->fn = fn;
  d->arg = arg;
  d->next = rec->defers;
  rec->defers = d;
  return 0;
}

/* Unlinks the newest registration of fn(arg); NULL when there is none. */
static px_defer *defer_take(px_async *frame, px_defer_fn fn, void *arg) {
  px__async_rec *rec = async_over(frame) ? NULL : px__async_rec_of(frame);
  if (rec == NULL) return NULL;
  for (px_defer **p = &rec->defers; *p != NULL; p = &(*p)->next) {
    px_defer *d = *p;
    if (d->fn == fn && d->arg == arg) {
      *p = d->next;
      return d;
    }
  }
  return NULL;
}

int px_async_undefer(px_async *frame, px_defer_fn fn, void *arg) {
  if (frame == NULL || fn == NULL) return PX_EINVAL;
  px_defer *d = defer_take(frame, fn, arg);
  if (d == NULL) return PX_ENOENT;
  px__free(d, sizeof *d);
  return 0;
}

int px_async_run_deferred(px_async *frame, px_defer_fn fn, void *arg) {
  int rc = px_async_undefer(frame, fn, arg);
  if (rc == 0) fn(arg);
  return rc;
}

void px_defer_future_drop(void *future) { px__future_drop(future); }

void px_defer_free(void *ptr) { free(ptr); }

/* ---- ready ------------------------------------------------------------ */

static px_poll ready_poll(px_future *self, px_context *cx) {
  (void)cx;
  px_ready *f = (px_ready *)self;
  f->base.output = f->value;
  f->base.error = f->err;
  return PX_READY;
}

static const px_future_vtable ready_vtable = {sizeof(px_ready), "ready",
                                              ready_poll, NULL};

px_future *px_ready_init(px_ready *f, px_value value, int err) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &ready_vtable);
  f->value = value;
  f->err = err;
  return &f->base;
}

/* ---- yield ------------------------------------------------------------ */

static px_poll yield_poll(px_future *self, px_context *cx) {
  if (self->state & 1u) return PX_READY;
  self->state |= 1u;
  /* Wake first, then return PENDING: the task goes to the back of the run
   * queue, behind everything that was already ready. */
  px_waker_wake_by_ref(cx->waker);
  return PX_PENDING;
}

static const px_future_vtable yield_vtable = {sizeof(px_yield), "yield",
                                              yield_poll, NULL};

px_future *px_yield_init(px_yield *f) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &yield_vtable);
  return &f->base;
}

/* ---- join and select --------------------------------------------------- */

/* A child is finished once it was dropped: join and select drop each child
 * as soon as it completes, so its resources go back early. */
static int child_finished(const px_future *f) {
  return f == NULL || (f->state & PX_FUTURE_DROPPED) != 0;
}

static void drop_children(px_future *const *futures, size_t n) {
  for (size_t i = 0; i < n; i++) px__future_drop(futures[i]);
}

static px_poll join_poll(px_future *self, px_context *cx) {
  px_join *j = (px_join *)self;
  for (size_t i = 0; i < j->n; i++) {
    px_future *child = j->futures[i];
    if (child_finished(child)) continue;
    if (px__future_poll(child, cx) == PX_PENDING) continue;
    px__future_drop(child);
    if (j->order != NULL) j->order[j->completed] = i;
    j->completed++;
  }
  if (j->completed < j->n) return PX_PENDING;
  j->base.output = px_u64(j->n);
  j->base.error = 0;
  return PX_READY;
}

static void join_drop(px_future *self) {
  px_join *j = (px_join *)self;
  drop_children(j->futures, j->n);
}

static const px_future_vtable join_vtable = {sizeof(px_join), "join",
                                             join_poll, join_drop};

px_future *px_join_init(px_join *f, px_future *const *futures, size_t n,
                        size_t *order) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &join_vtable);
  f->futures = futures;
  f->n = futures == NULL ? 0 : n;
  f->order = order;
  /* Children that are already finished (or NULL) count as completed now, in
   * index order, so `order` always ends up listing every index. */
  f->completed = 0;
  for (size_t i = 0; i < f->n; i++) {
    if (child_finished(futures[i])) {
      if (order != NULL) order[f->completed] = i;
      f->completed++;
    }
  }
  return &f->base;
}

static size_t live_children(px_future *const *futures, size_t n) {
  size_t live = 0;
  for (size_t i = 0; i < n; i++) live += !child_finished(futures[i]);
  return live;
}

/*
 * Where a fair select starts polling: a per-thread xorshift generator, as
 * tokio::select! picks a random branch to start from. Random rather than a
 * rotating counter because a counter shared by every select of a thread can
 * fall into step with a loop that runs several selects per iteration and
 * then starve the same branch every time.
 */
static _Thread_local uint32_t select_rng;

static size_t select_start(size_t n) {
  if (n < 2) return 0;
  uint32_t x = select_rng;
  if (x == 0) /* first use on this thread: any nonzero seed will do */
    x = (uint32_t)(px__now_ns() ^ (uintptr_t)&select_rng) | 1u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  select_rng = x;
  return (size_t)(x % (uint32_t)n);
}

static px_poll select_poll(px_future *self, px_context *cx) {
  px_select *s = (px_select *)self;
  size_t start = s->biased ? 0 : select_start(s->n);
  for (size_t k = 0; k < s->n; k++) {
    size_t i = start + k < s->n ? start + k : start + k - s->n;
    px_future *child = s->futures[i];
    if (child_finished(child)) continue;
    int r = px__future_poll(child, cx);
    if (r == PX_PENDING) continue;
    s->index = i;
    s->base.output = child->output;
    s->base.error = r < 0 ? r : child->error;
    /* The losers are cancelled here, not when the select is dropped, so
     * their timers and registrations are released as soon as we know. */
    drop_children(s->futures, s->n);
    return PX_READY;
  }
  /* Nothing left that could ever win (no futures, or all finished before
   * the select started): that is a caller error, not a hang. */
  if (live_children(s->futures, s->n) == 0) {
    s->base.error = PX_EINVAL;
    return PX_READY;
  }
  return PX_PENDING;
}

static void select_drop(px_future *self) {
  px_select *s = (px_select *)self;
  drop_children(s->futures, s->n);
}

static const px_future_vtable select_vtable = {sizeof(px_select), "select",
                                               select_poll, select_drop};

px_future *px_select_init(px_select *f, px_future *const *futures, size_t n) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &select_vtable);
  f->futures = futures;
  f->n = futures == NULL ? 0 : n;
  f->index = (size_t)-1;
  f->biased = 0;
  return &f->base;
}

/* Stores two or three futures in the combinator's own slots (`few`). */
static px_future *const *few_of(px_future **few, px_future *a, px_future *b,
                                px_future *c) {
  few[0] = a;
  few[1] = b;
  few[2] = c;
  return few;
}

px_future *px_select2_init(px_select *f, px_future *a, px_future *b) {
  if (f == NULL) return NULL;
  return px_select_init(f, few_of(f->few, a, b, NULL), 2);
}

px_future *px_select3_init(px_select *f, px_future *a, px_future *b,
                           px_future *c) {
  if (f == NULL) return NULL;
  return px_select_init(f, few_of(f->few, a, b, c), 3);
}

px_future *px_select_biased(px_future *select) {
  /* Only a select that has not started may change its polling order. */
  if (select == NULL || select->vtable != &select_vtable ||
      (select->state &
       (PX_FUTURE_POLLED | PX_FUTURE_DONE | PX_FUTURE_DROPPED)) != 0)
    return NULL;
  ((px_select *)select)->biased = 1;
  return select;
}

px_future *px_join2_init(px_join *f, px_future *a, px_future *b) {
  if (f == NULL) return NULL;
  return px_join_init(f, few_of(f->few, a, b, NULL), 2, NULL);
}

px_future *px_join3_init(px_join *f, px_future *a, px_future *b,
                         px_future *c) {
  if (f == NULL) return NULL;
  return px_join_init(f, few_of(f->few, a, b, c), 3, NULL);
}

px_future *px_join_all_init(px_join_all *f, px_future *const *futures,
                            size_t n, size_t *order) {
  return px_join_init(f, futures, n, order);
}

/* ---- race ------------------------------------------------------------- */

static px_poll race_poll(px_future *self, px_context *cx) {
  px_race *r = (px_race *)self;
  for (size_t i = 0; i < r->n; i++) {
    px_future *child = r->futures[i];
    if (child_finished(child)) continue;
    int rc = px__future_poll(child, cx);
    if (rc == PX_PENDING) continue;
    int err = rc < 0 ? rc : child->error;
    if (err == 0) {
      r->index = i;
      r->base.output = child->output;
      r->base.error = 0;
      drop_children(r->futures, r->n); /* the losers stop now */
      return PX_READY;
    }
    /* A failure only drops out of the race; remember it in case every
     * other future fails too. Dropping it marks it finished. */
    px__future_drop(child);
    r->failed++;
    r->index = i;
    r->base.error = err;
  }
  if (live_children(r->futures, r->n) > 0) return PX_PENDING;
  /* Nobody succeeded: the last failure stands, or EINVAL if nothing ran. */
  if (r->failed == 0) r->base.error = PX_EINVAL;
  r->base.output = px_u64(0);
  return PX_READY;
}

static void race_drop(px_future *self) {
  px_race *r = (px_race *)self;
  drop_children(r->futures, r->n);
}

static const px_future_vtable race_vtable = {sizeof(px_race), "race",
                                             race_poll, race_drop};

px_future *px_race_init(px_race *f, px_future *const *futures, size_t n) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &race_vtable);
  f->futures = futures;
  f->n = futures == NULL ? 0 : n;
  f->index = (size_t)-1;
  f->failed = 0;
  return &f->base;
}
