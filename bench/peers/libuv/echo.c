/*
 * TCP echo server on libuv, the peer of examples/echo.c.
 *
 *   echo_uv PORT
 */
#include <string.h>

#include "bench/peers/libuv/common.h"

typedef struct conn {
  uv_tcp_t tcp;
  char in[16384];
} conn;

typedef struct reply {
  uv_write_t req;
  char data[];
} reply;

static void on_close(uv_handle_t *h) { free(h); }

static void on_written(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  conn *c = (conn *)h;
  *buf = uv_buf_init(c->in, sizeof c->in);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n < 0) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (n == 0) return;
  /* The read buffer is reused at once, so the reply gets its own copy
   * (libuv's own echo server does the same). */
  reply *r = malloc(sizeof *r + (size_t)n);
  memcpy(r->data, buf->base, (size_t)n);
  uv_buf_t out = uv_buf_init(r->data, (unsigned)n);
  if (uv_write(&r->req, s, &out, 1, on_written) < 0) free(r);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn *c = calloc(1, sizeof *c);
  uv_tcp_init(server->loop, &c->tcp);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    uv_close((uv_handle_t *)&c->tcp, on_close);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv) {
  int port = argc == 2 ? atoi(argv[1]) : 0;
  if (port < 1 || port > 65535) {
    fprintf(stderr, "usage: echo_uv PORT\n");
    return 2;
  }
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_tcp_init(loop, &server);
  uv_ip4_addr("0.0.0.0", port, &addr);
  if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) < 0 ||
      uv_listen((uv_stream_t *)&server, 1024, on_connection) < 0) {
    fprintf(stderr, "echo_uv: cannot listen on port %d\n", port);
    return 1;
  }
  printf("echo_uv: listening on port %d\n", port);
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
