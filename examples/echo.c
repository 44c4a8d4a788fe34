/*
 * echo - a TCP echo server, one task per connection (tokio's echo.rs).
 *
 *   bazel run //examples:echo -- 7000            (listens on 0.0.0.0:7000)
 *   bazel run //examples:echo -- -t 10 -c 100 7000 127.0.0.1
 *   nc 127.0.0.1 7000
 *
 * px_serve runs the accept loop: at most MAX_CONNECTIONS at once (-c,
 * default 10000; the next clients wait in the kernel's backlog), a pause
 * after accept errors, a connection silent for IDLE_SECONDS (-t, default
 * 60) closed, and on SIGINT or SIGTERM it stops accepting, gives the
 * connections 5 s to finish, and the program exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "pollux.h"

typedef struct {
  px_async px;
  px_serve_conn c; /* c.stream: closed by px_serve when the task ends */
  px_stream_io io;
  px_cancelled stopped;
  px_select sel;
  size_t n;
  int err;
  unsigned char buf[4096]; /* a frame field: it must survive the awaits */
} conn;

PX_ASYNC_FN(conn) {
  PX_BEGIN();
  do {
    /* A read, unless the server stops first (c.stop); a client silent for
     * the idle timeout fails it with PX_ETIMEDOUT. */
    PX_AWAIT_INTO(self->n, self->err,
                  px_select2_init(&self->sel,
                                  px_stream_read_init(&self->io, self->c.stream, self->buf,
                                                      sizeof self->buf),
                                  px_cancelled_init(&self->stopped, self->c.stop)));
    if (self->sel.index != 0 || self->err < 0 || self->n == 0) break;
    PX_AWAIT_ERR(self->err,
                 px_stream_write_all_init(&self->io, self->c.stream, self->buf, self->n));
  } while (self->err == 0);
  PX_END();
}

static int start(px_serve_conn *c) {
  conn f = PX_ASYNC_NEW(conn, .c = *c);
  return px_serve_spawn(c, PX_FUTURE(&f));
}

/* A whole number in 1..max, or 0. */
static long number(const char *s, long max) {
  long n;
  char rest;
  return sscanf(s, "%ld%c", &n, &rest) == 1 && n >= 1 && n <= max ? n : 0;
}

static int usage(void) {
  fprintf(stderr, "usage: echo [-t IDLE_SECONDS] [-c MAX_CONNECTIONS] PORT [HOST]\n");
  return 2;
}

int main(int argc, char **argv) {
  long idle = 60, cap = 10000;
  for (int opt; (opt = getopt(argc, argv, "t:c:")) != -1;) {
    long *v = opt == 't' ? &idle : &cap;
    if (opt == '?' || (*v = number(optarg, 1000000)) == 0) return usage();
  }
  long port = argc - optind >= 1 ? number(argv[optind], 65535) : 0;
  if (port == 0 || argc - optind > 2) return usage();
  const char *host = argc - optind == 2 ? argv[optind + 1] : "0.0.0.0";
  px_serve_opts o = {.conn = start, .max_connections = (size_t)cap,
                     .idle_timeout = px_secs((uint64_t)idle), .grace = px_secs(5)};
  int sigs[] = {SIGINT, SIGTERM};
  px_tcp_listener *l = NULL;
  int err = px_signal_open(&o.signals, sigs, 2); /* before the runtime's threads */
  if (err == 0) err = px_tcp_bind(host, (uint16_t)port, &l);
  fprintf(stderr, "echo: %s port %ld: %s\n", host, port, err < 0 ? px_strerror(err) : "listening");
  if (err < 0) return 1; /* e.g. a HOST that is not a numeric address */
  px_serve srv;
  err = px_run(px_serve_init(&srv, l, &o)); /* the listener is the server's */
  px_signal_close(o.signals);
  return err < 0;
}
