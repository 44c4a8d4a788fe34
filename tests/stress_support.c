#include "tests/stress_support.h"

#include <stdio.h>
#include <string.h>

/* ---- echo connection: read and write back until end of stream ---- */
typedef struct {
  px_async px;
  px_tcp_stream *s;
  px_tcp_io rd, wr;
  unsigned char buf[2048];
} echo_conn;

static void echo_conn_drop(px_future *f) {
  px_async_drop(f);
  px_tcp_close(((echo_conn *)f)->s);
}

PX_ASYNC_FN_WITH_DROP(echo_conn, echo_conn_drop) {
  PX_BEGIN();
  for (;;) {
    PX_TRY_AWAIT(px_tcp_read_init(&self->rd, self->s, self->buf, sizeof self->buf));
    if (self->rd.base.output.u64 == 0) break;
    PX_TRY_AWAIT(px_tcp_write_all_init(&self->wr, self->s, self->buf,
                                       self->rd.base.output.u64));
  }
  PX_END();
}

/* ---- echo server ---- */
static void echo_server_drop(px_future *f) {
  px_async_drop(f);
  echo_server *s = (echo_server *)f;
  px_tcp_listener_close(s->listener);
  s->listener = NULL;
}

PX_ASYNC_FN_WITH_DROP(echo_server, echo_server_drop) {
  PX_BEGIN();
  while (self->accepted < self->expected) {
    PX_TRY_AWAIT(px_tcp_accept_init(&self->acc, self->listener));
    {
      echo_conn c = PX_ASYNC_NEW(echo_conn, .s = self->acc.base.output.ptr);
      int rc = px_spawn(PX_FUTURE(&c), NULL);
      if (rc < 0) {
        px_tcp_close(c.s);
        PX_FAIL(rc);
      }
    }
    self->accepted++;
  }
  PX_END();
}

px_future *echo_server_new(echo_server *f, px_tcp_listener *l, int expected) {
  *f = PX_ASYNC_NEW(echo_server, .listener = l, .expected = expected);
  return PX_FUTURE(f);
}

/* ---- an echo connection with an idle limit ---- */
static void idle_echo_drop(px_future *f) {
  px_async_drop(f);
  idle_echo *e = (idle_echo *)f;
  px_tcp_listener_close(e->listener);
  px_tcp_close(e->s);
  e->listener = NULL;
  e->s = NULL;
}

PX_ASYNC_FN_WITH_DROP(idle_echo, idle_echo_drop) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_tcp_accept_init(&self->acc, self->listener));
  self->s = self->acc.base.output.ptr;
  for (;;) {
    PX_TRY_AWAIT(px_select_biased(px_select2_init(
        &self->sel, px_tcp_read_init(&self->rd, self->s, self->buf, sizeof self->buf),
        px_sleep_init(&self->nap, self->idle))));
    /* The idle limit passed first, or end of stream. */
    if (self->sel.index == 1 || self->rd.base.output.u64 == 0) break;
    PX_TRY_AWAIT(px_tcp_write_all_init(&self->wr, self->s, self->buf,
                                       self->rd.base.output.u64));
  }
  PX_END();
}

px_future *idle_echo_new(idle_echo *f, px_tcp_listener *l, px_duration idle) {
  *f = PX_ASYNC_NEW(idle_echo, .listener = l, .idle = idle);
  return PX_FUTURE(f);
}

/* ---- one client ---- */
typedef struct {
  px_async px;
  int id;
  uint16_t port;
  px_tcp_stream **slot_stream;
  px__atomic(int) *ok, *bad;
  px_waker *slot;
  px_tcp_connect conn;
  px_tcp_stream *s;
  px_tcp_io wr, rd;
  size_t got;
  unsigned char out[STRESS_PAYLOAD], in[STRESS_PAYLOAD];
} echo_client;

static void echo_client_drop(px_future *f) {
  px_async_drop(f);
  echo_client *c = (echo_client *)f;
  /* A finished client hands its stream to the test; an unfinished one
   * closes it. */
  if (c->s != NULL) px_tcp_close(c->s);
}

static void client_done(echo_client *c, int good) {
  atomic_fetch_add(good ? c->ok : c->bad, 1);
  if (c->slot != NULL) px_waker_wake_by_ref(c->slot);
}

PX_ASYNC_FN_WITH_DROP(echo_client, echo_client_drop) {
  PX_BEGIN();
  for (int i = 0; i < STRESS_PAYLOAD; i++)
    self->out[i] = (unsigned char)(self->id * 31 + i * 7);
  PX_AWAIT(px_tcp_connect_init(&self->conn, "127.0.0.1", self->port));
  if (self->conn.base.error < 0) {
    client_done(self, 0);
    PX_FAIL(self->conn.base.error);
  }
  self->s = self->conn.base.output.ptr;
  PX_AWAIT(px_tcp_write_all_init(&self->wr, self->s, self->out, STRESS_PAYLOAD));
  while (self->got < STRESS_PAYLOAD) {
    PX_AWAIT(px_tcp_read_init(&self->rd, self->s, self->in + self->got,
                              STRESS_PAYLOAD - self->got));
    if (self->rd.base.error < 0 || self->rd.base.output.u64 == 0) break;
    self->got += self->rd.base.output.u64;
  }
  {
    int good = self->got == STRESS_PAYLOAD &&
               memcmp(self->in, self->out, STRESS_PAYLOAD) == 0;
    /* Keep the connection open (the test closes it) so all are concurrent. */
    *self->slot_stream = self->s;
    self->s = NULL;
    client_done(self, good);
  }
  PX_END();
}

