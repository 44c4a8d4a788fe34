/*
 * pollux/net.h - TCP over the reactor.
 *
 * Sockets are non-blocking and registered with the reactor of the runtime
 * that first polls one of their futures. Operations are futures: a read
 * completes with the number of bytes read (0 at end of stream), a write with
 * the number written (possibly fewer than asked), write_all with all of them.
 * Errors are PX_E* codes: PX_ECONNRESET, PX_EPIPE, PX_ECONNREFUSED, ...
 * Writes never raise SIGPIPE.
 *
 * Hosts are numeric addresses ("127.0.0.1", "::1", "0.0.0.0"); no name
 * resolution happens, so nothing here blocks.
 *
 * A stream or listener must outlive the futures using it, and the runtime
 * must outlive the stream: drop the futures, close, then free the runtime.
 * Each stream has one slot for a waiting reader and one for a waiting
 * writer (one task reads while another writes); a listener has one slot for
 * a waiting acceptor.
 */
#ifndef POLLUX_NET_H
#define POLLUX_NET_H

#include <stddef.h>
#include <stdint.h>

#include "pollux/future.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_tcp_listener px_tcp_listener;
typedef struct px_tcp_stream px_tcp_stream;

/*
 * Binds and listens (SO_REUSEADDR set). Port 0 picks a free port; see
 * px_tcp_listener_port. Errors: PX_EINVAL (bad host), PX_EADDRINUSE, ...
 */
int px_tcp_bind(const char *host, uint16_t port, px_tcp_listener **out);

/* The local port, or a negative error. */
int px_tcp_listener_port(const px_tcp_listener *l);

/* Closes the listener and frees it. NULL is ignored. */
void px_tcp_listener_close(px_tcp_listener *l);

/* Completes with output.ptr = a new px_tcp_stream *. */
typedef struct px_tcp_accept {
  px_future base;
  px_tcp_listener *listener; /* private */
} px_tcp_accept;
px_future *px_tcp_accept_init(px_tcp_accept *f, px_tcp_listener *l);

/* Completes with output.ptr = a connected px_tcp_stream *. */
typedef struct px_tcp_connect {
  px_future base;
  int fd;              /* private */
  uint16_t port;       /* private */
  char host[46];       /* private: INET6_ADDRSTRLEN */
  px_tcp_stream *pending; /* private */
} px_tcp_connect;
px_future *px_tcp_connect_init(px_tcp_connect *f, const char *host,
                               uint16_t port);

/* One read or write on a stream. */
typedef struct px_tcp_io {
  px_future base;
  px_tcp_stream *stream; /* private */
  unsigned char *buf;    /* private */
  size_t len;            /* private */
  size_t done;           /* private */
  int all;               /* private: write_all */
} px_tcp_io;
typedef px_tcp_io px_tcp_read;
typedef px_tcp_io px_tcp_write;

/* Reads up to len bytes: output.u64 = bytes read, 0 at end of stream. */
px_future *px_tcp_read_init(px_tcp_io *f, px_tcp_stream *s, void *buf,
                            size_t len);
/* Writes up to len bytes: output.u64 = bytes written (at least 1). */
px_future *px_tcp_write_init(px_tcp_io *f, px_tcp_stream *s, const void *buf,
                             size_t len);
/*
 * Writes all len bytes: output.u64 = len. On error, output.u64 holds the
 * bytes already written. Zero-length reads and writes complete with 0 at
 * once, even outside a runtime. A stream registered with one runtime fails
 * with PX_EBUSY when polled from another.
 */
px_future *px_tcp_write_all_init(px_tcp_io *f, px_tcp_stream *s,
                                 const void *buf, size_t len);

/* Shuts down the write side (the peer then reads end of stream). */
int px_tcp_shutdown(px_tcp_stream *s);

/* The socket's file descriptor (for setsockopt and the like), or -1. */
int px_tcp_stream_fd(const px_tcp_stream *s);

/* Closes the stream and frees it. NULL is ignored. */
void px_tcp_close(px_tcp_stream *s);

#ifdef __cplusplus
}
#endif

#endif /* POLLUX_NET_H */
