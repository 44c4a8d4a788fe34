/*
 * HTTP plaintext server on libuv: the same fixed answer and request
 * counting as bench/raw_epoll_http.c and the tokio peer.
 *
 *   http_uv PORT
 */
#include <string.h>

#include "bench/http_parse.h"
#include "bench/peers/libuv/common.h"

typedef struct conn {
  uv_tcp_t tcp;
  int parse_state;
  char in[4096];
} conn;

typedef struct reply {
  uv_write_t req;
  char *data;
} reply;

static void on_close(uv_handle_t *h) { free(h); }

static void on_written(uv_write_t *req, int status) {
  reply *r = (reply *)req;
  (void)status;
  free(r->data);
  free(r);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  conn *c = (conn *)h;
  *buf = uv_buf_init(c->in, sizeof c->in);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *c = (conn *)s;
  if (n < 0) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  size_t reqs = bench_http_feed(&c->parse_state, buf->base, (size_t)n);
  if (reqs == 0) return;
  reply *r = malloc(sizeof *r);
  r->data = malloc(reqs * BENCH_HTTP_RESPONSE_LEN);
  for (size_t i = 0; i < reqs; i++)
    memcpy(r->data + i * BENCH_HTTP_RESPONSE_LEN, bench_http_response,
           BENCH_HTTP_RESPONSE_LEN);
  uv_buf_t out = uv_buf_init(r->data, (unsigned)(reqs * BENCH_HTTP_RESPONSE_LEN));
  if (uv_write(&r->req, s, &out, 1, on_written) < 0) on_written(&r->req, -1);
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
    fprintf(stderr, "usage: http_uv PORT\n");
    return 2;
  }
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_tcp_init(loop, &server);
  uv_ip4_addr("0.0.0.0", port, &addr);
  if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) < 0 ||
      uv_listen((uv_stream_t *)&server, 1024, on_connection) < 0) {
    fprintf(stderr, "http_uv: cannot listen on port %d\n", port);
    return 1;
  }
  printf("http_uv: listening on port %d\n", port);
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
