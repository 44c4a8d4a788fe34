#include "executors/work_stealing/ws_test_support.h"

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "executors/task.h"
#include "observe/observe.h"
#include "platform/platform.h"

size_t ws_task_future_offset(void) { return PX__TASK_FUTURE_OFFSET; }

size_t ws_task_size_joinable(size_t future_size) {
  return px__task_alloc_size(future_size, true);
}

/* ---- counter ---- */
PX_ASYNC_FN(ws_counter) {
  PX_BEGIN();
  atomic_fetch_add(&self->seen[self->index], 1);
  atomic_fetch_add(self->count, 1);
  PX_END();
}
px_future *ws_counter_new(ws_counter *f, atomic_long *count,
                          _Atomic unsigned char *seen, long index) {
  *f = PX_ASYNC_NEW(ws_counter, .count = count, .seen = seen, .index = index);
  return PX_FUTURE(f);
}

/* ---- reap ---- */
PX_ASYNC_FN(ws_reap) {
  PX_BEGIN();
  self->before = self->live();
  for (self->i = 0; self->i < self->n; self->i++) {
    ws_counter c;
    PX_TRY(px_spawn(ws_counter_new(&c, self->count, self->seen, self->i),
                    &self->joins[self->i]));
  }
  while (atomic_load(self->count) < self->n)
    PX_TRY_AWAIT(px_sleep_init(&self->sleep, px_ms(1)));
  /* The workers drop their references right after the last poll. */
  PX_TRY_AWAIT(px_sleep_init(&self->sleep, px_ms(20)));
  for (self->i = 0; self->i < self->n; self->i++)
    px_future_drop(&self->joins[self->i].base);
  /* block_on's thread sleeps here: what it freed must not stay cached. */
  PX_TRY_AWAIT(px_sleep_init(&self->sleep, px_ms(50)));
  self->after = self->live();
  PX_END();
}
px_future *ws_reap_new(ws_reap *f, int n, long (*live)(void),
                       atomic_long *count, _Atomic unsigned char *seen) {
  *f = PX_ASYNC_NEW(ws_reap, .n = n > 64 ? 64 : n, .live = live,
                    .count = count, .seen = seen);
  return PX_FUTURE(f);
}

/* ---- wait_count ---- */
PX_ASYNC_FN(ws_wait_count) {
  PX_BEGIN();
  while (atomic_load(self->count) < self->target)
    PX_TRY_AWAIT(px_sleep_init(&self->sleep, px_ms(1)));
  PX_RETURN(px_i64(atomic_load(self->count)));
  PX_END();
}
px_future *ws_wait_count_new(ws_wait_count *f, atomic_long *count,
                             long target) {
  *f = PX_ASYNC_NEW(ws_wait_count, .count = count, .target = target);
  return PX_FUTURE(f);
}

/* ---- yielder ---- */
static void ws_yielder_drop(px_future *f) {
  px_async_drop(f);
  ws_yielder *y = (ws_yielder *)f;
  if (y->drops != NULL) atomic_fetch_add(y->drops, 1);
}
PX_ASYNC_FN_WITH_DROP(ws_yielder, ws_yielder_drop) {
  PX_BEGIN();
  for (self->i = 0; self->yields < 0 || self->i < self->yields; self->i++) {
    if (self->stop != NULL && atomic_load(self->stop)) break;
    PX_YIELD();
  }
  PX_RETURN(px_i64(42));
  PX_END();
}
px_future *ws_yielder_new(ws_yielder *f, int yields, atomic_int *stop,
                          atomic_int *drops) {
  *f = PX_ASYNC_NEW(ws_yielder, .yields = yields, .stop = stop, .drops = drops);
  return PX_FUTURE(f);
}

/* ---- spawn_probe ---- */
typedef struct {
  px_async px;
} ws_tid;
PX_ASYNC_FN(ws_tid) {
  PX_BEGIN();
  PX_RETURN(px_i64((int64_t)syscall(SYS_gettid)));
  PX_END();
}
static void ws_spawn_probe_drop(px_future *f) {
  px_async_drop(f);
  px_future_drop(&((ws_spawn_probe *)f)->child.base);
}
PX_ASYNC_FN_WITH_DROP(ws_spawn_probe, ws_spawn_probe_drop) {
  PX_BEGIN();
  {
    ws_tid t = PX_ASYNC_NEW(ws_tid);
    PX_TRY(px_spawn(PX_FUTURE(&t), &self->child));
  }
  PX_TRY_AWAIT(&self->child.base);
  PX_RETURN(self->child.base.output);
  PX_END();
}
px_future *ws_spawn_probe_new(ws_spawn_probe *f) {
  *f = PX_ASYNC_NEW(ws_spawn_probe);
  return PX_FUTURE(f);
}

