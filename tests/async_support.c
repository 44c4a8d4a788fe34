#include "tests/async_support.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- into_probe ------------------------------------------------------------ */

PX_ASYNC_FN(into_probe) {
  PX_BEGIN();
  /* An integer output into size_t (bytes read), a pointer into a typed
   * pointer, a whole px_value, a negative int, a double. */
  PX_AWAIT_INTO(self->n, self->err, px_ready_init(&self->r, px_u64(42), 0));
  PX_AWAIT_INTO(self->s, self->err2, px_ready_init(&self->r, px_ptr("hi"), 0));
  PX_TRY_AWAIT_INTO(self->v, px_ready_init(&self->r, px_i64(-7), 0));
  PX_TRY_AWAIT_INTO(self->i, px_ready_init(&self->r, px_i64(-5), 0));
  {
    px_value dv;
    dv.f64 = 2.5;
    PX_TRY_AWAIT_INTO(self->d, px_ready_init(&self->r, dv, 0));
  }
  /* A failing future does not fail PX_AWAIT_INTO: the error lands in err. */
  PX_AWAIT_INTO(self->i64, self->err3, px_ready_init(&self->r, px_i64(0), PX_EIO));
  PX_AWAIT_ERR(self->err4, px_ready_init(&self->r, px_u64(0), PX_ETIMEDOUT));
  if (self->fail_try)
    PX_TRY_AWAIT_INTO(self->n, px_ready_init(&self->r, px_u64(9), PX_ECONNRESET));
  self->after = 1;
  PX_RETURN(px_u64(self->n));
  PX_END();
}
px_future *into_probe_new(into_probe *f, int fail_try) {
  *f = PX_ASYNC_NEW(into_probe, .fail_try = fail_try, .err = 1, .err2 = 1,
                    .err3 = 1, .err4 = 1);
  return PX_FUTURE(f);
}

PX_ASYNC_FN(into_null) {
  PX_BEGIN();
  PX_AWAIT_INTO(self->n, self->err, px_ready_init(NULL, px_u64(1), 0));
  self->after = 1;
  PX_END();
}
px_future *into_null_new(into_null *f) {
  *f = PX_ASYNC_NEW(into_null, .err = 1);
  return PX_FUTURE(f);
}

PX_ASYNC_FN(into_io) {
  PX_BEGIN();
  PX_TRY_AWAIT_INTO(self->n, px_tcp_write_all_init(&self->io, self->w, "hello", 5));
  PX_AWAIT_INTO(self->n, self->err,
                px_tcp_read_init(&self->io, self->r, self->buf, sizeof self->buf));
  PX_TRY_AWAIT_INTO(self->client,
                    px_tcp_connect_init(&self->con, "127.0.0.1",
                                        (uint16_t)px_tcp_listener_port(self->l)));
  PX_TRY_AWAIT_INTO(self->accepted, px_tcp_accept_init(&self->acc, self->l));
  PX_TRY_AWAIT_INTO(self->got, px_mpsc_recv_init(&self->recv, self->rx));
  PX_END();
}
px_future *into_io_new(into_io *f, px_stream *r, px_stream *w,
                       px_tcp_listener *l, px_mpsc_receiver *rx) {
  *f = PX_ASYNC_NEW(into_io, .r = r, .w = w, .l = l, .rx = rx, .err = 1);
  return PX_FUTURE(f);
}

/* ---- deferrer ------------------------------------------------------------ */

void defer_count(void *counter) {
  defer_counter *c = counter;
  atomic_fetch_add(&c->count, 1);
  if (c->log != NULL) {
    int at = atomic_fetch_add(&c->log->len, 1);
    if (at < 8) c->log->log[at] = c->id;
  }
}

