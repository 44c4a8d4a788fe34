/**
 * @file
 * pollux/net.h - sockets, pipes and other descriptors over the reactor.
 *
 * Descriptors are non-blocking and registered with the reactor of the
 * runtime that first polls one of their futures. Operations are futures: a
 * read completes with the number of bytes read (0 at end of stream), a write
 * with the number written (possibly fewer than asked), write_all with all of
 * them. Errors are PX_E* codes: PX_ECONNRESET, PX_EPIPE, PX_ECONNREFUSED, ...
 * Writes never raise SIGPIPE.
 *
 * Hosts are numeric addresses ("127.0.0.1", "::1", "0.0.0.0"); no name
 * resolution happens, so nothing here blocks. For names ("localhost",
 * "example.org") see pollux/resolve.h: px_lookup_host and
 * px_tcp_connect_host, which resolve on the blocking pool.
 *
 * Streams: every connection, pipe end and wrapped descriptor here is a
 * px_stream (pollux/stream.h), read and written with px_stream_read_init
 * and friends like any other stream (TLS, buffered, user-defined).
 * px_tcp_stream is the same type under its historical name, and the
 * px_tcp_read/write/write_all/close functions are the px_stream ones.
 *
 * A stream or listener must outlive the futures using it, and the runtime
 * must outlive the stream: drop the futures, close, then free the runtime.
 * Each stream has one slot for a waiting reader and one for a waiting
 * writer (one task reads while another writes); a listener has one slot for
 * a waiting acceptor.
 *
 * Cancel safety: dropping a read, write, accept or connect future (through
 * px_timeout, px_select or an aborted task) loses nothing. A read that had
 * read bytes has completed and returns them; a dropped pending read has
 * read nothing, so the data waits for the next read. The descriptor stays
 * usable. A dropped write or write_all may have written a prefix: its own
 * output.u64 (not the timeout's or select's) says how many bytes went out.
 */
#ifndef POLLUX_NET_H
#define POLLUX_NET_H

/** @addtogroup io
 * @{
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "pollux/future.h"
#include "pollux/stream.h"
#include "pollux/time.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A listening TCP or Unix socket (opaque). */
typedef struct px_tcp_listener px_tcp_listener;
/**
 * A connected stream from accept or connect: a px_stream (stream.h) whose
 * implementation is a plain descriptor. The TCP-only functions below
 * (addresses, socket options) also accept any px_stream and answer
 * PX_ENOTSUP for streams that are not sockets.
 */
typedef px_stream px_tcp_stream;

/* ---- Addresses ------------------------------------------------------ */

/** A socket address of any family (IPv4, IPv6, Unix) and its length. */
typedef struct px_addr {
  struct sockaddr_storage storage; /**< the address */
  socklen_t len; /**< its length in bytes */
} px_addr;

/** Fills *out from a numeric host and a port. PX_EINVAL for names (resolve them with px_lookup_host). */
int px_addr_parse(const char *host, uint16_t port, px_addr *out);

/**
 * Writes "127.0.0.1:8080", "[::1]:8080" or a Unix socket's path into buf
 * (NUL-terminated). Returns the length, or PX_EINVAL (bad address) or
 * PX_ERANGE (buf too small; 64 bytes fit any IP address, 110 any path).
 */
int px_addr_format(const px_addr *a, char *buf, size_t size);

/** The port of an IPv4 or IPv6 address, or PX_EAFNOSUPPORT. */
int px_addr_port(const px_addr *a);

/* ---- Socket options ------------------------------------------------- */

/**
 * A socket option, set with px_tcp_set_option (streams),
 * px_tcp_listener_set_option, px_udp_set_option, or at bind time with
 * px_tcp_bind_with / px_udp_bind_with. Values are ints: 0 or 1 for on/off
 * options, a count or seconds otherwise. An option that does not apply to
 * the socket (TCP options on a UDP or Unix socket, anything on a pipe or a
 * stream that is not a plain socket) fails with PX_ENOTSUP; a value out of
 * range with PX_EINVAL.
 */
