/*
 * http_min, echo_min: pollux's side of the server benchmarks, doing exactly
 * the work of the peers (bench/raw_epoll_http.c, bench/peers/libuv, and
 * tokio-peer http_min and echo): no parser, no deadlines, no connection cap.
 * examples/http and examples/echo do more per request (a real HTTP parser,
 * Host validation, header and idle deadlines, a stop token raced against
 * every read); the report measures them too, as http_example and
 * echo_example, so both what the runtime costs and what a full server costs
 * are on record.
 *
 *   bazel run -c opt //bench:http_min -- PORT [HOST]
 *   bazel run -c opt //bench:echo_min -- PORT [HOST]
 *
 * Built from this one file: SERVE_HTTP=1 is http_min (count the requests in
 * what was read, "\r\n\r\n" each, and answer them in one write), 0 is
 * echo_min (write back what was read). SIGINT or SIGTERM stops the server.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/common.h"
#include "bench/http_parse.h"
#include "pollux.h"

/* The peers' buffer sizes: 4 KiB reads for HTTP, 16 KiB for echo. */
#if SERVE_HTTP
#define IN_BYTES 4096
#define MAX_BATCH 64 /* answers built per write, as raw_epoll_http */
#else
#define IN_BYTES 16384
#endif

typedef struct {
  px_async px;
  px_stream *s; /* closed by px_serve when the task ends */
  px_stream_io io;
  size_t n;
  int err;
#if SERVE_HTTP
  int state; /* bench_http_feed's */
  size_t out_len;
  char out[MAX_BATCH * BENCH_HTTP_RESPONSE_LEN];
#endif
  char in[IN_BYTES];
} conn;

PX_ASYNC_FN(conn) {
  PX_BEGIN();
  for (;;) {
    PX_AWAIT_INTO(self->n, self->err, px_stream_read_init(&self->io, self->s, self->in,
                                                          sizeof self->in));
    if (self->err < 0 || self->n == 0) break;
#if SERVE_HTTP
    {
      size_t requests = bench_http_feed(&self->state, self->in, self->n);
      if (requests > MAX_BATCH) requests = MAX_BATCH; /* 4 KiB holds fewer */
      self->out_len = requests * BENCH_HTTP_RESPONSE_LEN;
      for (size_t i = 0; i < requests; i++)
        memcpy(self->out + i * BENCH_HTTP_RESPONSE_LEN, bench_http_response,
               BENCH_HTTP_RESPONSE_LEN);
    }
    if (self->out_len == 0) continue;
    PX_AWAIT_ERR(self->err,
                 px_stream_write_all_init(&self->io, self->s, self->out, self->out_len));
#else
    PX_AWAIT_ERR(self->err, px_stream_write_all_init(&self->io, self->s, self->in, self->n));
#endif
    if (self->err < 0) break;
  }
  PX_END();
}

static int start(px_serve_conn *c) {
  conn f = PX_ASYNC_NEW(conn, .s = c->stream);
  return px_serve_spawn(c, PX_FUTURE(&f));
}

int main(int argc, char **argv) {
  long port = argc >= 2 ? strtol(argv[1], NULL, 10) : 0;
  if (port <= 0 || port > 65535 || argc > 3) {
    fprintf(stderr, "usage: %s PORT [HOST]\n", argv[0]);
    return 2;
  }
  const char *host = argc == 3 ? argv[2] : "0.0.0.0";
  px_serve_opts o = {.conn = start, .grace = px_secs(1)};
  int sigs[] = {SIGINT, SIGTERM};
  px_tcp_listener *l = NULL;
  int err = px_signal_open(&o.signals, sigs, 2); /* before the runtime's threads */
  if (err == 0) err = px_tcp_bind(host, (uint16_t)port, &l);
  if (err < 0) {
    fprintf(stderr, "%s: %s\n", argv[0], px_strerror(err));
    px_signal_close(o.signals);
    return 1;
  }
  /* As the scheduler benchmarks: 2 workers for the multi-threaded executor
   * unless PX_BENCH_WORKERS says otherwise (tools/bench_scaling varies it),
   * so that the worker count is chosen, not whatever the machine has. */
  px_runtime *rt = bench_runtime_new(argv[0]);
  px_serve srv;
  err = px_runtime_block_on(rt, px_serve_init(&srv, l, &o));
  px_runtime_free(rt);
  px_signal_close(o.signals);
  return err < 0 ? 1 : 0;
}
