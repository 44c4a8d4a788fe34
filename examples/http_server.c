/*
 * The HTTP/1.1 "Hello, World!" server that examples/http and examples/https
 * share (see http.c for what it does). It works on px_stream, so the same
 * connection code serves plain TCP and TLS: with a TLS context, each
 * accepted connection is wrapped and handshaken first.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/http_parse.h"
#include "examples/http_server.h"
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
  px_stream *stream; /* TCP, or TLS over it once the handshake is done */
  px_tls_context *tls; /* NULL: plain HTTP */
  size_t have;   /* bytes of `in` not yet consumed */
  size_t out_len;
  int closing;   /* the last answer ends the connection */
  int more;      /* requests remain parsed-but-unanswered: the output filled */
  int lingering; /* reads left while draining before close */
  px_tcp_io io;
  px_timeout limit;
  px_tls_handshake handshake;
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
  if (self->tls != NULL) {
    /* HTTPS: the same connection, over TLS. A client gets 10 seconds for
     * its handshake, so one that opens connections and stalls (slowloris)
     * does not keep them forever. */
    {
      px_stream *tls;
      if (px_tls_server_new(self->tls, self->stream, &tls) < 0) goto done;
      self->stream = tls;
    }
    PX_AWAIT(px_timeout_init(
        &self->limit, px_tls_handshake_init(&self->handshake, self->stream),
        px_secs(10)));
    if (self->limit.base.error < 0) goto done;
  }
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
    PX_AWAIT(px_stream_shutdown_init(&self->io, self->stream));
    for (self->lingering = 64; self->lingering > 0; self->lingering--) {
      PX_AWAIT(px_timeout_init(
          &self->limit,
          px_tcp_read_init(&self->io, self->stream, self->in, sizeof self->in),
          px_secs(1)));
      if (self->limit.base.error < 0 || self->limit.base.output.u64 == 0)
        break;
    }
  }
done:
  px_tcp_close(self->stream);
  self->stream = NULL;
  PX_END();
}

/* ---- The accept loop ------------------------------------------------ */

typedef struct http_server {
  px_async px;
  const char *name;
  px_tls_context *tls;
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
      fprintf(stderr, "%s: accept: %s\n", self->name,
              px_strerror(self->accept.base.error));
      PX_AWAIT(px_sleep_init(&self->pause, px_ms(50)));
      continue;
    }
    {
      /* px_spawn copies the frame into the task, so a C local is fine
       * here: it is not used across an await. */
      px_tcp_stream *s = self->accept.base.output.ptr;
      http_conn conn = PX_ASYNC_NEW(http_conn, .stream = s, .tls = self->tls);
      if (px_spawn(PX_FUTURE(&conn), NULL) < 0) px_tcp_close(s);
    }
  }
  PX_END();
}

/* ---- main: serve until SIGINT or SIGTERM ---------------------------- */

typedef struct http_main {
  px_async px;
  const char *name;
  px_signal *signals;
  http_server server;
  px_join_handle server_task;
  px_signal_recv recv;
} http_main;

PX_ASYNC_FN(http_main) {
  PX_BEGIN();
  PX_TRY(px_spawn(PX_FUTURE(&self->server), &self->server_task));
  PX_AWAIT(px_signal_recv_init(&self->recv, self->signals));
  fprintf(stderr, "%s: signal %d, shutting down\n", self->name,
          (int)self->recv.base.output.i64);
  /* Stop accepting; the connections are dropped when the runtime is freed
   * (their cleanup closes each socket). */
  px_join_handle_abort(&self->server_task);
  PX_AWAIT(&self->server_task.base);
  PX_END();
}

int http_serve(const char *name, px_tcp_listener *listener, const char *host,
               int port, px_tls_context *tls) {
  /* Before the runtime exists, so every thread it starts inherits the
   * blocked mask signalfd needs (pollux/signal.h). */
  px_signal *signals;
  int wanted[] = {SIGINT, SIGTERM};
  int err = px_signal_open(&signals, wanted, 2);
  if (err < 0) {
    fprintf(stderr, "%s: signals: %s\n", name, px_strerror(err));
    px_tcp_listener_close(listener);
    return 1;
  }
  printf("%s: listening on %s:%d\n", name, host, port);
  fflush(stdout);

  http_main m = PX_ASYNC_NEW(http_main, .name = name, .signals = signals);
  m.server = PX_ASYNC_NEW(http_server, .name = name, .tls = tls,
                          .listener = listener);
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
    fprintf(stderr, "%s: %s\n", name, px_strerror(err));
    return 1;
  }
  return 0;
}
