#include "executors/priority/priority_test_support.h"

#include <stdlib.h>

/* ---- counting allocator ---- */
prio_alloc_stats prio_alloc;
static void *ca_alloc(void *ctx, size_t size) {
  (void)ctx;
  void *p = malloc(size);
  if (p != NULL) {
    atomic_fetch_add(&prio_alloc.live_bytes, (long)size);
    atomic_fetch_add(&prio_alloc.live_blocks, 1);
    atomic_fetch_add(&prio_alloc.total_allocs, 1);
  }
  return p;
}
static void ca_free(void *ctx, void *p, size_t size) {
  (void)ctx;
  atomic_fetch_sub(&prio_alloc.live_bytes, (long)size);
  atomic_fetch_sub(&prio_alloc.live_blocks, 1);
  free(p);
}
void prio_allocator_install(void) {
  atomic_store(&prio_alloc.live_bytes, 0);
  atomic_store(&prio_alloc.live_blocks, 0);
  atomic_store(&prio_alloc.total_allocs, 0);
  px_allocator a = {ca_alloc, ca_free, NULL};
  px_set_allocator(&a);
}
void prio_allocator_remove(void) { px_set_allocator(NULL); }

/* ---- log ---- */
static void log_append(prio_log *log, int id) {
  int i = atomic_fetch_add(&log->len, 1);
  if (i < PRIO_LOG_MAX) {
    log->ids[i] = id;
    log->levels[i] = px_task_current_priority();
  }
}

/* ---- countdown and its waiter ---- */
void prio_done_signal(prio_done *d) {
  if (atomic_fetch_sub(&d->remaining, 1) == 1) px_waker_wake_by_ref(&d->waiter);
}
static px_poll wait_poll(px_future *self, px_context *cx) {
  prio_wait *w = (prio_wait *)self;
  if (atomic_load(&w->done->remaining) <= 0) return PX_READY;
  px_waker_set(&w->done->waiter, cx->waker);
  return PX_PENDING;
}
static void wait_drop(px_future *self) {
  px_waker_drop(&((prio_wait *)self)->done->waiter);
}
static const px_future_vtable wait_vtable = {sizeof(prio_wait), "prio_wait",
                                             wait_poll, wait_drop};
px_future *prio_wait_new(prio_wait *f, prio_done *done) {
  px_future_init(&f->base, &wait_vtable);
  f->done = done;
  return &f->base;
}

/* ---- logger ---- */
PX_ASYNC_FN(prio_logger) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->steps; self->i++) {
    log_append(self->log, self->id);
    if (self->i + 1 < self->steps) PX_YIELD();
  }
  if (self->done != NULL) prio_done_signal(self->done);
  PX_RETURN(px_i64(self->id));
  PX_END();
}
px_future *prio_logger_new(prio_logger *f, int id, int steps, prio_log *log,
                           prio_done *done) {
  *f = PX_ASYNC_NEW(prio_logger, .id = id, .steps = steps, .log = log,
                    .done = done);
  return PX_FUTURE(f);
}

/* ---- family ---- */
PX_ASYNC_FN(prio_family) {
  PX_BEGIN();
  {
    prio_logger a, b;
    prio_logger_new(&a, 1, 1, self->log, NULL);
    prio_logger_new(&b, 2, 1, self->log, NULL);
    px_spawn_opts opts = PX_SPAWN_OPTS_INIT;
    PX_TRY(px_spawn_with(PX_FUTURE(&a), &self->a, &opts));
    opts.priority = self->child_level;
    PX_TRY(px_spawn_with(PX_FUTURE(&b), &self->b, &opts));
  }
  PX_TRY_AWAIT(&self->a.base);
  PX_TRY_AWAIT(&self->b.base);
  PX_RETURN(px_i64(px_task_current_priority()));
  PX_END();
}
px_future *prio_family_new(prio_family *f, int child_level, prio_log *log) {
  *f = PX_ASYNC_NEW(prio_family, .child_level = child_level, .log = log);
  return PX_FUTURE(f);
}