/* ---- chain ---- */
PX_ASYNC_FN(ws_chain) {
  PX_BEGIN();
  if (self->depth == 0) {
    atomic_fetch_add(self->done, 1);
  } else {
    ws_chain next = PX_ASYNC_NEW(ws_chain, .depth = self->depth - 1,
                                 .done = self->done);
    PX_TRY(px_spawn(PX_FUTURE(&next), NULL));
  }
  PX_END();
}
px_future *ws_chain_new(ws_chain *f, int depth, px__atomic(long) *done) {
  *f = PX_ASYNC_NEW(ws_chain, .depth = depth, .done = done);
  return PX_FUTURE(f);
}

/* ---- where ---- */
PX_ASYNC_FN(ws_where) {
  PX_BEGIN();
  atomic_store(self->where, (uintptr_t)self);
  PX_END();
}
px_future *ws_where_new(ws_where *f, px__atomic(uintptr_t) *where) {
  *f = PX_ASYNC_NEW(ws_where, .where = where);
  return PX_FUTURE(f);
}

/* ---- sleep_many ---- */
typedef struct {
  px_async px;
  px_duration delay;
  px_instant start;
  px_sleep sleep;
} ws_one_sleep;
PX_ASYNC_FN(ws_one_sleep) {
  PX_BEGIN();
  self->start = px_now();
  PX_TRY_AWAIT(px_sleep_init(&self->sleep, self->delay));
  /* Never early: a sleep completes at or after its deadline. */
  if (px_now() - self->start < self->delay) PX_FAIL(PX_EINVAL);
  PX_END();
}
static void ws_sleep_many_drop(px_future *f) {
  px_async_drop(f);
  ws_sleep_many *s = (ws_sleep_many *)f;
  for (int k = 0; k < WS_MAX_SLEEPERS; k++) px_future_drop(&s->joins[k].base);
}
PX_ASYNC_FN_WITH_DROP(ws_sleep_many, ws_sleep_many_drop) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->n; self->i++) {
    ws_one_sleep s = PX_ASYNC_NEW(ws_one_sleep,
                                  .delay = px_ms((uint64_t)self->i % 20 + 1));
    PX_TRY(px_spawn(PX_FUTURE(&s), &self->joins[self->i]));
  }
  for (self->i = 0; self->i < self->n; self->i++) {
    PX_TRY_AWAIT(&self->joins[self->i].base);
    self->on_time++;
  }
  PX_RETURN(px_i64(self->on_time));
  PX_END();
}
px_future *ws_sleep_many_new(ws_sleep_many *f, int n) {
  *f = PX_ASYNC_NEW(ws_sleep_many, .n = n > WS_MAX_SLEEPERS ? WS_MAX_SLEEPERS : n);
  return PX_FUTURE(f);
}

/* ---- sleep_while_busy ---- */
static void ws_sleep_while_busy_drop(px_future *f) {
  px_async_drop(f);
  ws_sleep_while_busy *s = (ws_sleep_while_busy *)f;
  for (int k = 0; k < WS_MAX_SLEEPERS; k++) px_future_drop(&s->joins[k].base);
}
PX_ASYNC_FN_WITH_DROP(ws_sleep_while_busy, ws_sleep_while_busy_drop) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->busy; self->i++) {
    ws_yielder y;
    ws_yielder_new(&y, -1, self->stop, NULL);
    PX_TRY(px_spawn(PX_FUTURE(&y), &self->joins[self->i]));
  }
  PX_TRY_AWAIT(px_sleep_init(&self->sleep, px_ms(self->ms)));
  atomic_store(self->stop, 1);
  for (self->i = 0; self->i < self->busy; self->i++)
    PX_TRY_AWAIT(&self->joins[self->i].base);
  PX_END();
}
px_future *ws_sleep_while_busy_new(ws_sleep_while_busy *f, int busy,
                                   uint64_t ms, atomic_int *stop) {
  if (busy > WS_MAX_SLEEPERS) busy = WS_MAX_SLEEPERS;
  *f = PX_ASYNC_NEW(ws_sleep_while_busy, .busy = busy, .ms = ms, .stop = stop);
  return PX_FUTURE(f);
}

