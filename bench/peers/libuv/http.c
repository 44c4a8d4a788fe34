/*
 * HTTP plaintext server on libuv: the same fixed answer and request
 * counting as bench/raw_epoll_http.c and the tokio peer.
 *
 *   http_uv PORT
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bench/http_parse.h"
#include "bench/peers/libuv/server.h"

typedef struct conn {
  uv_tcp_t tcp;
  int parse_state;
  char in[4096];
} conn;

typedef struct reply {
  uv_write_t req;
  char *data;
} reply;

static void on_written(uv_write_t *req, int status) {
  reply *r = (reply *)req;
  (void)status;
  free(r->data);
  free(r);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *c = (conn *)s;
  if (n < 0) {
    uvb_conn_close(s);
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

int main(int argc, char **argv) {
  static const uvb_server server = {.name = "http_uv",
                                    .conn_size = sizeof(conn),
                                    .in_offset = offsetof(conn, in),
                                    .in_size = sizeof(((conn *)0)->in),
                                    .on_read = on_read};
  return uvb_serve(&server, argc, argv);
}
