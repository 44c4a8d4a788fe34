#include "tests/support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- counting waker ---- */
static const px_waker_vtable counting_vtable;
static px_waker cw_clone(void *d) {
  atomic_fetch_add(&((counting_waker *)d)->clones, 1);
  px_waker w = {&counting_vtable, d};
  return w;
}
static void cw_wake(void *d) {
  atomic_fetch_add(&((counting_waker *)d)->wakes, 1);
  atomic_fetch_add(&((counting_waker *)d)->drops, 1);
}
static void cw_wake_by_ref(void *d) {
  atomic_fetch_add(&((counting_waker *)d)->wakes_by_ref, 1);
}
static void cw_drop(void *d) { atomic_fetch_add(&((counting_waker *)d)->drops, 1); }
static const px_waker_vtable counting_vtable = {cw_clone, cw_wake,
                                                cw_wake_by_ref, cw_drop};
px_waker counting_waker_make(counting_waker *cw) { return cw_clone(cw); }

/* ---- counting allocator ---- */
alloc_stats g_alloc;
static void *ca_alloc(void *ctx, size_t size) {
  (void)ctx;
  long n = atomic_load(&g_alloc.fail_at);
  if (n > 0 && atomic_fetch_sub(&g_alloc.fail_at, 1) == 1) return NULL;
  void *p = malloc(size);
  if (p != NULL) {
    atomic_fetch_add(&g_alloc.live_bytes, (long)size);
    atomic_fetch_add(&g_alloc.live_blocks, 1);
    atomic_fetch_add(&g_alloc.total_allocs, 1);
  }
  return p;
}
static void ca_free(void *ctx, void *p, size_t size) {
  (void)ctx;
  atomic_fetch_sub(&g_alloc.live_bytes, (long)size);
  atomic_fetch_sub(&g_alloc.live_blocks, 1);
  free(p);
}
void counting_allocator_install(void) {
  atomic_store(&g_alloc.live_bytes, 0);
  atomic_store(&g_alloc.live_blocks, 0);
  atomic_store(&g_alloc.total_allocs, 0);
  atomic_store(&g_alloc.fail_at, 0);
  px_allocator a = {ca_alloc, ca_free, NULL};
  px_set_allocator(&a);
}
void counting_allocator_remove(void) { px_set_allocator(NULL); }

/* ---- logger ---- */
PX_ASYNC_FN(logger) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->steps; self->i++) {
    self->log[atomic_fetch_add(self->len, 1)] = self->id;
    PX_YIELD();
  }
  PX_RETURN(px_i64(self->id));
  PX_END();
}
px_future *logger_new(logger *f, int id, int steps, int *log, atomic_int *len) {
  *f = PX_ASYNC_NEW(logger, .id = id, .steps = steps, .log = log, .len = len);
  return PX_FUTURE(f);
}

/* ---- sleeper ---- */
static void sleeper_drop(px_future *f) {
  px_async_drop(f);
  sleeper *s = (sleeper *)f;
  if (s->drops) atomic_fetch_add(s->drops, 1);
}
PX_ASYNC_FN_WITH_DROP(sleeper, sleeper_drop) {
  PX_BEGIN();
  /* Delay 0: done in the first poll (a px_sleep of 0 would wait for the
   * runtime's next turn of its timers, which tests of "a task that has
   * finished" must not depend on). */
  if (self->delay > 0) PX_TRY_AWAIT(px_sleep_init(&self->sleep, self->delay));
  if (self->flag) atomic_store(self->flag, 1);
  PX_RETURN(px_i64(self->value));
  PX_END();
}
px_future *sleeper_new(sleeper *f, px_duration delay, int64_t value,
                       atomic_int *flag, atomic_int *drops) {
  *f = PX_ASYNC_NEW(sleeper, .delay = delay, .value = value, .flag = flag,
                    .drops = drops);
  return PX_FUTURE(f);
}

/* ---- chain ---- */
PX_ASYNC_FN(chain) {
  PX_BEGIN();
  if (self->depth <= 1) PX_RETURN(px_i64(1));
  {
    chain next;
    chain_new(&next, self->depth - 1);
    PX_TRY(px_spawn(PX_FUTURE(&next), &self->child));
  }
  PX_TRY_AWAIT(&self->child.base);
  PX_RETURN(px_i64(self->child.base.output.i64 + 1));
  PX_END();
}
px_future *chain_new(chain *f, int depth) {
  *f = PX_ASYNC_NEW(chain, .depth = depth);
  return PX_FUTURE(f);
}

/* ---- nested block_on ---- */
PX_ASYNC_FN(nested_block_on) {
  PX_BEGIN();
  {
    px_ready r;
    px_ready_init(&r, px_i64(1), 0);
    int rc = px_runtime_block_on(px_runtime_current(), &r.base);
    PX_RETURN(px_i64(rc));
  }
  PX_END();
}
px_future *nested_block_on_new(nested_block_on *f) {
  *f = PX_ASYNC_NEW(nested_block_on);
  return PX_FUTURE(f);
}

/* ---- spawn_many ---- */
typedef struct {
  px_async px;
  atomic_int *remaining;
} decrement;
PX_ASYNC_FN(decrement) {
  PX_BEGIN();
  atomic_fetch_sub(self->remaining, 1);
  PX_END();
}
PX_ASYNC_FN(spawn_many) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->n; self->i++) {
    decrement d = PX_ASYNC_NEW(decrement, .remaining = self->remaining);
    PX_TRY(px_spawn(PX_FUTURE(&d), NULL));
  }
  while (atomic_load(self->remaining) > 0) PX_YIELD();
  PX_RETURN(px_i64(self->n));
  PX_END();
}
px_future *spawn_many_new(spawn_many *f, int n, atomic_int *remaining) {
  *f = PX_ASYNC_NEW(spawn_many, .n = n, .remaining = remaining);
  return PX_FUTURE(f);
}