/* ---- chain ---- */
PX_ASYNC_FN(prio_chain) {
  PX_BEGIN();
  log_append(self->log, self->depth);
  if (self->depth == 0) PX_RETURN(px_i64(0));
  {
    prio_chain next;
    prio_chain_new(&next, self->depth - 1, self->log);
    PX_TRY(px_spawn(PX_FUTURE(&next), &self->child));
  }
  PX_TRY_AWAIT(&self->child.base);
  PX_RETURN(px_i64(0));
  PX_END();
}
px_future *prio_chain_new(prio_chain *f, int depth, prio_log *log) {
  *f = PX_ASYNC_NEW(prio_chain, .depth = depth, .log = log);
  return PX_FUTURE(f);
}

/* ---- spinner ---- */
static px_poll spinner_poll(px_future *self, px_context *cx) {
  prio_spinner *s = (prio_spinner *)self;
  uint64_t now = ++*s->clock;
  prio_spin_stats *st = s->stats;
  st->polls++;
  if (s->watch) {
    if (now - st->last > st->max_gap) st->max_gap = now - st->last;
    st->last = now;
    if (st->polls >= s->rounds) *s->stop = 1;
  }
  if (*s->stop) return PX_READY;
  /* Yield: ready again at once, at the tail of its level. */
  px_waker_wake_by_ref(cx->waker);
  return PX_PENDING;
}
static const px_future_vtable spinner_vtable = {
    sizeof(prio_spinner), "prio_spinner", spinner_poll, NULL};
px_future *prio_spinner_new(prio_spinner *f, uint64_t *clock, int *stop,
                            prio_spin_stats *stats, int watch,
                            uint64_t rounds) {
  px_future_init(&f->base, &spinner_vtable);
  f->clock = clock;
  f->stop = stop;
  f->stats = stats;
  f->watch = watch;
  f->rounds = rounds;
  return &f->base;
}

/* ---- spawn_many ---- */
typedef struct {
  px_async px;
  int *per_level;
  int *finish_order;
  int *finished_levels;
  prio_done *done;
} count_down;
PX_ASYNC_FN(count_down) {
  PX_BEGIN();
  {
    /* Indexing by the task's own level checks the level it was given. */
    int level = px_task_current_priority();
    if (--self->per_level[level] == 0)
      self->finish_order[(*self->finished_levels)++] = level;
    prio_done_signal(self->done);
  }
  PX_END();
}
PX_ASYNC_FN(prio_spawn_many) {
  PX_BEGIN();
  atomic_store(&self->done->remaining, self->n);
  for (self->i = 0; self->i < self->n; self->i++) {
    count_down c = PX_ASYNC_NEW(count_down, .per_level = self->per_level,
                                .finish_order = self->finish_order,
                                .finished_levels = self->finished_levels,
                                .done = self->done);
    px_spawn_opts opts = PX_SPAWN_OPTS_INIT;
    opts.priority = self->i % PX_PRIORITY_LEVELS;
    PX_TRY(px_spawn_with(PX_FUTURE(&c), NULL, &opts));
    self->per_level[opts.priority]++;
  }
  PX_AWAIT(prio_wait_new(&self->wait, self->done));
  PX_RETURN(px_i64(self->n));
  PX_END();
}
px_future *prio_spawn_many_new(prio_spawn_many *f, int n, int *per_level,
                               int *finish_order, int *finished_levels,
                               prio_done *done) {
  *f = PX_ASYNC_NEW(prio_spawn_many, .n = n, .per_level = per_level,
                    .finish_order = finish_order,
                    .finished_levels = finished_levels, .done = done);
  return PX_FUTURE(f);
}

/* ---- sleeper ---- */
PX_ASYNC_FN(prio_sleeper) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_sleep_init(&self->sleep, self->delay));
  PX_RETURN(px_i64(self->value));
  PX_END();
}
px_future *prio_sleeper_new(prio_sleeper *f, px_duration delay, int64_t value) {
  *f = PX_ASYNC_NEW(prio_sleeper, .delay = delay, .value = value);
  return PX_FUTURE(f);
}
