/*
 * echo - a TCP echo server, one task per connection.
 *
 *   bazel run //examples:echo -- 7000            (listens on 0.0.0.0:7000)
 *   bazel run //examples:echo -- 7000 127.0.0.1
 *   nc 127.0.0.1 7000
 *
 * The accept loop and every connection are async functions (pollux/async.h):
 * each runs as its own task, so a slow client only holds up itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "pollux.h"

/* ---- One connection ------------------------------------------------- */

typedef struct echo_conn {
  px_async px;
  px_tcp_stream *stream;
  px_tcp_io read;
  px_tcp_io write;
  /* The buffer lives in the frame, not on the C stack, because it must
   * survive the awaits between reading and writing it back. */
  unsigned char buf[16384];
} echo_conn;

/* If the runtime drops the task mid-way (at shutdown), the socket must
 * still be closed: after the awaited future, as net.h requires. */
static void echo_conn_cleanup(px_future *f) {
  echo_conn *self = (echo_conn *)f;
  px_async_drop(f);
  px_tcp_close(self->stream);
  self->stream = NULL;
}

PX_ASYNC_FN_WITH_DROP(echo_conn, echo_conn_cleanup) {
  PX_BEGIN();
  for (;;) {
    PX_AWAIT(px_tcp_read_init(&self->read, self->stream, self->buf,
                              sizeof self->buf));
    /* 0 bytes is end of stream: the client is done sending. An error
     * (typically a reset) ends the conversation just the same. */
    if (self->read.base.error < 0 || self->read.base.output.u64 == 0) break;
    /* write_all, not write: the kernel may take fewer bytes than asked. */
    PX_AWAIT(px_tcp_write_all_init(&self->write, self->stream, self->buf,
                                   (size_t)self->read.base.output.u64));
    if (self->write.base.error < 0) break;
  }
  px_tcp_close(self->stream);
  self->stream = NULL;
  PX_END();
}

/* Hands a new connection to its own task. */
static void serve(px_tcp_stream *stream) {
  echo_conn conn = PX_ASYNC_NEW(echo_conn, .stream = stream);
  /* px_spawn copies the frame into the task, so a stack frame is fine.
   * Detached (no join handle): nobody waits for connections to end. */
  int err = px_spawn(PX_FUTURE(&conn), NULL);
  if (err < 0) {
    fprintf(stderr, "echo: spawn: %s\n", px_strerror(err));
    px_tcp_close(stream);
  }
}

/* ---- The accept loop ------------------------------------------------ */

typedef struct echo_server {
  px_async px;
  px_tcp_listener *listener;
  px_tcp_accept accept;
  px_sleep pause;
} echo_server;

/* The server owns the listener. Closing it here, in the frame's drop, means
 * it is closed while its runtime still exists: block_on drops the main
 * future before px_run frees the runtime, and a registered socket must leave
 * its reactor before the reactor goes away. */
static void echo_server_cleanup(px_future *f) {
  echo_server *self = (echo_server *)f;
  px_async_drop(f);
  px_tcp_listener_close(self->listener);
  self->listener = NULL;
}

PX_ASYNC_FN_WITH_DROP(echo_server, echo_server_cleanup) {
  PX_BEGIN();
  for (;;) {
    PX_AWAIT(px_tcp_accept_init(&self->accept, self->listener));
    if (self->accept.base.error == 0) {
      serve(self->accept.base.output.ptr);
      continue;
    }
    fprintf(stderr, "echo: accept: %s\n", px_strerror(self->accept.base.error));
    /* The usual cause is running out of descriptors (EMFILE). The waiting
     * connection keeps the listener readable, so retrying at once would
     * spin; a short pause gives open connections time to finish. */
    PX_AWAIT(px_sleep_init(&self->pause, px_ms(100)));
  }
  PX_END();
}

/* ---- main ----------------------------------------------------------- */

static int usage(void) {
  fprintf(stderr,
          "usage: echo PORT [HOST]\n"
          "  PORT  1..65535\n"
          "  HOST  numeric IPv4 or IPv6 address (default 0.0.0.0)\n");
  return 2;
}

/* Accepts only a whole decimal number in 1..65535 ("80x" or "0" are not). */
static int parse_port(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535) return -1;
  return (int)v;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) return usage();
  int port = parse_port(argv[1]);
  if (port < 0) return usage();
  const char *host = argc == 3 ? argv[2] : "0.0.0.0";

  /* Binding is synchronous and needs no runtime; the listener joins the
   * runtime's reactor on the first accept. */
  px_tcp_listener *listener;
  int err = px_tcp_bind(host, (uint16_t)port, &listener);
  if (err < 0) {
    fprintf(stderr, "echo: cannot listen on %s port %d: %s\n", host, port,
            px_strerror(err));
    return err == PX_EINVAL ? usage() : 1;
  }
  printf("echo: listening on %s port %d\n", host, port);
  fflush(stdout);

  echo_server server = PX_ASYNC_NEW(echo_server, .listener = listener);
  /* Only returns if the runtime fails; the listener is closed by then. */
  err = px_run(PX_FUTURE(&server));
  fprintf(stderr, "echo: %s\n", px_strerror(err));
  return 1;
}
