/* TLS test futures (see tls_support.h). */
#include "tests/tls_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void note_error(tls_report *rep, px_stream *s, int err) {
  if (rep->io_err != 0 || err == 0) return;
  rep->io_err = err;
  snprintf(rep->err_text, sizeof rep->err_text, "%s", px_tls_last_error(s));
}

static void note_handshake(tls_report *rep, px_stream *s, int err) {
  rep->handshake_err = err;
  snprintf(rep->err_text, sizeof rep->err_text, "%s", px_tls_last_error(s));
  const char *a = px_tls_alpn(s);
  const char *n = px_tls_server_name(s);
  const char *v = px_tls_version(s);
  snprintf(rep->alpn, sizeof rep->alpn, "%s", a ? a : "");
  snprintf(rep->sni, sizeof rep->sni, "%s", n ? n : "");
  snprintf(rep->version, sizeof rep->version, "%s", v ? v : "");
}

/* ---- Echo server ---------------------------------------------------------- */

static void echo_server_cleanup(px_future *f) {
  tls_echo_server *self = (tls_echo_server *)f;
  px_async_drop(f);
  px_stream_close(self->tls);
  self->tls = NULL;
}

PX_ASYNC_FN_WITH_DROP(tls_echo_server, echo_server_cleanup) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_tcp_accept_init(&self->accept, self->listener));
  {
    px_tcp_stream *tcp = self->accept.base.output.ptr;
    int err = px_tls_server_new(self->ctx, tcp, &self->tls);
    if (err < 0) {
      px_tcp_close(tcp);
      PX_FAIL(err);
    }
    self->tcp = tcp;
  }
  PX_AWAIT(px_timeout_init(&self->to, px_tls_handshake_init(&self->hs, self->tls),
                           self->limit));
  note_handshake(self->rep, self->tls, self->to.base.error);
  if (self->to.base.error < 0) goto out;
  if (self->tunnel) {
    /* TLS inside the TLS stream just made (a tunnel through a proxy). */
    px_stream *outer;
    int err = px_tls_server_new(self->ctx, self->tls, &outer);
    if (err < 0) PX_FAIL(err);
    self->tls = outer;
    PX_AWAIT(px_tls_handshake_init(&self->hs, self->tls));
    note_handshake(self->rep, self->tls, self->hs.base.error);
    if (self->hs.base.error < 0) goto out;
  }
  if (self->raw_close) {
    /* The FIN without close_notify, then the client's bytes (its data, its
     * close_notify) read raw until its FIN: closing with any of them
     * unread would send a reset, and the client would read ECONNRESET
     * instead of the end of stream this case is about. Whether they had
     * arrived by then is timing (io_uring completes a receive as soon as
     * the first bytes come, a readiness recv takes what is there). */
    (void)px_tcp_shutdown(self->tcp);
    for (;;) {
      PX_AWAIT(px_tcp_read_init(&self->op, self->tcp, self->buf, sizeof self->buf));
      if (self->op.base.error < 0 || self->op.base.output.u64 == 0) break;
    }
    goto out;
  }
  for (;;) {
    self->n = sizeof self->buf;
    if (self->stop_after > 0 &&
        self->stop_after - self->rep->wrote_bytes < self->n)
      self->n = (size_t)(self->stop_after - self->rep->wrote_bytes);
    if (self->n == 0) break;
    PX_AWAIT(px_stream_read_init(&self->op, self->tls, self->buf, self->n));
    if (self->op.base.error < 0) {
      note_error(self->rep, self->tls, self->op.base.error);
      goto out;
    }
    self->n = (size_t)self->op.base.output.u64;
    if (self->n == 0) {
      self->rep->clean_eof = 1;
      break;
    }
    self->rep->read_bytes += self->n;
    PX_AWAIT(px_stream_write_all_init(&self->op, self->tls, self->buf, self->n));
    if (self->op.base.error < 0) {
      note_error(self->rep, self->tls, self->op.base.error);
      goto out;
    }
    self->rep->wrote_bytes += self->n;
  }
  PX_AWAIT(px_stream_shutdown_init(&self->op, self->tls));
  note_error(self->rep, self->tls, self->op.base.error);
  if (self->tunnel && self->op.base.error == 0) {
    /* The client's outer close_notify follows its inner one: read up to
     * it before closing, or the close finds it unread and the kernel
     * answers with a reset that can overtake the echo still in flight
     * (the client then reads ECONNRESET for data we had written). */
    do {
      PX_AWAIT(px_stream_read_init(&self->op, px_tls_inner(self->tls),
                                   self->buf, sizeof self->buf));
    } while (self->op.base.error == 0 && self->op.base.output.u64 > 0);
  }