typedef enum px_sockopt {
  /** TCP_NODELAY, 0/1: send small writes at once (on by default for
   * streams pollux connects or accepts). TCP only. */
  PX_SOCKOPT_NODELAY = 0,
  /** SO_KEEPALIVE, 0/1: probe an idle connection. TCP only. */
  PX_SOCKOPT_KEEPALIVE = 1,
  /** TCP_KEEPIDLE, 1..32767 seconds idle before the first probe. */
  PX_SOCKOPT_KEEPIDLE = 2,
  /** TCP_KEEPINTVL, 1..32767 seconds between probes. */
  PX_SOCKOPT_KEEPINTVL = 3,
  /** TCP_KEEPCNT, 1..127 unanswered probes before the connection drops. */
  PX_SOCKOPT_KEEPCNT = 4,
  /** SO_LINGER in seconds: -1 off (the default: close returns at once and
   * the kernel sends what is left), 0 close resets the connection, n close
   * waits up to n seconds (in the closing thread) for unsent data. */
  PX_SOCKOPT_LINGER = 5,
  /** SO_REUSEADDR, 0/1 (on by default for px_tcp_bind). */
  PX_SOCKOPT_REUSEADDR = 6,
  /** SO_REUSEPORT, 0/1: several sockets bound to one port share its
   * traffic; set it at bind time (px_tcp_bind_with, px_udp_bind_with). */
  PX_SOCKOPT_REUSEPORT = 7,
  /** SO_SNDBUF in bytes (Linux doubles it and reports the doubled value). */
  PX_SOCKOPT_SNDBUF = 8,
  /** SO_RCVBUF in bytes (Linux doubles it and reports the doubled value). */
  PX_SOCKOPT_RCVBUF = 9,
  /** SO_BROADCAST, 0/1: allow sending to broadcast addresses. UDP only. */
  PX_SOCKOPT_BROADCAST = 10
} px_sockopt;

/** One option and its value, for px_tcp_bind_with and px_udp_bind_with. */
typedef struct px_sockopt_value {
  px_sockopt opt; /**< the option */
  int value;      /**< its value */
} px_sockopt_value;

/**
 * Sets an option on a connected TCP stream. Errors: PX_EINVAL (NULL
 * stream, unknown option, value out of range), PX_ENOTSUP (a Unix socket
 * for TCP options, a pipe, a stream that is not a plain socket, a UDP-only
 * option), or the kernel's.
 */
int px_tcp_set_option(px_tcp_stream *s, px_sockopt opt, int value);

/**
 * Reads an option of a TCP stream into *value (linger: -1 when off).
 * Errors as px_tcp_set_option, and PX_EINVAL for a NULL value.
 */
int px_tcp_get_option(const px_tcp_stream *s, px_sockopt opt, int *value);

/* ---- TCP (listeners and accept serve Unix sockets too) -------------- */

/**
 * Binds and listens (SO_REUSEADDR set). Port 0 picks a free port; see
 * px_tcp_listener_port. Errors: PX_EINVAL (bad host), PX_EADDRINUSE, ...
 */
int px_tcp_bind(const char *host, uint16_t port, px_tcp_listener **out);

/**
 * px_tcp_bind with options applied to the socket before it binds (so
 * PX_SOCKOPT_REUSEPORT can take effect): opts[0..n) in order. SO_REUSEADDR
 * is on unless opts turns it off. The first failing option's error is
 * returned (PX_ENOTSUP, PX_EINVAL) and nothing is left open. opts may be
 * NULL when n is 0.
 */
int px_tcp_bind_with(const char *host, uint16_t port,
                     const px_sockopt_value *opts, size_t n,
                     px_tcp_listener **out);

/**
 * Sets an option on a listener. Accepted streams inherit NODELAY,
 * KEEPALIVE and the keepalive timings, LINGER and the buffer sizes (Linux).
 * Errors as px_tcp_set_option (TCP options on a Unix listener:
 * PX_ENOTSUP).
 */
int px_tcp_listener_set_option(px_tcp_listener *l, px_sockopt opt,
                               int value);

/** Reads an option of a listener; errors as px_tcp_get_option. */
int px_tcp_listener_get_option(const px_tcp_listener *l, px_sockopt opt,
                               int *value);

/** The local port, or a negative error. */
int px_tcp_listener_port(const px_tcp_listener *l);

/** The address the listener is bound to. */
int px_tcp_listener_addr(const px_tcp_listener *l, px_addr *out);

/** Closes the listener and frees it. NULL is ignored. */
void px_tcp_listener_close(px_tcp_listener *l);

