/* bench/peers/libuv/server.c - see server.h. */
#include "bench/peers/libuv/server.h"

#include <stdio.h>
#include <stdlib.h>

static void on_close(uv_handle_t *h) { free(h); }

void uvb_conn_close(uv_stream_t *conn) {
  uv_close((uv_handle_t *)conn, on_close);
}

/* Every handle's data points at its uvb_server: the listener's, so that
 * on_connection knows what to allocate, and each connection's, so that
 * on_alloc knows where its buffer lies. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  const uvb_server *s = h->data;
  *buf = uv_buf_init((char *)h + s->in_offset, (unsigned)s->in_size);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  const uvb_server *s = server->data;
  uv_tcp_t *c = calloc(1, s->conn_size);
  uv_tcp_init(server->loop, c);
  c->data = (void *)s;
  if (uv_accept(server, (uv_stream_t *)c) < 0) {
    uv_close((uv_handle_t *)c, on_close);
    return;
  }
  uv_tcp_nodelay(c, 1);
  uv_read_start((uv_stream_t *)c, on_alloc, s->on_read);
}

int uvb_serve(const uvb_server *s, int argc, char **argv) {
  int port = argc == 2 ? atoi(argv[1]) : 0;
  if (port < 1 || port > 65535) {
    fprintf(stderr, "usage: %s PORT\n", s->name);
    return 2;
  }
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_tcp_init(loop, &server);
  server.data = (void *)s;
  uv_ip4_addr("0.0.0.0", port, &addr);
  if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) < 0 ||
      uv_listen((uv_stream_t *)&server, 1024, on_connection) < 0) {
    fprintf(stderr, "%s: cannot listen on port %d\n", s->name, port);
    return 1;
  }
  printf("%s: listening on port %d\n", s->name, port);
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