out:
  px_stream_close(self->tls);
  self->tls = NULL;
  PX_END();
}

px_future *tls_echo_server_new(tls_echo_server *f, px_tcp_listener *l,
                               px_tls_context *ctx, px_duration limit,
                               tls_report *rep) {
  memset(f, 0, sizeof *f);
  *f = PX_ASYNC_NEW(tls_echo_server, .listener = l, .ctx = ctx,
                    .limit = limit, .rep = rep);
  return PX_FUTURE(f);
}

/* ---- Client halves: a writer and a reader on one stream ------------------ */

typedef struct tls_writer {
  px_async px;
  px_stream *tls;
  uint64_t total;
  tls_report *rep;
  size_t n;
  px_stream_io op;
  unsigned char buf[50000];
} tls_writer;

PX_ASYNC_FN(tls_writer) {
  PX_BEGIN();
  while (self->rep->wrote_bytes < self->total) {
    self->n = sizeof self->buf;
    if (self->total - self->rep->wrote_bytes < self->n)
      self->n = (size_t)(self->total - self->rep->wrote_bytes);
    for (size_t i = 0; i < self->n; i++)
      self->buf[i] = tls_pattern(self->rep->wrote_bytes + i);
    PX_AWAIT(px_stream_write_all_init(&self->op, self->tls, self->buf, self->n));
    if (self->op.base.error < 0) {
      note_error(self->rep, self->tls, self->op.base.error);
      PX_FAIL(self->op.base.error);
    }
    self->rep->wrote_bytes += self->n;
  }
  PX_AWAIT(px_stream_shutdown_init(&self->op, self->tls));
  note_error(self->rep, self->tls, self->op.base.error);
  PX_END();
}

/* Polls `inner` once: its result if that finished it, else drops it and
 * completes with PX_ECANCELED (a read cancelled wherever it stood). */
typedef struct poll_once {
  px_future base;
  px_future *inner;
} poll_once;

static px_poll poll_once_poll(px_future *self, px_context *cx) {
  poll_once *f = (poll_once *)self;
  int r = px_future_poll(f->inner, cx);
  if (r == PX_PENDING) {
    px_future_drop(f->inner);
    self->error = PX_ECANCELED;
    return PX_READY;
  }
  self->error = r < 0 ? r : f->inner->error;
  self->output = f->inner->output;
  px_future_drop(f->inner);
  return PX_READY;
}

static const px_future_vtable poll_once_vtable = {
    sizeof(poll_once), "poll_once", poll_once_poll, NULL};

static px_future *poll_once_init(poll_once *f, px_future *inner) {
  px_future_init(&f->base, &poll_once_vtable);
  f->inner = inner;
  return &f->base;
}

typedef struct tls_reader {
  px_async px;
  px_stream *tls;
  px_duration timeout;
  tls_report *rep;
  uint64_t *timeouts;
  px_stream_io op;
  poll_once once;
  int turn;
  unsigned char buf[30000];
} tls_reader;

PX_ASYNC_FN(tls_reader) {
  PX_BEGIN();
  self->rep->pattern_ok = 1;
  for (;;) {
    /* A read is dropped if its first poll leaves it pending; the read
     * after a dropped one waits, so the test does not spin. */
    if (self->timeout > 0 && !self->turn) {
      PX_AWAIT(poll_once_init(
          &self->once,
          px_stream_read_init(&self->op, self->tls, self->buf, sizeof self->buf)));
      if (self->once.base.error == PX_ECANCELED) {
        (*self->timeouts)++;
        self->turn = 1;
        continue;
      }
    } else {
      PX_AWAIT(
          px_stream_read_init(&self->op, self->tls, self->buf, sizeof self->buf));
      self->turn = 0;
    }
    if (self->op.base.error < 0) {
      note_error(self->rep, self->tls, self->op.base.error);
      PX_FAIL(self->op.base.error);
    }
    if (self->op.base.output.u64 == 0) {
      self->rep->clean_eof = 1;
      break;
    }
    for (uint64_t i = 0; i < self->op.base.output.u64; i++)
      if (self->buf[i] != tls_pattern(self->rep->read_bytes + i))
        self->rep->pattern_ok = 0;
    self->rep->read_bytes += self->op.base.output.u64;
  }
  PX_END();
}

/* ---- Client ---------------------------------------------------------------- */