/**
 * Completes with output.ptr = a new px_tcp_stream *. Works on TCP and Unix
 * listeners alike. Running out of descriptors (EMFILE, ENFILE) does not end
 * it: each listener keeps one spare descriptor, and when accept finds the
 * table full it gives up the spare, accepts the waiting connection and
 * closes it at once (the client sees its connection closed), takes the
 * spare back and goes on waiting. Serving resumes when descriptors free up.
 * Only when the spare cannot be had (or accepting into its slot fails the
 * same way) does it complete with PX_EMFILE or PX_ENFILE: pause, then
 * accept again (px_serve, serve.h, does), since waiting for readiness then
 * would spin on a level-triggered reactor and stall on an edge-triggered one.
 */
typedef struct px_tcp_accept {
  px_future base; /**< the future header (must be first) */
  px_tcp_listener *listener; /**< private */
} px_tcp_accept;
/** Initialises an accept on `l` and returns its future. */
px_future *px_tcp_accept_init(px_tcp_accept *f, px_tcp_listener *l);

/**
 * Completes with output.ptr = a connected px_tcp_stream *. A bad host makes
 * the first poll fail with PX_EINVAL. Dropping the future before it
 * completes closes the half-open socket, so a connect under px_timeout
 * leaves nothing behind when the time runs out.
 */
typedef struct px_tcp_connect {
  px_future base; /**< the future header (must be first) */
  px_addr addr;           /**< private */
  int err;                /**< private: a bad argument, reported by poll */
  px_tcp_stream *pending; /**< private */
} px_tcp_connect;
/** Initialises a connect to host:port (a numeric IPv4 or IPv6 address) and returns its future. */
px_future *px_tcp_connect_init(px_tcp_connect *f, const char *host,
                               uint16_t port);
/** Same, to an address from px_addr_parse or px_tcp_peer_addr. */
px_future *px_tcp_connect_addr_init(px_tcp_connect *f, const px_addr *addr);

/**
 * A connect with a time limit: px_tcp_connect under px_timeout, in one
 * struct. Completes like the connect, or with PX_ETIMEDOUT after `limit`
 * (the half-open socket is closed). Await the returned future; the result
 * is in f->timeout.base. Initialise it where it will be polled: it points
 * into itself, so it must not be copied afterwards.
 */
typedef struct px_tcp_connect_timeout {
  px_timeout timeout; /**< the future to await (the timeout around `connect`) */
  px_tcp_connect connect; /**< private: the connect it limits */
} px_tcp_connect_timeout;
/** Initialises a connect to host:port limited to `limit` and returns its future (the timeout's). */
px_future *px_tcp_connect_timeout_init(px_tcp_connect_timeout *f,
                                       const char *host, uint16_t port,
                                       px_duration limit);

/** px_stream_io under its historical name. */
typedef px_stream_io px_tcp_io;
/** px_stream_io under its historical name. */
typedef px_stream_io px_tcp_read;
/** px_stream_io under its historical name. */
typedef px_stream_io px_tcp_write;

/** px_stream_read_init under its historical name. */
px_future *px_tcp_read_init(px_tcp_io *f, px_tcp_stream *s, void *buf,
                            size_t len);
/** px_stream_write_init under its historical name. */
px_future *px_tcp_write_init(px_tcp_io *f, px_tcp_stream *s, const void *buf,
                             size_t len);
/**
 * px_stream_write_all_init under its historical name. A stream registered
 * with one runtime fails with PX_EBUSY when polled from another.
 */
px_future *px_tcp_write_all_init(px_tcp_io *f, px_tcp_stream *s,
                                 const void *buf, size_t len);

/**
 * Shuts down the write side of a socket at once (the peer then reads end
 * of stream). PX_ENOTSUP for pipes and for streams that are not plain
 * descriptors (a TLS stream needs px_stream_shutdown_init, which sends
 * close_notify first).
 */
int px_tcp_shutdown(px_tcp_stream *s);

/** The socket's file descriptor (px_stream_fd: for options, not for
 * moving bytes), or -1. */
int px_tcp_stream_fd(const px_tcp_stream *s);

/** This end's and the peer's address (sockets only; PX_ENOTSUP for pipes). */
int px_tcp_local_addr(const px_tcp_stream *s, px_addr *out);
/** The peer's address (sockets only; PX_ENOTSUP for pipes). */
int px_tcp_peer_addr(const px_tcp_stream *s, px_addr *out);