PX_ASYNC_FN(deferrer) {
  PX_BEGIN();
  PX_DEFER(defer_count, self->a);
  self->buf = malloc(64);
  PX_DEFER(px_defer_free, self->buf); /* ASan/valgrind: freed exactly once */
  PX_DEFER(defer_count, self->b);
  if (self->undefer_b) {
    self->undefer_rc = PX_UNDEFER(defer_count, self->b);
    self->undefer_again_rc = PX_UNDEFER(defer_count, self->b);
  }
  if (self->early_a) PX_TRY(px_async_run_deferred(&self->px, defer_count, self->a));
  PX_AWAIT(px_sleep_init(&self->nap, self->delay));
  PX_RETURN(px_i64(7));
  PX_END();
}
px_future *deferrer_new(deferrer *f, defer_counter *a, defer_counter *b,
                        px_duration delay) {
  *f = PX_ASYNC_NEW(deferrer, .a = a, .b = b, .delay = delay);
  return PX_FUTURE(f);
}

PX_ASYNC_FN(defer_return) {
  PX_BEGIN();
  PX_DEFER(defer_count, self->a);
  if (self->fail) PX_FAIL(PX_EIO);
  PX_RETURN(px_i64(100 + atomic_load(&self->a->count)));
  PX_END();
}
px_future *defer_return_new(defer_return *f, defer_counter *a, int fail) {
  *f = PX_ASYNC_NEW(defer_return, .a = a, .fail = fail);
  return PX_FUTURE(f);
}

/* ---- select_loop ------------------------------------------------------------ */

PX_ASYNC_FN(select_loop) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->n; self->i++) {
    px_mpsc_recv_init(&self->r1, self->rx1);
    px_mpsc_recv_init(&self->r2, self->rx2);
    if (self->biased)
      PX_TRY_AWAIT(px_select_biased(px_select2_init(&self->sel, &self->r1.base, &self->r2.base)));
    else
      PX_TRY_AWAIT(px_select2_init(&self->sel, &self->r1.base, &self->r2.base));
    self->wins[self->sel.index]++;
  }
  PX_END();
}
px_future *select_loop_new(select_loop *f, px_mpsc_receiver *rx1,
                           px_mpsc_receiver *rx2, int n, int biased) {
  *f = PX_ASYNC_NEW(select_loop, .rx1 = rx1, .rx2 = rx2, .n = n,
                    .biased = biased);
  return PX_FUTURE(f);
}

/* ---- misuse ------------------------------------------------------------------- */

PX_ASYNC_FN(switch_misuse) {
  PX_BEGIN();
  switch (self->mode) { /* the misuse under test: an await in our own switch */
    case 1:
      PX_AWAIT(px_sleep_init(&self->nap, px_ms(1)));
      break;
    default:
      break;
  }
  self->after = 1;
  PX_END();
}
px_future *switch_misuse_new(switch_misuse *f) {
  *f = PX_ASYNC_NEW(switch_misuse, .mode = 1);
  return PX_FUTURE(f);
}

PX_ASYNC_FN(nested_run) {
  PX_BEGIN();
  PX_RETURN(px_i64(px_run(px_ready_init(&self->inner, px_i64(1), 0))));
  PX_END();
}
px_future *nested_run_new(nested_run *f) {
  *f = PX_ASYNC_NEW(nested_run);
  return PX_FUTURE(f);
}

/* ---- coop_looper ------------------------------------------------------------- */

/* Finished children for COOP_JOIN. */
typedef struct {
  px_async px;
} nothing;
PX_ASYNC_FN(nothing) {
  PX_BEGIN();
  PX_END();
}

