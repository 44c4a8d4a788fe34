/* Connection futures for tests/serve_test.cc. */
#include "tests/serve_support.h"

#include <stdatomic.h>

void serve_stats_init(serve_stats *st, int mode) {
  st->mode = mode;
  st->started = 0;
  st->live = 0;
  st->ended = 0;
  st->saw_stop = 0;
  st->first_echo_started = -1;
  st->second_spawn_rc = 1;
}

typedef struct {
  px_async px;
  px_stream *s;
  px_cancel_token *stop;
  serve_stats *st;
  px_stream_io io;
  px_cancelled stopped;
  px_select sel;
  size_t n;
  int err;
  unsigned char buf[4096]; /* over the allocator's per-thread cache (1 KiB): freed for real */
} test_conn;

/* Runs however the connection ends: finished, or cancelled at the deadline. */
static void conn_gone(void *arg) {
  serve_stats *st = arg;
  st->live -= 1;
  st->ended += 1;
}

PX_ASYNC_FN(test_conn) {
  PX_BEGIN();
  self->st->live += 1;
  PX_DEFER(conn_gone, self->st);
  for (;;) {
    if (self->st->mode == SERVE_IGNORE_STOP) {
      PX_AWAIT_INTO(self->n, self->err,
                    px_stream_read_init(&self->io, self->s, self->buf, sizeof self->buf));
    } else {
      PX_AWAIT_INTO(self->n, self->err,
                    px_select2_init(&self->sel,
                                    px_stream_read_init(&self->io, self->s, self->buf,
                                                        sizeof self->buf),
                                    px_cancelled_init(&self->stopped, self->stop)));
      if (self->sel.index == 1) {
        self->st->saw_stop += 1;
        break;
      }
    }
    if (self->err < 0 || self->n == 0) break;
    {
      int none = -1; /* only the first echo records */
      atomic_compare_exchange_strong(&self->st->first_echo_started, &none,
                                     (int)self->st->started);
    }
    PX_AWAIT_ERR(self->err, px_stream_write_all_init(&self->io, self->s, self->buf, self->n));
    if (self->err < 0) break;
  }
  PX_END();
}

int serve_test_conn(px_serve_conn *c) {
  serve_stats *st = c->arg;
  if (st->mode == SERVE_WRAP || st->mode == SERVE_WRAP_REFUSE) {
    /* The server closes the wrapper, and the accepted stream through it. */
    px_deadline_stream *d;
    int rc = px_deadline_stream_new(c->stream, &d);
    if (rc < 0) return rc;
    c->stream = px_deadline_stream_stream(d);
  }
  if (st->mode == SERVE_REFUSE || st->mode == SERVE_WRAP_REFUSE) return PX_ENOMEM;
  test_conn f = PX_ASYNC_NEW(test_conn, .s = c->stream, .stop = c->stop, .st = st);
  /* Counted first: on a multi-threaded executor the connection may run
   * (and echo) before the spawn returns. */
  st->started += 1;
  int rc = px_serve_spawn(c, PX_FUTURE(&f));
  if (rc < 0) st->started -= 1;
  if (rc == 0 && st->mode == SERVE_SPAWN_TWICE) {
    test_conn g = PX_ASYNC_NEW(test_conn, .s = c->stream, .stop = c->stop, .st = st);
    st->second_spawn_rc = px_serve_spawn(c, PX_FUTURE(&g));
  }
  return rc;
}
