/*
 * echo - a TCP echo server, one task per connection (tokio's echo.rs).
 *
 *   bazel run //examples:echo -- 7000            (listens on 0.0.0.0:7000)
 *   bazel run //examples:echo -- 7000 127.0.0.1
 *   nc 127.0.0.1 7000
 *
 * A connection silent for IDLE is closed. SIGINT or SIGTERM stops
 * accepting, gives the connections GRACE to finish, and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "pollux.h"

#define IDLE px_secs(60)
#define GRACE px_secs(5)

static px_cancel_token *stop; /* cancelled by SIGINT/SIGTERM */

typedef struct {
  px_async px;
  px_stream *s;
  px_stream_io io;
  px_cancelled stopped;
  px_sleep idle;
  px_select sel;
  size_t n;
  int err;
  unsigned char buf[4096]; /* a frame field: it must survive the awaits */
} conn;

static void close_stream(void *s) { px_stream_close(s); }
static void drop_scope(void *scope) { px_scope_drop(scope); }

PX_ASYNC_FN(conn) {
  PX_BEGIN();
  PX_DEFER(close_stream, self->s); /* closed however the task ends */
  for (;;) {
    /* A read, unless the server stops or the client falls silent first. */
    PX_AWAIT_INTO(self->n, self->err,
                  px_select3_init(&self->sel,
                                  px_stream_read_init(&self->io, self->s, self->buf,
                                                      sizeof self->buf),
                                  px_cancelled_init(&self->stopped, stop),
                                  px_sleep_init(&self->idle, IDLE)));
    if (self->sel.index != 0 || self->err < 0 || self->n == 0) break;
    PX_AWAIT_ERR(self->err, px_stream_write_all_init(&self->io, self->s, self->buf, self->n));
    if (self->err < 0) break;
  }
  PX_END();
}

typedef struct {
  px_async px;
  px_tcp_listener *l;
  px_signal *sig;
  px_scope conns;
  px_tcp_accept acc;
  px_signal_recv srecv;
  px_select sel;
  px_sleep pause;
  px_scope_shutdown sd;
} server;

PX_ASYNC_FN(server) {
  PX_BEGIN();
  px_scope_init(&self->conns);
  PX_DEFER(drop_scope, &self->conns);
  for (;;) {
    PX_AWAIT(px_select2_init(&self->sel, px_tcp_accept_init(&self->acc, self->l),
                             px_signal_recv_init(&self->srecv, self->sig)));
    if (self->sel.index == 1) break; /* a signal: shut down */
    if (self->sel.base.error < 0) {  /* out of descriptors: pause, not spin */
      fprintf(stderr, "echo: accept: %s\n", px_strerror(self->sel.base.error));
      PX_AWAIT(px_sleep_init(&self->pause, px_ms(100)));
      continue;
    }
    conn c = PX_ASYNC_NEW(conn, .s = self->sel.base.output.ptr);
    if (px_scope_spawn_detached(&self->conns, PX_FUTURE(&c)) < 0) px_stream_close(c.s);
  }
  px_tcp_listener_close(self->l); /* new clients are refused from now on */
  self->l = NULL;
  px_cancel_token_cancel(stop);    /* connections end at their next read */
  PX_AWAIT(px_scope_shutdown_init(&self->sd, &self->conns, GRACE));
  PX_END();
}

static int usage(void) {
  fprintf(stderr, "usage: echo PORT [HOST]   (PORT 1..65535, HOST numeric, default 0.0.0.0)\n");
  return 2;
}

int main(int argc, char **argv) {
  char *end = NULL;
  long port = argc >= 2 ? strtol(argv[1], &end, 10) : 0;
  if (argc < 2 || argc > 3 || *end != '\0' || port < 1 || port > 65535) return usage();
  const char *host = argc == 3 ? argv[2] : "0.0.0.0";
  int sigs[] = {SIGINT, SIGTERM};
  server srv = PX_ASYNC_NEW(server);
  int err = px_signal_open(&srv.sig, sigs, 2); /* before the runtime's threads */
  if (err == 0) err = px_cancel_token_new(&stop);
  if (err == 0) err = px_tcp_bind(host, (uint16_t)port, &srv.l);
  if (err < 0) {
    fprintf(stderr, "echo: %s port %ld: %s\n", host, port, px_strerror(err));
    return err == PX_EINVAL ? usage() : 1;
  }
  printf("echo: listening on %s port %ld\n", host, port);
  fflush(stdout);
  err = px_run(PX_FUTURE(&srv));
  px_tcp_listener_close(srv.l); /* after the runtime: safe in any order */
  px_signal_close(srv.sig);
  px_cancel_token_drop(stop);
  return err < 0;
}