/* ---- wait_for ---- */
static px_poll wait_for_poll(px_future *self, px_context *cx) {
  wait_for *w = (wait_for *)self;
  if (atomic_load(w->value) >= w->target) return PX_READY;
  px_waker_set(w->slot, cx->waker);
  if (w->stored) atomic_store(w->stored, 1);
  /* Check again: the value may have moved before the waker was stored. */
  if (atomic_load(w->value) >= w->target) return PX_READY;
  return PX_PENDING;
}
static const px_future_vtable wait_for_vtable = {sizeof(wait_for), "wait_for",
                                                 wait_for_poll, NULL};
px_future *wait_for_new(wait_for *f, atomic_int *value, int target,
                        px_waker *slot, px__atomic(int) *stored) {
  px_future_init(&f->base, &wait_for_vtable);
  f->value = value;
  f->target = target;
  f->slot = slot;
  f->stored = stored;
  return &f->base;
}

/* ---- spawn_on_drop ---- */
static px_poll spawn_on_drop_poll(px_future *self, px_context *cx) {
  (void)self;
  (void)cx;
  return PX_PENDING; /* nobody will ever wake it */
}
static void spawn_on_drop_drop(px_future *self) {
  spawn_on_drop *f = (spawn_on_drop *)self;
  px_ready r;
  px_ready_init(&r, px_i64(0), 0);
  atomic_store(f->rc, px_spawn(&r.base, NULL));
}
static const px_future_vtable spawn_on_drop_vtable = {
    sizeof(spawn_on_drop), "spawn_on_drop", spawn_on_drop_poll,
    spawn_on_drop_drop};
px_future *spawn_on_drop_new(spawn_on_drop *f, px__atomic(int) *rc) {
  px_future_init(&f->base, &spawn_on_drop_vtable);
  f->rc = rc;
  return &f->base;
}

/* ---- priority_probe ---- */
typedef struct {
  px_async px;
} current_priority;
PX_ASYNC_FN(current_priority) {
  PX_BEGIN();
  PX_RETURN(px_i64(px_task_current_priority()));
  PX_END();
}
PX_ASYNC_FN(priority_probe) {
  PX_BEGIN();
  {
    current_priority a = PX_ASYNC_NEW(current_priority);
    current_priority b = PX_ASYNC_NEW(current_priority);
    px_spawn_opts low = PX_SPAWN_OPTS_INIT;
    low.priority = 1;
    PX_TRY(px_spawn(PX_FUTURE(&a), &self->inherit));
    PX_TRY(px_spawn_with(PX_FUTURE(&b), &self->explicit_, &low));
  }
  PX_TRY_AWAIT(&self->inherit.base);
  PX_TRY_AWAIT(&self->explicit_.base);
  PX_RETURN(px_i64(px_task_current_priority() * 100 +
                   self->inherit.base.output.i64 * 10 +
                   self->explicit_.base.output.i64));
  PX_END();
}
px_future *priority_probe_new(priority_probe *f) {
  *f = PX_ASYNC_NEW(priority_probe);
  return PX_FUTURE(f);
}

/* ---- coop_consumer / ticker ---- */
PX_ASYNC_FN(coop_consumer) {
  PX_BEGIN();
  self->last = atomic_load(self->ticks);
  for (self->i = 0; self->i < self->n; self->i++) {
    PX_TRY_AWAIT(px_mpsc_recv_init(&self->recv, self->rx));
    {
      int t = atomic_load(self->ticks);
      if (t != self->last) self->seen++;
      self->last = t;
    }
  }
  PX_RETURN(px_i64(self->seen));
  PX_END();
}
px_future *coop_consumer_new(coop_consumer *f, px_mpsc_receiver *rx, int n,
                             px__atomic(int) *ticks) {
  *f = PX_ASYNC_NEW(coop_consumer, .rx = rx, .n = n, .ticks = ticks);
  return PX_FUTURE(f);
}

PX_ASYNC_FN(ticker) {
  PX_BEGIN();
  while (!atomic_load(self->stop)) {
    atomic_fetch_add(self->ticks, 1);
    PX_YIELD();
  }
  PX_END();
}
px_future *ticker_new(ticker *f, px__atomic(int) *ticks, px__atomic(int) *stop) {
  *f = PX_ASYNC_NEW(ticker, .ticks = ticks, .stop = stop);
  return PX_FUTURE(f);
}

int open_fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  int n = 0;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n - 3; /* ".", "..", and the directory's own descriptor */
}

bool built_with(const char *backend) {
  return strstr(px_build_info(), backend) != NULL;
}

bool runs_on(px_runtime *rt, const char *name) {
  const char *r = px_runtime_reactor(rt);
  return r != NULL && strcmp(r, name) == 0;
}

int unix_path_new(unix_path *p) {
  char dir[] = "/tmp/px-XXXXXX";
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(p->path, sizeof p->path, "%s/s", dir);
  return 0;
}

void unix_path_free(unix_path *p) {
  (void)unlink(p->path);
  char *slash = strrchr(p->path, '/');
  if (slash == NULL) return;
  *slash = '\0';
  (void)rmdir(p->path);
}
