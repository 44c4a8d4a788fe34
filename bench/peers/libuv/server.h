/*
 * bench/peers/libuv/server.h - the TCP server scaffolding the libuv echo
 * and HTTP peers share: parse the port, listen, accept each connection
 * into a buffer of the server's own type, read into that buffer, and free
 * the connection once it closes. Each server supplies only its read
 * callback, which is where the two differ.
 */
#ifndef POLLUX_BENCH_LIBUV_SERVER_H
#define POLLUX_BENCH_LIBUV_SERVER_H

#include <stddef.h>
#include <uv.h>

/*
 * What a server accepts connections into. Its connection type must start
 * with the uv_tcp_t, so that libuv's handle is the connection itself (one
 * allocation per connection, freed when the handle closes), and must hold
 * the read buffer that every read lands in.
 */
typedef struct uvb_server {
  const char *name; /* for the usage and listening messages */
  size_t conn_size; /* sizeof the connection type */
  size_t in_offset; /* offsetof its read buffer */
  size_t in_size;   /* sizeof its read buffer */
  uv_read_cb on_read;
} uvb_server;

/*
 * Runs the server on the port in argv[1] until the loop ends, and returns
 * main's exit status: 2 for a bad port, 1 when it cannot listen, else
 * uv_run's result. Prints "NAME: listening on port P" once it listens.
 */
int uvb_serve(const uvb_server *s, int argc, char **argv);

/* Closes a connection (from its read callback) and then frees it. */
void uvb_conn_close(uv_stream_t *conn);

#endif /* POLLUX_BENCH_LIBUV_SERVER_H */