/* ---- worker0_stuck ---- */
typedef struct {
  px_async px;
  ws_worker0_stuck *owner;
} ws_spin0;
PX_ASYNC_FN(ws_spin0) {
  PX_BEGIN();
  ws_worker0_stuck *o = self->owner;
  int expected = 0;
  if (px__observe_worker() == 0 &&
      atomic_compare_exchange_strong(&o->claimed, &expected, 1)) {
    uint64_t now = px__now_ns(), end = now + UINT64_C(3000000000);
    atomic_store(&o->claimed_at, now);
    while (!atomic_load(o->stop) && px__now_ns() < end) px__cpu_relax();
  }
  PX_END();
}
static void ws_worker0_stuck_drop(px_future *f) {
  px_async_drop(f);
  ws_worker0_stuck *s = (ws_worker0_stuck *)f;
  for (int k = 0; k < 4; k++) px_future_drop(&s->joins[k].base);
}
PX_ASYNC_FN_WITH_DROP(ws_worker0_stuck, ws_worker0_stuck_drop) {
  PX_BEGIN();
  /* Each round's short sleep is the first timer that needs another driver
   * once a task spins on worker 0. */
  for (self->round = 0; self->round < 200 && !atomic_load(&self->claimed);
       self->round++) {
    for (self->i = 0; self->i < 4; self->i++) {
      px_future_drop(&self->joins[self->i].base);
      ws_spin0 t = PX_ASYNC_NEW(ws_spin0, .owner = self);
      PX_TRY(px_spawn(PX_FUTURE(&t), &self->joins[self->i]));
    }
    PX_TRY_AWAIT(px_sleep_init(&self->sleep, px_ms(5)));
  }
  if (!atomic_load(&self->claimed)) PX_RETURN(px_i64(-1));
  self->took = (px__now_ns() - atomic_load(&self->claimed_at)) / 1000000u;
  /* And a timer armed while it spins. */
  self->t0 = px__now_ns();
  PX_TRY_AWAIT(px_sleep_init(&self->sleep, px_ms(self->ms)));
  self->t0 = (px__now_ns() - self->t0) / 1000000u;
  if (self->t0 > self->took) self->took = self->t0;
  atomic_store(self->stop, 1);
  for (self->i = 0; self->i < 4; self->i++)
    PX_TRY_AWAIT(&self->joins[self->i].base);
  PX_RETURN(px_i64((int64_t)self->took));
  PX_END();
}
px_future *ws_worker0_stuck_new(ws_worker0_stuck *f, uint64_t ms,
                                atomic_int *stop) {
  *f = PX_ASYNC_NEW(ws_worker0_stuck, .ms = ms, .stop = stop);
  atomic_init(&f->claimed, 0);
  atomic_init(&f->claimed_at, 0);
  return PX_FUTURE(f);
}

/* ---- tcp echo ---- */

/* Echoes one connection until end of stream. */
typedef struct {
  px_async px;
  px_tcp_stream *stream;
  px_tcp_io op;
  unsigned char buf[1024];
} ws_echo_conn;
static void ws_echo_conn_drop(px_future *f) {
  px_async_drop(f); /* the pending read or write goes before its socket */
  ws_echo_conn *e = (ws_echo_conn *)f;
  px_tcp_close(e->stream);
  e->stream = NULL;
}
PX_ASYNC_FN_WITH_DROP(ws_echo_conn, ws_echo_conn_drop) {
  PX_BEGIN();
  for (;;) {
    PX_TRY_AWAIT(px_tcp_read_init(&self->op, self->stream, self->buf,
                                  sizeof self->buf));
    if (self->op.base.output.u64 == 0) break;
    PX_TRY_AWAIT(px_tcp_write_all_init(&self->op, self->stream, self->buf,
                                       (size_t)self->op.base.output.u64));
  }
  PX_END();
}