static px_future *coop_op(coop_looper *f) {
  switch (f->kind) {
    case COOP_MPSC_SEND:
    case COOP_BOUNDED_SEND:
      return px_mpsc_send_init(&f->op.send, f->tx, px_i64(f->i));
    case COOP_ONESHOT:
      px_oneshot_receiver_drop(f->orx);
      f->orx = NULL;
      if (px_oneshot_new(&f->otx, &f->orx) < 0) return NULL;
      px_oneshot_send(f->otx, px_i64(f->i));
      px_oneshot_sender_drop(f->otx);
      f->otx = NULL;
      return px_oneshot_recv_init(&f->op.orecv, f->orx);
    case COOP_MUTEX:
      return px_mutex_lock_init(&f->op.lock, f->m);
    case COOP_SEMAPHORE:
      return px_semaphore_acquire_init(&f->op.acq, f->sem, 1);
    case COOP_NOTIFY:
      px_notify_one(f->note); /* a stored permit: notified is ready */
      return px_notified_init(&f->op.notified, f->note);
    case COOP_WATCH:
      px_watch_send(f->wtx, px_i64(f->i));
      return px_watch_changed_init(&f->op.changed, f->wrx);
    case COOP_SLEEP_DUE:
      return px_sleep_until_init(&f->op.due, 0); /* long past */
    case COOP_JOIN:
      return &f->handles[f->i].base;
    case COOP_SCOPE_NEXT:
      return px_scope_join_next_init(&f->op.next, &f->scope);
    case COOP_SCOPE_JOIN:
      return px_scope_join_init(&f->op.sjoin, &f->scope);
    case COOP_CANCELLED:
      return px_cancelled_init(&f->op.cancelled, f->token);
    case COOP_BUF_LINE:
      return px_buf_read_line_init(&f->op.bio, f->reader, f->line,
                                   sizeof f->line);
    case COOP_BUF_EXACT:
      return px_buf_read_exact_init(&f->op.bio, f->reader, f->line, 2);
    case COOP_BUF_STREAM:
      return px_stream_read_init(&f->op.sio, px_buf_reader_stream(f->reader),
                                 f->line, 2);
    case COOP_BUF_WRITE:
      return px_stream_write_init(&f->op.sio, px_buf_writer_stream(f->writer),
                                  "x", 1);
    case COOP_FRAME_WRITE:
      return px_frame_write_init(&f->op.fw, px_buf_writer_stream(f->writer),
                                 "x", 1, 16);
    default:
      return NULL;
  }
}

/* Undoes what one completed op took, so the next one is ready again. */
static void coop_after(coop_looper *f) {
  px_value v;
  switch (f->kind) {
    case COOP_MPSC_SEND:
    case COOP_BOUNDED_SEND:
      px_mpsc_try_recv(f->rx, &v);
      break;
    case COOP_MUTEX:
      px_mutex_unlock(f->m);
      break;
    case COOP_SEMAPHORE:
      px_semaphore_release(f->sem, 1);
      break;
    default:
      break;
  }
}

PX_ASYNC_FN(coop_looper) {
  PX_BEGIN();
  if (self->kind == COOP_JOIN) {
    for (self->i = 0; self->i < self->n; self->i++) {
      nothing child = PX_ASYNC_NEW(nothing);
      PX_TRY(px_spawn(PX_FUTURE(&child), &self->handles[self->i]));
    }
    /* Every child runs to completion once we give way (all are ready). */
    for (self->i = 0; self->i < 4; self->i++)
      PX_AWAIT(px_sleep_init(&self->nap, px_ms(2)));
  }
  if (self->kind == COOP_SCOPE_JOIN) px_scope_init(&self->scope);
  if (self->kind == COOP_SCOPE_NEXT) {
    px_scope_init(&self->scope);
    for (self->i = 0; self->i < self->n; self->i++) {
      nothing child = PX_ASYNC_NEW(nothing);
      PX_TRY(px_scope_spawn(&self->scope, PX_FUTURE(&child)));
    }
    for (self->i = 0; self->i < 4; self->i++)
      PX_AWAIT(px_sleep_init(&self->nap, px_ms(2)));
  }
  if (self->reader != NULL) {
    /* The first fill (a socket-level read, budgeted on its own) takes all
     * n records into the buffer; every later read is served from memory. */
    PX_TRY_AWAIT(px_buf_read_exact_init(&self->op.bio, self->reader,
                                        self->line, 2));
  }
  self->last = atomic_load(self->ticks);
  for (self->i = 0; self->i < self->n; self->i++) {
    PX_TRY_AWAIT(coop_op(self));
    coop_after(self);
    {
      int t = atomic_load(self->ticks);
      if (t != self->last) self->seen++;
      self->last = t;
    }
  }
  /* The last oneshot lives in this copy of the frame (spawning copied it). */
  px_oneshot_receiver_drop(self->orx);
  self->orx = NULL;
  if (self->kind == COOP_SCOPE_NEXT || self->kind == COOP_SCOPE_JOIN)
    px_scope_drop(&self->scope);
  PX_RETURN(px_i64(self->seen));
  PX_END();
}

