/*
 * TCP echo server on libuv, the peer of examples/echo.c.
 *
 *   echo_uv PORT
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bench/peers/libuv/server.h"

typedef struct conn {
  uv_tcp_t tcp;
  char in[16384];
} conn;

typedef struct reply {
  uv_write_t req;
  char data[];
} reply;

static void on_written(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n < 0) {
    uvb_conn_close(s);
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

int main(int argc, char **argv) {
  static const uvb_server server = {.name = "echo_uv",
                                    .conn_size = sizeof(conn),
                                    .in_offset = offsetof(conn, in),
                                    .in_size = sizeof(((conn *)0)->in),
                                    .on_read = on_read};
  return uvb_serve(&server, argc, argv);
}