PX_ASYNC_FN(client_spawner) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->n; self->i++) {
    {
      echo_client c = PX_ASYNC_NEW(echo_client, .id = self->i,
                                   .port = self->port,
                                   .slot_stream = &self->streams[self->i],
                                   .ok = self->ok, .bad = self->bad,
                                   .slot = self->slot);
      PX_TRY(px_spawn(PX_FUTURE(&c), NULL));
    }
    /* Let the server accept before the kernel's backlog overflows. */
    if (self->i % 128 == 127) PX_YIELD();
  }
  PX_END();
}

px_future *client_spawner_new(client_spawner *f, int n, uint16_t port,
                              px_tcp_stream **streams, px__atomic(int) *ok,
                              px__atomic(int) *bad, px_waker *slot) {
  *f = PX_ASYNC_NEW(client_spawner, .n = n, .port = port, .streams = streams,
                    .ok = ok, .bad = bad, .slot = slot);
  return PX_FUTURE(f);
}

/* ---- idle sockets for shutdown ---- */
static void idle_sockets_drop(px_future *f) {
  px_async_drop(f);
  idle_sockets *s = (idle_sockets *)f;
  px_tcp_close(s->a);
  px_tcp_close(s->b);
  px_tcp_listener_close(s->listener);
}

PX_ASYNC_FN_WITH_DROP(idle_sockets, idle_sockets_drop) {
  PX_BEGIN();
  PX_TRY(px_tcp_bind("127.0.0.1", 0, &self->listener));
  PX_TRY_AWAIT(px_tcp_connect_init(&self->conn, "127.0.0.1",
                                   (uint16_t)px_tcp_listener_port(self->listener)));
  self->a = self->conn.base.output.ptr;
  PX_TRY_AWAIT(px_tcp_accept_init(&self->acc, self->listener));
  self->b = self->acc.base.output.ptr;
  /* Nobody ever writes: this waits until shutdown drops it. */
  self->both[0] = px_tcp_read_init(&self->rd, self->b, self->buf, sizeof self->buf);
  self->both[1] = px_sleep_init(&self->nap, px_secs(3600));
  PX_AWAIT(px_join_init(&self->join, self->both, 2, NULL));
  PX_END();
}

px_future *idle_sockets_new(idle_sockets *f) {
  *f = PX_ASYNC_NEW(idle_sockets);
  return PX_FUTURE(f);
}

/* ---- timer task ---- */
static void timer_task_drop(px_future *f) {
  px_async_drop(f);
  atomic_fetch_add(((timer_task *)f)->drops, 1);
}

PX_ASYNC_FN_WITH_DROP(timer_task, timer_task_drop) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_sleep_init(&self->sleep, self->delay));
  atomic_fetch_add(self->fired, 1);
  if (self->slot != NULL) px_waker_wake_by_ref(self->slot);
  PX_END();
}

px_future *timer_task_new(timer_task *f, px_duration delay,
                          px__atomic(int) *fired, px__atomic(int) *drops,
                          px_waker *slot) {
  *f = PX_ASYNC_NEW(timer_task, .delay = delay, .fired = fired, .drops = drops,
                    .slot = slot);
  return PX_FUTURE(f);
}

/* ---- wait for a child process without blocking the runtime ---- */
#include <sys/wait.h>

PX_ASYNC_FN(wait_child) {
  PX_BEGIN();
  for (;;) {
    {
      int status = 0;
      int r = waitpid(self->pid, &status, WNOHANG);
      if (r == self->pid) PX_RETURN(px_i64(status));
      if (r < 0) PX_FAIL(px_err_from_errno(errno));
    }
    PX_AWAIT(px_sleep_init(&self->nap, px_ms(5)));
  }
  PX_END();
}

px_future *wait_child_new(wait_child *f, int pid) {
  *f = PX_ASYNC_NEW(wait_child, .pid = pid);
  return PX_FUTURE(f);
}

/* ---- await a counter ---- */
PX_ASYNC_FN(await_count) {
  PX_BEGIN();
  while (atomic_load(self->value) < self->target)
    PX_AWAIT(px_sleep_init(&self->nap, px_ms(1)));
  PX_END();
}

px_future *await_count_new(await_count *f, px__atomic(int) *value, int target) {
  *f = PX_ASYNC_NEW(await_count, .value = value, .target = target);
  return PX_FUTURE(f);
}