/** px_stream_close under its historical name. NULL is ignored. */
void px_tcp_close(px_tcp_stream *s);

/* ---- Unix domain stream sockets ------------------------------------- */

/**
 * Binds and listens on a filesystem path (at most 107 bytes). The path must
 * not exist yet (PX_EADDRINUSE), and closing does not remove it: unlink it
 * yourself. Accept with px_tcp_accept_init; the streams are px_streams.
 */
int px_unix_bind(const char *path, px_tcp_listener **out);

/** Connects to a Unix socket path; completes like px_tcp_connect. */
px_future *px_unix_connect_init(px_tcp_connect *f, const char *path);

/* ---- Pipes and other descriptors ------------------------------------ */

/**
 * Wraps an open descriptor the reactor can watch (a pipe, socket, tty,
 * eventfd; not a regular file: PX_EINVAL) as a stream, making it
 * non-blocking. The stream owns fd from then on: px_tcp_close closes it.
 * Writes to a pipe whose reader is gone fail with PX_EPIPE, without SIGPIPE.
 */
int px_fd_wrap(int fd, px_stream **out);

/** A new pipe as two streams: read from *r what is written to *w. */
int px_pipe(px_stream **r, px_stream **w);

/* ---- UDP ------------------------------------------------------------ */

/** A UDP socket (opaque). */
typedef struct px_udp_socket px_udp_socket;

/** A UDP socket bound to host:port (port 0: any free port). */
int px_udp_bind(const char *host, uint16_t port, px_udp_socket **out);

/**
 * px_udp_bind with options applied before binding (REUSEADDR, REUSEPORT,
 * buffer sizes, BROADCAST); errors as px_tcp_bind_with.
 */
int px_udp_bind_with(const char *host, uint16_t port,
                     const px_sockopt_value *opts, size_t n,
                     px_udp_socket **out);

/**
 * Sets an option on a UDP socket: REUSEADDR, REUSEPORT, SNDBUF, RCVBUF,
 * BROADCAST; TCP options fail with PX_ENOTSUP.
 */
int px_udp_set_option(px_udp_socket *s, px_sockopt opt, int value);

/** Reads an option of a UDP socket; errors as px_tcp_get_option. */
int px_udp_get_option(const px_udp_socket *s, px_sockopt opt, int *value);

/** The bound address, and its port (or a negative error). */
int px_udp_local_addr(const px_udp_socket *s, px_addr *out);
/** The bound port, or a negative error. */
int px_udp_port(const px_udp_socket *s);

/**
 * Sets the default peer (no packets are sent: UDP connect only filters
 * what arrives and fixes where px_udp_send goes). Synchronous.
 */
int px_udp_connect(px_udp_socket *s, const char *host, uint16_t port);

/**
 * One datagram. Sends complete with output.u64 = bytes sent (the whole
 * datagram). Receives complete with output.u64 = bytes stored: a datagram
 * longer than the buffer is truncated, the rest of it discarded.
 */
typedef struct px_udp_io {
  px_future base; /**< the future header (must be first) */
  px_udp_socket *sock; /**< private */
  unsigned char *buf;  /**< private */
  size_t len;          /**< private */
  px_addr to;          /**< private: send_to's destination */
  px_addr *from;       /**< private: recv_from's output, may be NULL */
  int err;             /**< private */
} px_udp_io;

/** Initialises a send of one datagram to `to` and returns its future. */
px_future *px_udp_send_to_init(px_udp_io *f, px_udp_socket *s,
                               const void *buf, size_t len, const px_addr *to);
/** *from (if not NULL) receives the sender's address; it must outlive f. */
px_future *px_udp_recv_from_init(px_udp_io *f, px_udp_socket *s, void *buf,
                                 size_t len, px_addr *from);
/** To and from the connected peer (PX_ENOTCONN / PX_EINVAL without one). */
px_future *px_udp_send_init(px_udp_io *f, px_udp_socket *s, const void *buf,
                            size_t len);
/** Initialises a receive of one datagram from the connected peer and returns its future. */
px_future *px_udp_recv_init(px_udp_io *f, px_udp_socket *s, void *buf,
                            size_t len);

/** Closes the socket and frees it. NULL is ignored. */
void px_udp_close(px_udp_socket *s);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_NET_H */