px_future *coop_looper_new(coop_looper *f, coop_kind kind, int n,
                           px__atomic(int) *ticks) {
  *f = PX_ASYNC_NEW(coop_looper, .kind = kind, .n = n, .ticks = ticks);
  switch (kind) {
    case COOP_MPSC_SEND:
      px_mpsc_unbounded(&f->tx, &f->rx);
      break;
    case COOP_BOUNDED_SEND:
      px_mpsc_channel(4, &f->tx, &f->rx);
      break;
    case COOP_MUTEX:
      px_mutex_new(&f->m);
      break;
    case COOP_SEMAPHORE:
      px_semaphore_new(&f->sem, 1);
      break;
    case COOP_NOTIFY:
      px_notify_new(&f->note);
      break;
    case COOP_WATCH:
      px_watch_new(px_i64(-1), &f->wtx, &f->wrx);
      break;
    case COOP_JOIN:
      f->handles = calloc((size_t)n, sizeof *f->handles);
      break;
    case COOP_CANCELLED:
      px_cancel_token_new(&f->token);
      px_cancel_token_cancel(f->token);
      break;
    case COOP_BUF_LINE:
    case COOP_BUF_EXACT:
    case COOP_BUF_STREAM: {
      /* n + 1 two-byte records (one for the first fill), all in the pipe
       * (64 KiB) before the loop, so the non-blocking write takes them. */
      px_stream *r, *w;
      if (px_pipe(&r, &w) < 0) break;
      size_t len = 2 * ((size_t)n + 1);
      char *all = malloc(len);
      for (size_t i = 0; i < len; i += 2) memcpy(all + i, "x\n", 2);
      if (write(px_stream_fd(w), all, len) != (ssize_t)len) abort();
      free(all);
      f->pipe_end = w;
      px_buf_reader_new(r, len, &f->reader);
      break;
    }
    case COOP_BUF_WRITE:
    case COOP_FRAME_WRITE: {
      px_stream *r, *w;
      if (px_pipe(&r, &w) < 0) break;
      f->pipe_end = r;
      px_buf_writer_new(w, 5 * (size_t)n, &f->writer); /* never drained */
      break;
    }
    default:
      break;
  }
  return PX_FUTURE(f);
}

void coop_looper_free(coop_looper *f) {
  if (f->tx != NULL) px_mpsc_sender_drop(f->tx);
  if (f->rx != NULL) px_mpsc_receiver_drop(f->rx);
  if (f->orx != NULL) px_oneshot_receiver_drop(f->orx);
  if (f->m != NULL) px_mutex_free(f->m);
  if (f->sem != NULL) px_semaphore_free(f->sem);
  if (f->note != NULL) px_notify_free(f->note);
  if (f->wtx != NULL) px_watch_sender_drop(f->wtx);
  if (f->wrx != NULL) px_watch_receiver_drop(f->wrx);
  if (f->handles != NULL) {
    for (int i = 0; i < f->n; i++) px_future_drop(&f->handles[i].base);
    free(f->handles);
  }
  if (f->token != NULL) px_cancel_token_drop(f->token);
  if (f->reader != NULL) px_buf_reader_close(f->reader);
  if (f->writer != NULL) px_buf_writer_close(f->writer);
  if (f->pipe_end != NULL) px_stream_close(f->pipe_end);
}

/* ---- scope_reap_spent ------------------------------------------------------- */

PX_ASYNC_FN(scope_reap_spent) {
  PX_BEGIN();
  px_scope_init(&self->scope);
  for (self->i = 0; self->i < self->n; self->i++) {
    nothing child = PX_ASYNC_NEW(nothing);
    PX_TRY(px_scope_spawn(&self->scope, PX_FUTURE(&child)));
  }
  PX_AWAIT(px_sleep_init(&self->nap, px_ms(5))); /* every child finishes */
  for (self->i = 0; self->i < self->n; self->i++) {
    /* The last unit of this poll: join_next spends it, and its reap of the
     * children's handles under the spent budget must not spin. */
    px__coop_budget = 1;
    PX_AWAIT(px_scope_join_next_init(&self->next, &self->scope));
    self->found += self->next.found;
  }
  px_scope_drop(&self->scope);
  PX_RETURN(px_i64(self->found));
  PX_END();
}
px_future *scope_reap_spent_new(scope_reap_spent *f, int n) {
  *f = PX_ASYNC_NEW(scope_reap_spent, .n = n);
  return PX_FUTURE(f);
}