static void client_cleanup(px_future *f) {
  tls_client *self = (tls_client *)f;
  px_async_drop(f);
  px_stream_close(self->tls);
  self->tls = NULL;
}

PX_ASYNC_FN_WITH_DROP(tls_client, client_cleanup) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_tcp_connect_init(&self->connect, "127.0.0.1", self->port));
  {
    px_tcp_stream *tcp = self->connect.base.output.ptr;
    int err = px_tls_client_new(self->ctx, tcp, self->name, &self->tls);
    if (err < 0) {
      px_tcp_close(tcp);
      PX_FAIL(err);
    }
  }
  PX_AWAIT(px_timeout_init(&self->to, px_tls_handshake_init(&self->hs, self->tls),
                           self->limit));
  note_handshake(self->rep, self->tls, self->to.base.error);
  if (self->to.base.error < 0) goto out;
  if (self->tunnel) {
    px_stream *outer;
    int err = px_tls_client_new(self->ctx, self->tls, self->name, &outer);
    if (err < 0) PX_FAIL(err);
    self->tls = outer;
    PX_AWAIT(px_tls_handshake_init(&self->hs, self->tls));
    note_handshake(self->rep, self->tls, self->hs.base.error);
    if (self->hs.base.error < 0) goto out;
  }
  {
    tls_writer *w = (tls_writer *)self->writer_frame;
    tls_reader *r = (tls_reader *)self->reader_frame;
    *w = PX_ASYNC_NEW(tls_writer, .tls = self->tls, .total = self->total,
                      .rep = self->rep);
    *r = PX_ASYNC_NEW(tls_reader, .tls = self->tls,
                      .timeout = self->read_timeout, .rep = self->rep,
                      .timeouts = &self->timeouts);
    self->both[0] = PX_FUTURE(w);
    self->both[1] = PX_FUTURE(r);
  }
  PX_AWAIT(px_join_init(&self->join, self->both, 2, NULL));
out:
  px_stream_close(self->tls);
  self->tls = NULL;
  PX_END();
}

px_future *tls_client_new(tls_client *f, uint16_t port, px_tls_context *ctx,
                          const char *name, px_duration limit, uint64_t total,
                          tls_report *rep) {
  memset(f, 0, sizeof *f);
  *f = PX_ASYNC_NEW(tls_client, .port = port, .ctx = ctx, .name = name,
                    .limit = limit, .total = total, .rep = rep);
  f->writer_frame = calloc(1, sizeof(tls_writer));
  f->reader_frame = calloc(1, sizeof(tls_reader));
  return PX_FUTURE(f);
}

void tls_client_free(tls_client *f) {
  free(f->writer_frame);
  free(f->reader_frame);
  f->writer_frame = f->reader_frame = NULL;
}

/* ---- Sipper ---------------------------------------------------------------- */

static void close_tls(void *s) { px_stream_close(s); }

PX_ASYNC_FN(tls_sipper) {
  self->polls++; /* before PX_BEGIN: counted on every poll */
  PX_BEGIN();
  if (self->n < 0 || (size_t)self->n > sizeof self->buf) PX_FAIL(PX_EINVAL);
  PX_TRY_AWAIT(px_tcp_connect_init(&self->connect, "127.0.0.1", self->port));
  {
    px_stream *tcp = self->connect.base.output.ptr;
    int err = px_tls_client_new(self->ctx, tcp, "localhost", &self->tls);
    if (err < 0) {
      px_stream_close(tcp);
      PX_FAIL(err);
    }
  }
  PX_DEFER(close_tls, self->tls);
  PX_TRY_AWAIT(px_tls_handshake_init(&self->hs, self->tls));
  for (int i = 0; i < self->n; i++) self->buf[i] = tls_pattern((uint64_t)i);
  PX_TRY_AWAIT(px_stream_write_all_init(&self->op, self->tls, self->buf,
                                        (size_t)self->n));
  while (self->got < self->n) {
    PX_TRY_AWAIT(px_stream_read_init(&self->op, self->tls, &self->one, 1));
    if (self->op.base.output.u64 == 0) break; /* early end: got tells */
    if (self->one != tls_pattern((uint64_t)self->got)) break;
    self->got++;
  }
  PX_TRY_AWAIT(px_stream_shutdown_init(&self->op, self->tls));
  PX_END();
}

px_future *tls_sipper_new(tls_sipper *f, uint16_t port, px_tls_context *ctx,
                          int n) {
  memset(f, 0, sizeof *f);
  *f = PX_ASYNC_NEW(tls_sipper, .port = port, .ctx = ctx, .n = n);
  return PX_FUTURE(f);
}
