/*
 * http - an HTTP/1.1 "Hello, World!" server (the TechEmpower plaintext test).
 *
 *   bazel run //examples:http -- 8080              (0.0.0.0:8080)
 *   bazel run //examples:http -- 8080 127.0.0.1
 *   curl http://127.0.0.1:8080/
 *
 * One task per connection. Each turn of a connection is one read and one
 * write: every complete request in what was read is parsed (clients may
 * pipeline many), the answers are appended to one output buffer in order,
 * and the buffer goes out in a single write. Connections stay open
 * (keep-alive) unless the client asks otherwise. A head over 8 KiB gets
 * 431, a malformed request 400, and the connection is then closed.
 *
 * SIGINT or SIGTERM stops the server gracefully: the accept loop ends, the
 * open connections are dropped, and the process exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/http_parse.h"
#include "pollux.h"

#define MAX_HEAD 8192
#define MAX_BODY 8192
/* Room for one maximal request (head + body), so one always fits. */
#define IN_SIZE (MAX_HEAD + MAX_BODY)
#define OUT_SIZE 65536

/* Every answer is these two halves, with a Connection header between them
 * when the connection's fate is not HTTP/1.1's default. */
static const char k_head[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n";
static const char k_tail[] = "\r\nHello, World!";

/* The longest answer we append: a 200 with a Connection header. */
#define MAX_ANSWER 160

/* ---- One connection ------------------------------------------------- */

typedef struct http_conn {
  px_async px;
  px_tcp_stream *stream;
  size_t have;   /* bytes of `in` not yet consumed */
  size_t out_len;
  int closing;   /* the last answer ends the connection */
  int more;      /* requests remain parsed-but-unanswered: the output filled */
  int lingering; /* reads left while draining before close */
  px_tcp_io io;
  px_timeout limit;
  char in[IN_SIZE];
  char out[OUT_SIZE];
} http_conn;

static void append(http_conn *c, const char *s, size_t n) {
  memcpy(c->out + c->out_len, s, n);
  c->out_len += n;
}

/* Appends the answer to one request (or to a parse error). */
static void answer(http_conn *c, long parsed, const http_request *req) {
  if (parsed < 0) {
    const char *status = parsed == HTTP_TOO_LARGE
                             ? "431 Request Header Fields Too Large"
                             : parsed == HTTP_BODY_TOO_LARGE
                                   ? "413 Content Too Large"
                                   : parsed == HTTP_UNSUPPORTED
                                         ? "501 Not Implemented"
                                         : "400 Bad Request";
    char line[MAX_ANSWER];
    int n = snprintf(line, sizeof line,
                     "HTTP/1.1 %s\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n",
                     status);
    append(c, line, (size_t)n);
    c->closing = 1;
    return;
  }
  /* Every request gets the same answer, whatever its method and target:
   * this is a benchmark server, not a web framework. */
  append(c, k_head, sizeof k_head - 1);
  if (!req->keep_alive) {
    append(c, "Connection: close\r\n", 19);
    c->closing = 1;
  } else if (req->minor == 0) {
    append(c, "Connection: keep-alive\r\n", 24);
  }
  append(c, k_tail, sizeof k_tail - 1);
}

/*
 * Answers every complete request at the front of `in` and moves what is
 * left (a partial request) to the front. Sets `more` when it stopped only
 * because the output buffer is full.
 */
static void process(http_conn *c) {
  size_t used = 0;
  c->more = 0;
  while (!c->closing) {
    if (c->out_len + MAX_ANSWER > OUT_SIZE) {
      c->more = 1;
      break;
    }
    http_request req;
    long n = http_parse_request(c->in + used, c->have - used, MAX_HEAD,
                                MAX_BODY, &req);
    if (n == HTTP_INCOMPLETE) break;
    answer(c, n, &req);
    if (n > 0) used += (size_t)n;
  }
  memmove(c->in, c->in + used, c->have - used);
  c->have -= used;
}

/* The runtime drops connection tasks at shutdown: close the socket then. */
static void http_conn_cleanup(px_future *f) {
  http_conn *self = (http_conn *)f;
  px_async_drop(f);
  px_tcp_close(self->stream);
  self->stream = NULL;
}

PX_ASYNC_FN_WITH_DROP(http_conn, http_conn_cleanup) {
  PX_BEGIN();
  while (!self->closing) {
    PX_AWAIT(px_tcp_read_init(&self->io, self->stream, self->in + self->have,
                              sizeof self->in - self->have));
    if (self->io.base.error < 0 || self->io.base.output.u64 == 0) break;
    self->have += (size_t)self->io.base.output.u64;
    do {
      self->out_len = 0;
      process(self);
      if (self->out_len > 0)
        PX_AWAIT(px_tcp_write_all_init(&self->io, self->stream, self->out,
                                       self->out_len));
      if (self->io.base.error < 0) self->closing = self->more = 0;
    } while (self->more);
    if (self->io.base.error < 0) break;
  }
  if (self->closing && self->io.base.error == 0) {
    /*
     * A lingering close. The client may still be sending (the rest of an
     * oversized request); closing with unread bytes makes the kernel send
     * a reset, which can destroy our error answer before the client reads
     * it. So: end our side, then read and discard until the client closes
     * (or stays silent for a second, or has sent 64 more buffers).
     */
    (void)px_tcp_shutdown(self->stream);
    for (self->lingering = 64; self->lingering > 0; self->lingering--) {
      PX_AWAIT(px_timeout_init(
          &self->limit,
          px_tcp_read_init(&self->io, self->stream, self->in, sizeof self->in),
          px_secs(1)));
      if (self->limit.base.error < 0 || self->limit.base.output.u64 == 0)
        break;
    }
  }
  px_tcp_close(self->stream);
  self->stream = NULL;
  PX_END();
}

/* ---- The accept loop ------------------------------------------------ */

typedef struct http_server {
  px_async px;
  px_tcp_listener *listener;
  px_tcp_accept accept;
  px_sleep pause;
} http_server;

PX_ASYNC_FN(http_server) {
  PX_BEGIN();
  for (;;) {
    PX_AWAIT(px_tcp_accept_init(&self->accept, self->listener));
    if (self->accept.base.error < 0) {
      /* Out of descriptors is handled inside accept; what gets here is
       * rarer (out of memory): pause instead of spinning on it. */
      fprintf(stderr, "http: accept: %s\n",
              px_strerror(self->accept.base.error));
      PX_AWAIT(px_sleep_init(&self->pause, px_ms(50)));
      continue;
    }
    {
      /* px_spawn copies the frame into the task, so a C local is fine
       * here: it is not used across an await. */
      px_tcp_stream *s = self->accept.base.output.ptr;
      http_conn conn = PX_ASYNC_NEW(http_conn, .stream = s);
      if (px_spawn(PX_FUTURE(&conn), NULL) < 0) px_tcp_close(s);
    }
  }
  PX_END();
}

/* ---- main: serve until SIGINT or SIGTERM ---------------------------- */

typedef struct http_main {
  px_async px;
  px_signal *signals;
  http_server server;
  px_join_handle server_task;
  px_signal_recv recv;
} http_main;

PX_ASYNC_FN(http_main) {
  PX_BEGIN();
  PX_TRY(px_spawn(PX_FUTURE(&self->server), &self->server_task));
  PX_AWAIT(px_signal_recv_init(&self->recv, self->signals));
  fprintf(stderr, "http: signal %d, shutting down\n",
          (int)self->recv.base.output.i64);
  /* Stop accepting; the connections are dropped when the runtime is freed
   * (their cleanup closes each socket). */
  px_join_handle_abort(&self->server_task);
  PX_AWAIT(&self->server_task.base);
  PX_END();
}

static int usage(const char *why) {
  fprintf(stderr,
          "http: %s\n"
          "usage: http PORT [HOST]   (PORT 1..65535, HOST numeric, default "
          "0.0.0.0)\n",
          why);
  return 2;
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) return usage("wrong number of arguments");
  char *end = NULL;
  long port = strtol(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || port < 1 || port > 65535)
    return usage("PORT must be a number from 1 to 65535");
  const char *host = argc == 3 ? argv[2] : "0.0.0.0";

  px_tcp_listener *listener;
  int err = px_tcp_bind(host, (uint16_t)port, &listener);
  if (err == PX_EINVAL) return usage("HOST must be a numeric address");
  if (err < 0) {
    fprintf(stderr, "http: listen on %s:%ld: %s\n", host, port,
            px_strerror(err));
    return 1;
  }
  /* Before the runtime exists, so every thread it starts inherits the
   * blocked mask signalfd needs (pollux/signal.h). */
  px_signal *signals;
  int wanted[] = {SIGINT, SIGTERM};
  err = px_signal_open(&signals, wanted, 2);
  if (err < 0) {
    fprintf(stderr, "http: signals: %s\n", px_strerror(err));
    px_tcp_listener_close(listener);
    return 1;
  }
  printf("http: listening on %s:%ld\n", host, port);
  fflush(stdout);

  http_main m = PX_ASYNC_NEW(http_main, .signals = signals);
  m.server = PX_ASYNC_NEW(http_server, .listener = listener);
  px_config cfg;
  px_config_init(&cfg);
  px_runtime *rt;
  err = px_runtime_new(&rt, &cfg);
  if (err == 0) {
    err = px_runtime_block_on(rt, PX_FUTURE(&m));
    /* A registered descriptor must leave its reactor while the reactor
     * exists, so the listener and the signal stream are closed before the
     * runtime is freed (nothing uses them: the server task has ended). */
    px_tcp_listener_close(listener);
    px_signal_close(signals);
    /* Drops the remaining connection tasks; each closes its socket. */
    px_runtime_free(rt);
  } else {
    px_tcp_listener_close(listener);
    px_signal_close(signals);
  }
  if (err < 0) {
    fprintf(stderr, "http: %s\n", px_strerror(err));
    return 1;
  }
  return 0;
}
