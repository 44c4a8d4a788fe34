/*
 * TLS test futures written with the async macros (C), for tls_test.cc:
 * an echo server and a client that writes and reads at once, each
 * recording what happened (errors, OpenSSL's reasons, ALPN, SNI).
 */
#ifndef POLLUX_TESTS_TLS_SUPPORT_H
#define POLLUX_TESTS_TLS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The byte at offset i of every test stream. */
static inline unsigned char tls_pattern(uint64_t i) {
  return (unsigned char)((i * 7 + i / 4099) & 0xff);
}

/* What one end saw. */
typedef struct tls_report {
  int handshake_err;   /* 0, PX_ETIMEDOUT, PX_ECERT, ... */
  int io_err;          /* the first read/write/shutdown error */
  char err_text[256];  /* px_tls_last_error at the first failure */
  char alpn[64];       /* "" when none */
  char sni[128];       /* "" when none */
  char version[16];
  uint64_t read_bytes; /* bytes read (the client: checked against the pattern) */
  uint64_t wrote_bytes;
  int pattern_ok;      /* every byte read matched tls_pattern */
  int clean_eof;       /* a read returned 0 (close_notify) */
} tls_report;

/*
 * Accepts one connection, wraps it as a TLS server, handshakes (within
 * `limit`), then echoes until close_notify (or, with stop_after > 0, until
 * that many bytes were echoed) and sends close_notify. `raw_close` closes
 * the TCP connection after the handshake without close_notify instead.
 */
typedef struct tls_echo_server {
  px_async px;
  px_tcp_listener *listener;
  px_tls_context *ctx;
  px_duration limit;
  uint64_t stop_after;
  int raw_close;
  int tunnel; /* a second TLS session inside the first */
  tls_report *rep;
  px_stream *tls;
  px_tcp_stream *tcp; /* under tls, which owns it */
  px_tcp_accept accept;
  px_timeout to;
  px_tls_handshake hs;
  px_stream_io op;
  size_t n;
  unsigned char buf[20000];
} tls_echo_server;
px_future *tls_echo_server_new(tls_echo_server *f, px_tcp_listener *l,
                               px_tls_context *ctx, px_duration limit,
                               tls_report *rep);

/*
 * Connects to 127.0.0.1:port, handshakes as `name` (within `limit`), then
 * writes `total` pattern bytes and sends close_notify while it reads until
 * end of stream, checking the pattern. With `read_timeout` > 0 every read
 * is dropped if its first poll leaves it pending, and the next read
 * waits (a cancelled read must lose nothing).
 */
typedef struct tls_client {
  px_async px;
  uint16_t port;
  px_tls_context *ctx;
  const char *name;
  px_duration limit;
  uint64_t total;
  px_duration read_timeout;
  int tunnel; /* a second TLS session inside the first */
  tls_report *rep;
  uint64_t timeouts; /* reads cancelled (read_timeout > 0) */
  px_stream *tls;
  px_tcp_connect connect;
  px_timeout to;
  px_tls_handshake hs;
  px_stream_io op;
  px_async *writer_frame;
  px_async *reader_frame;
  px_join join;
  px_future *both[2];
} tls_client;
px_future *tls_client_new(tls_client *f, uint16_t port, px_tls_context *ctx,
                          const char *name, px_duration limit, uint64_t total,
                          tls_report *rep);
/* Frees what tls_client_new allocated (after the client was dropped). */
void tls_client_free(tls_client *f);

/*
 * Connects to 127.0.0.1:port, handshakes as "localhost", writes `n` pattern
 * bytes (n <= 4096, so the echo comes back in one or two records), then
 * reads the echo one byte per px_stream_read: after the first, almost
 * every read is served from plaintext OpenSSL already decrypted, without
 * reaching the socket. `polls` counts this future's polls (the cooperative
 * budget must make it give way every PX__COOP_BUDGET reads); `got` counts
 * the bytes that matched. Sends close_notify and closes at the end.
 */
typedef struct tls_sipper {
  px_async px;
  uint16_t port;
  px_tls_context *ctx;
  int n, got, polls;
  px_stream *tls;
  px_tcp_connect connect;
  px_tls_handshake hs;
  px_stream_io op;
  unsigned char one;
  unsigned char buf[4096];
} tls_sipper;
px_future *tls_sipper_new(tls_sipper *f, uint16_t port, px_tls_context *ctx,
                          int n);

#ifdef __cplusplus
}
#endif

#endif
