/*
 * The HTTP/1.1 "Hello, World!" server that examples/http and examples/https
 * share (http.c says what it does). It works on px_stream, so the same
 * connection code serves plain TCP and TLS.
 *
 * A connection always waits for one thing, and each wait has a deadline:
 * IDLE between requests, HEAD while a request head arrives, BODY while its
 * body does. One px_deadline_stream per connection enforces it: before
 * each read its read timeout is set to what is left of the current
 * deadline (a store, no timer operation), so a client sending a byte now
 * and then cannot stretch a head past its limit (slowloris), and a timer
 * is armed only while a read really waits.
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
#define IN_SMALL 2048                /* a connection's buffers at first: */
#define OUT_SMALL 2048               /* everyday requests fit */
#define IN_BIG (MAX_HEAD + MAX_BODY) /* room for one maximal request */
#define OUT_BIG 65536                /* a batch of pipelined answers */
#define MAX_ANSWER 160               /* the longest answer we append */
#define LINGER px_secs(2)            /* see the lingering close below */
#define DRAIN px_secs(10)            /* for requests in flight at shutdown */

/* Every answer is these two halves, with a Connection header between them
 * when the connection's fate is not HTTP/1.1's default. */
static const char k_head[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n";
static const char k_tail[] = "\r\nHello, World!";

static http_options opt;    /* the command line */
static px_tls_context *tls; /* NULL: plain HTTP */

/* ---- One connection ------------------------------------------------- */

enum { IDLE, HEAD, BODY }; /* what a connection waits for */

typedef struct conn {
  px_async px;
  px_stream *s; /* TCP under a deadline stream, under TLS for https */
  px_deadline_stream *dl;
  px_cancel_token *stop; /* the server's: cancelled at SIGINT/SIGTERM */
  char *in, *out; /* allocated when first needed, shrunk when idle */
  size_t in_cap, out_cap, have, out_len, head_len, n;
  int err, phase, answered, closing, more;
  px_instant deadline; /* when the current wait ends; 0: never */
  px_select sel;
  px_stream_io io;
  px_cancelled stopped;
  px_tls_handshake hs;
} conn;

/* Gives *buf `want` bytes, keeping what it holds; -1 when out of memory. */
static int resize(char **buf, size_t *cap, size_t want) {
  char *p = *cap == want ? *buf : realloc(*buf, want);
  if (p == NULL) return -1;
  *buf = p;
  *cap = want;
  return 0;
}

/* A read timeout that ends at `at` (0: none; past: at once). */
static px_duration left(px_instant at) {
  px_instant now = px_now();
  return at == 0 ? 0 : at > now ? at - now : 1;
}

/* Room in `out` for one more answer: the first answer allocates it, a
 * pipelined batch grows it once; 0 when full or out of memory. */
static int out_room(conn *c) {
  if (c->out_len + MAX_ANSWER <= c->out_cap) return 1;
  return c->out_cap < OUT_BIG &&
         resize(&c->out, &c->out_cap, c->out_cap ? OUT_BIG : OUT_SMALL) == 0;
}

static void append(conn *c, const char *s, size_t n) {
  memcpy(c->out + c->out_len, s, n);
  c->out_len += n;
}

/* An error answer; the connection ends after it. */
static void reject(conn *c, const char *status) {
  char line[MAX_ANSWER];
  int n = snprintf(line, sizeof line,
                   "HTTP/1.1 %s\r\nContent-Length: 0\r\n"
                   "Connection: close\r\n\r\n", status);
  append(c, line, (size_t)n);
  c->closing = 1;
}

/*
 * Answers every complete request at the front of `in` and moves what is
 * left (a partial request) to the front. Sets `more` when it stopped only
 * because the output is full. Once the server stops, the next answer is
 * the connection's last.
 */
static void process(conn *c) {
  int stopping = px_cancel_token_is_cancelled(c->stop);
  size_t used = 0;
  c->more = 0;
  while (!c->closing) {
    if (!out_room(c)) { /* full: send it; out of memory: give up */
      c->more = c->out_len > 0;
      c->closing = !c->more;
      break;
    }
    http_request req;
    long n = http_parse_request(c->in + used, c->have - used, MAX_HEAD,
                                MAX_BODY, &req);
    if (n == HTTP_INCOMPLETE) {
      c->head_len = req.head_len;
      break;
    }
    c->answered = 1;
    if (n < 0) {
      reject(c, n == HTTP_TOO_LARGE        ? "431 Request Header Fields Too Large"
                : n == HTTP_BODY_TOO_LARGE ? "413 Content Too Large"
                : n == HTTP_UNSUPPORTED    ? "501 Not Implemented"
                                           : "400 Bad Request");
      break;
    }
    used += (size_t)n;
    /* Every request gets the same answer, whatever its method and target:
     * this is a benchmark server, not a web framework. */
    append(c, k_head, sizeof k_head - 1);
    if (!req.keep_alive || stopping) {
      append(c, "Connection: close\r\n", 19);
      c->closing = 1;
    } else if (req.minor == 0) {
      append(c, "Connection: keep-alive\r\n", 24);
    }
    append(c, k_tail, sizeof k_tail - 1);
  }
  memmove(c->in, c->in + used, c->have - used);
  c->have -= used;
}

/* Before each read: the phase, its deadline (a new wait starts a new
 * clock), the read timeout ending there, and buffers to match. */
static int arm(conn *c) {
  int phase = c->have == 0 ? IDLE : c->head_len > 0 ? BODY : HEAD;
  if (phase != c->phase || c->answered) {
    px_duration limit = phase == IDLE ? opt.idle : opt.request;
    c->deadline = limit ? px_now() + limit : 0;
    c->phase = phase;
    c->answered = 0;
  }
  px_deadline_stream_set_read_timeout(c->dl, left(c->deadline));
  if (phase == IDLE && c->out_cap > OUT_SMALL) /* a burst is over */
    resize(&c->out, &c->out_cap, OUT_SMALL);
  return resize(&c->in, &c->in_cap, phase == IDLE ? IN_SMALL
                                    : c->have == c->in_cap ? IN_BIG
                                                           : c->in_cap);
}

static void conn_free(void *arg) {
  conn *c = arg;
  free(c->in);
  free(c->out);
}

PX_ASYNC_FN(conn) {
  PX_BEGIN();
  PX_DEFER(conn_free, self); /* however the connection ends */
  px_deadline_stream_set_write_timeout(self->dl, opt.idle);
  self->deadline = opt.request ? px_now() + opt.request : 0;
  if (tls != NULL) { /* the handshake counts against the first deadline */
    px_deadline_stream_set_read_timeout(self->dl, left(self->deadline));
    PX_TRY_AWAIT(px_tls_handshake_init(&self->hs, self->s));
  }
  while (!self->closing) {
    if (arm(self) < 0) break;
    /* Between requests the server's stop ends the wait too; biased, so a
     * request that already arrived is served first. */
    PX_AWAIT_INTO(self->n, self->err, px_select_biased(px_select2_init(&self->sel,
        px_stream_read_init(&self->io, self->s, self->in + self->have,
                            self->in_cap - self->have),
        self->phase == IDLE ? px_cancelled_init(&self->stopped, self->stop) : NULL)));
    if (self->sel.index == 1) break;
    if (self->err == 0 && self->n > 0)
      self->have += self->n;
    else if (self->err != PX_ETIMEDOUT || self->phase != BODY || !out_room(self))
      break; /* closed, failed, idle or a head too slow (silently, as nginx) */
    else
      reject(self, "408 Request Timeout"); /* a body too slow */
    do {
      process(self);
      if (self->out_len > 0)
        PX_AWAIT_ERR(self->err, px_stream_write_all_init(&self->io, self->s,
                                                         self->out, self->out_len));
      self->out_len = 0;
    } while (self->more && self->err == 0);
    if (self->err < 0) break;
  }
  if (self->closing && self->err == 0) {
    /*
     * A lingering close. The client may still be sending (the rest of an
     * oversized request, requests pipelined after the last); closing with
     * unread bytes makes the kernel send a reset, which can destroy our
     * last answer before the client reads it. So: end our side, then read
     * and discard until the client closes, for up to LINGER.
     */
    PX_AWAIT(px_stream_shutdown_init(&self->io, self->s));
    self->deadline = px_now() + LINGER;
    do {
      px_deadline_stream_set_read_timeout(self->dl, left(self->deadline));
      PX_AWAIT_INTO(self->n, self->err,
                    px_stream_read_init(&self->io, self->s, self->in, self->in_cap));
    } while (self->err == 0 && self->n > 0);
  }
  PX_END();
}

/*
 * px_serve runs the accept loop: a permit of the cap per connection (at the
 * cap, new clients wait in the listen backlog), a pause after accept
 * errors, and on SIGINT/SIGTERM the graceful stop. It closes c->stream when
 * the connection ends, so the wrappers made here go with the socket.
 */
static int start(px_serve_conn *c) {
  px_deadline_stream *dl;
  px_stream *t;
  int err = px_deadline_stream_new(c->stream, &dl);
  if (err < 0) return err;
  c->stream = px_deadline_stream_stream(dl);
  if (tls != NULL) { /* TLS over the deadline stream */
    if ((err = px_tls_server_new(tls, c->stream, &t)) < 0) return err;
    c->stream = t;
  }
  conn f = PX_ASYNC_NEW(conn, .s = c->stream, .dl = dl, .stop = c->stop);
  return px_serve_spawn(c, PX_FUTURE(&f));
}

/* ---- Command line and main ------------------------------------------- */

static int number(const char *s, long long max, long long *out) {
  char *end;
  *out = strtoll(s, &end, 10);
  return end != s && *end == '\0' && *out >= 0 && *out <= max;
}

int http_args(int argc, char **argv, int min_args, int max_args,
              http_options *o) {
  long long v;
  int a = 1;
  *o = (http_options){0, px_secs(60), 0, 10000};
  for (; a + 1 < argc && argv[a][0] == '-'; a += 2) {
    if (strcmp(argv[a], "-t") == 0 && number(argv[a + 1], 86400 * 365, &v))
      o->idle = px_secs((uint64_t)v);
    else if (strcmp(argv[a], "-c") == 0 && number(argv[a + 1], 1000000, &v) && v > 0)
      o->max_conns = (size_t)v;
    else
      return -1;
  }
  if (argc - a < min_args || argc - a > max_args ||
      !number(argv[a], 65535, &v) || v == 0)
    return -1;
  o->port = (uint16_t)v;
  o->request = o->idle < px_secs(10) ? o->idle : px_secs(10);
  return a;
}

int http_serve(const char *name, const char *host, px_tls_context *ctx,
               const http_options *o) {
  opt = *o;
  tls = ctx;
  static const int sigs[] = {SIGINT, SIGTERM};
  px_signal *signals = NULL;
  px_tcp_listener *l = NULL;
  int err = px_signal_open(&signals, sigs, 2); /* before any thread */
  if (err == 0) err = px_tcp_bind(host, o->port, &l);
  if (err == 0) {
    printf("%s: listening on %s:%d\n", name, host, o->port);
    fflush(stdout);
    px_serve_opts so = {.conn = start, .max_connections = o->max_conns,
                        .signals = signals, .grace = DRAIN};
    px_serve srv; /* it owns the listener from here on */
    err = px_run(px_serve_init(&srv, l, &so));
  }
  if (err < 0)
    fprintf(stderr, "%s: %s port %d: %s\n", name, host, o->port, px_strerror(err));
  px_signal_close(signals);
  return err == PX_EINVAL ? 2 : err < 0;
}