/* Accepts n connections and spawns an echo task for each. */
typedef struct {
  px_async px;
  px_tcp_listener *listener;
  int n, i;
  px_tcp_accept accept;
} ws_acceptor;
PX_ASYNC_FN(ws_acceptor) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->n; self->i++) {
    PX_TRY_AWAIT(px_tcp_accept_init(&self->accept, self->listener));
    {
      ws_echo_conn e = PX_ASYNC_NEW(ws_echo_conn,
                                    .stream = self->accept.base.output.ptr);
      int rc = px_spawn(PX_FUTURE(&e), NULL);
      if (rc < 0) {
        px_tcp_close(e.stream);
        PX_FAIL(rc);
      }
    }
  }
  PX_END();
}

/* Sends len bytes of a pattern, reads them back and compares. */
typedef struct {
  px_async px;
  int port, id;
  size_t len, got;
  px_tcp_stream *stream;
  px_tcp_connect conn;
  px_tcp_io op;
  unsigned char out[4096], in[4096];
} ws_client;
static void ws_client_drop(px_future *f) {
  px_async_drop(f);
  ws_client *c = (ws_client *)f;
  px_tcp_close(c->stream);
  c->stream = NULL;
}
PX_ASYNC_FN_WITH_DROP(ws_client, ws_client_drop) {
  PX_BEGIN();
  for (size_t k = 0; k < self->len; k++)
    self->out[k] = (unsigned char)(k * 7 + (size_t)self->id);
  PX_TRY_AWAIT(px_tcp_connect_init(&self->conn, "127.0.0.1",
                                   (uint16_t)self->port));
  self->stream = self->conn.base.output.ptr;
  PX_TRY_AWAIT(px_tcp_write_all_init(&self->op, self->stream, self->out,
                                     self->len));
  while (self->got < self->len) {
    PX_TRY_AWAIT(px_tcp_read_init(&self->op, self->stream,
                                  self->in + self->got,
                                  self->len - self->got));
    if (self->op.base.output.u64 == 0) PX_FAIL(PX_EOF);
    self->got += (size_t)self->op.base.output.u64;
  }
  if (memcmp(self->in, self->out, self->len) != 0) PX_FAIL(PX_EINVAL);
  px_tcp_close(self->stream);
  self->stream = NULL;
  PX_END();
}

static void ws_tcp_echo_drop(px_future *f) {
  px_async_drop(f);
  ws_tcp_echo *t = (ws_tcp_echo *)f;
  for (int k = 0; k < WS_MAX_SLEEPERS; k++) px_future_drop(&t->joins[k].base);
  px_future_drop(&t->acceptor.base);
  px_tcp_listener_close(t->listener);
  t->listener = NULL;
}
PX_ASYNC_FN_WITH_DROP(ws_tcp_echo, ws_tcp_echo_drop) {
  PX_BEGIN();
  PX_TRY(px_tcp_bind("127.0.0.1", 0, &self->listener));
  {
    ws_acceptor a = PX_ASYNC_NEW(ws_acceptor, .listener = self->listener,
                                 .n = self->clients);
    PX_TRY(px_spawn(PX_FUTURE(&a), &self->acceptor));
  }
  for (self->i = 0; self->i < self->clients; self->i++) {
    ws_client c = PX_ASYNC_NEW(ws_client,
                               .port = px_tcp_listener_port(self->listener),
                               .id = self->i, .len = self->len);
    PX_TRY(px_spawn(PX_FUTURE(&c), &self->joins[self->i]));
  }
  for (self->i = 0; self->i < self->clients; self->i++) {
    PX_AWAIT(&self->joins[self->i].base);
    if (self->joins[self->i].base.error == 0) self->ok++;
  }
  PX_TRY_AWAIT(&self->acceptor.base);
  px_tcp_listener_close(self->listener);
  self->listener = NULL;
  PX_RETURN(px_i64(self->ok));
  PX_END();
}
px_future *ws_tcp_echo_new(ws_tcp_echo *f, int clients, size_t len) {
  if (clients > WS_MAX_SLEEPERS) clients = WS_MAX_SLEEPERS;
  if (len > 4096) len = 4096;
  *f = PX_ASYNC_NEW(ws_tcp_echo, .clients = clients, .len = len);
  return PX_FUTURE(f);
}