/* ---- busy_sender / late_ticker ---------------------------------------------- */

PX_ASYNC_FN(busy_sender) {
  PX_BEGIN();
  while (px_now() < self->until) {
    PX_TRY_AWAIT(px_mpsc_send_init(&self->send, self->tx, px_i64(self->sent)));
    {
      px_value v;
      px_mpsc_try_recv(self->rx, &v); /* keeps the channel (and memory) small */
    }
    self->sent++;
  }
  atomic_store(self->stop, 1);
  PX_RETURN(px_i64(self->sent));
  PX_END();
}
px_future *busy_sender_new(busy_sender *f, px_mpsc_sender *tx,
                           px_mpsc_receiver *rx, uint64_t ms,
                           px__atomic(int) *stop) {
  *f = PX_ASYNC_NEW(busy_sender, .tx = tx, .rx = rx,
                    .until = px_now() + px_ms(ms), .stop = stop);
  return PX_FUTURE(f);
}

PX_ASYNC_FN(late_ticker) {
  PX_BEGIN();
  PX_TRY(px_interval_init(&self->iv, px_ms(1), PX_MISSED_SKIP));
  while (!atomic_load(self->stop)) {
    PX_TRY_AWAIT(px_interval_tick(&self->iv));
    {
      uint64_t due = self->iv.tick.output.u64, now = px_now();
      if (self->ticks > 0 && now > due && now - due > *self->worst_ns)
        *self->worst_ns = now - due; /* the first tick is not a wait */
    }
    self->ticks++;
  }
  PX_RETURN(px_i64(self->ticks));
  PX_END();
}
px_future *late_ticker_new(late_ticker *f, px__atomic(int) *stop,
                           uint64_t *worst_ns) {
  *f = PX_ASYNC_NEW(late_ticker, .stop = stop, .worst_ns = worst_ns);
  return PX_FUTURE(f);
}

/* ---- accept_loop --------------------------------------------------------------- */

typedef struct {
  px_async px;
  px_tcp_stream *conn;
  px__atomic(int) *accepted, *first_seen, *served;
} conn_handler;

static void close_conn(void *s) { px_tcp_close(s); }

PX_ASYNC_FN(conn_handler) {
  PX_BEGIN();
  PX_DEFER(close_conn, self->conn);
  {
    int unset = -1;
    atomic_compare_exchange_strong(self->first_seen, &unset,
                                   atomic_load(self->accepted));
  }
  atomic_fetch_add(self->served, 1);
  PX_END();
}

PX_ASYNC_FN(accept_loop) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->n; self->i++) {
    PX_TRY_AWAIT_INTO(self->conn, px_tcp_accept_init(&self->acc, self->l));
    atomic_fetch_add(self->accepted, 1);
    {
      conn_handler h = PX_ASYNC_NEW(conn_handler, .conn = self->conn,
                                    .accepted = self->accepted,
                                    .first_seen = self->first_seen,
                                    .served = self->served);
      int rc = px_spawn(PX_FUTURE(&h), NULL);
      if (rc < 0) {
        px_tcp_close(self->conn);
        PX_FAIL(rc);
      }
    }
  }
  /* Every handler owns its connection from its first poll (its PX_DEFER):
   * wait for all of them, or the runtime would drop unpolled ones. */
  while (atomic_load(self->served) < self->n) PX_YIELD();
  PX_END();
}
px_future *accept_loop_new(accept_loop *f, px_tcp_listener *l, int n,
                           px__atomic(int) *accepted,
                           px__atomic(int) *first_seen,
                           px__atomic(int) *served) {
  *f = PX_ASYNC_NEW(accept_loop, .l = l, .n = n, .accepted = accepted,
                    .first_seen = first_seen, .served = served);
  return PX_FUTURE(f);
}
