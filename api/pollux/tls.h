/*
 * pollux/tls.h - TLS streams over OpenSSL (client and server).
 *
 * A px_tls_stream wraps an established byte stream (a px_stream: TCP, Unix
 * socket, pipe, ...) and speaks TLS over it, like tokio-openssl's SslStream
 * or libevent's bufferevent_openssl. OpenSSL runs on memory buffers: it
 * never touches the descriptor, so the same code works over every reactor
 * and every kind of inner stream, and nothing ever blocks.
 *
 *   px_tls_context *ctx;                        // once per program
 *   px_tls_context_new(&ctx, PX_TLS_CLIENT);    // verification is ON
 *   px_tls_context_load_ca(ctx, "ca.pem", NULL);
 *   ... connect a px_tcp_stream *tcp ...
 *   px_tls_stream *tls;
 *   px_tls_client_new(ctx, tcp, "example.com", &tls);   // owns tcp now
 *   PX_AWAIT(px_tls_handshake_init(&self->op, tls));
 *   PX_AWAIT(px_tls_write_all_init(&self->op, tls, req, len));
 *   PX_AWAIT(px_tls_read_init(&self->op, tls, buf, sizeof buf));
 *   PX_AWAIT(px_tls_shutdown_init(&self->op, tls));     // close_notify
 *   px_tls_close(tls);                                  // closes tcp too
 *
 * Operations are futures with the same results as pollux/net.h's: a read
 * completes with the bytes read (0 once the peer sent close_notify), a
 * write with the bytes written, write_all with all of them. Reads and
 * writes before the handshake completed fail with PX_ENOTCONN.
 *
 * Errors: PX_ECERT when certificate verification failed (untrusted issuer,
 * expired, wrong host name), PX_EPROTO for any other TLS failure (a bad
 * record, an alert from the peer, no common protocol or ALPN), PX_ECONNRESET
 * when the peer closed the connection during the handshake, PX_EOF when it
 * closed it after the handshake without close_notify (the data may have been
 * truncated: a protocol with its own framing may accept that), and the inner
 * stream's errors as they are. px_tls_last_error() gives OpenSSL's reason
 * as text ("certificate verify failed: hostname mismatch"). After an error
 * other than a timeout or cancellation, every operation on the stream fails
 * with the same error: close it.
 *
 * Cancel safety: the rules of pollux/net.h hold. A dropped pending read
 * has returned nothing and loses nothing: decrypted bytes stay inside the
 * stream for the next read. A dropped write or write_all may have accepted
 * a prefix (its own output.u64 says how many bytes); accepted bytes are
 * encrypted and will go out ahead of anything written later (the next
 * write or shutdown sends them; a read sends them too when no write is in
 * progress). A dropped handshake can be polled again with a new handshake
 * future, which continues where the old one stopped.
 *
 * Threads: one task may read while another writes (each side has one slot,
 * as on a plain stream); the stream serialises its use of OpenSSL with a
 * mutex. A context is configured first, then shared read-only by any
 * number of streams on any threads; it is reference-counted, so it may be
 * freed while streams made from it are still open.
 */
#ifndef POLLUX_TLS_H
#define POLLUX_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "pollux/future.h"
#include "pollux/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Shared TLS settings (an OpenSSL SSL_CTX): certificates, trust, ALPN. */
typedef struct px_tls_context px_tls_context;

/** A TLS connection over another stream; see the file comment. */
typedef struct px_tls_stream px_tls_stream;

/** Which end of the connection a context makes streams for. */
typedef enum px_tls_role {
  PX_TLS_CLIENT = 0, /**< connects; verifies the server by default */
  PX_TLS_SERVER = 1  /**< accepts; needs a certificate and key */
} px_tls_role;

/**
 * Creates a context for `role`, TLS 1.2 and 1.3 only. A client context
 * verifies the server's certificate and host name (turn that off only for
 * tests, with px_tls_context_set_verify); it trusts the system's CA store
 * unless px_tls_context_load_ca names other CAs. A server context needs
 * px_tls_context_use_cert before its streams can handshake.
 * Errors: PX_EINVAL (NULL out, unknown role), PX_ENOMEM.
 */
int px_tls_context_new(px_tls_context **out, px_tls_role role);

/**
 * Loads this end's certificate chain and private key from PEM files (the
 * chain file holds the leaf first, then intermediates) and checks that they
 * match. Errors: PX_EINVAL (NULL argument), PX_ENOENT (a file is missing),
 * PX_EPROTO (unreadable PEM, key does not match); the reason is in
 * px_tls_context_error().
 */
int px_tls_context_use_cert(px_tls_context *c, const char *cert_file,
                            const char *key_file);

/**
 * Trusts the CA certificates of a PEM file and/or a hashed directory
 * (c_rehash layout), instead of the system store. Either may be NULL, not
 * both. Errors: PX_EINVAL, PX_ENOENT, PX_EPROTO (see px_tls_context_error).
 */
int px_tls_context_load_ca(px_tls_context *c, const char *ca_file,
                           const char *ca_dir);

/**
 * Peer verification on or off. Clients verify by default (certificate
 * chain and host name); turning it off accepts any server, which is only
 * right for tests. Servers do not by default; on, they require a client
 * certificate signed by a trusted CA (mutual TLS). Errors: PX_EINVAL.
 */
int px_tls_context_set_verify(px_tls_context *c, bool on);

/**
 * The ALPN protocols, most preferred first ("h2", "http/1.1"): a client
 * offers them; a server picks the first of its own list that the client
 * offered, and refuses a client that offered ALPN but none of these (the
 * handshake fails with PX_EPROTO, "no application protocol"). A client
 * that offers nothing gets no ALPN. Each name is 1 to 255 bytes.
 * Errors: PX_EINVAL (NULL list with n > 0, bad name), PX_ENOMEM.
 */
int px_tls_context_set_alpn(px_tls_context *c, const char *const *protos,
                            size_t n);

/**
 * OpenSSL's reason for the last failed call on this context, or "" when
 * none failed. Valid until the next call on the context.
 */
const char *px_tls_context_error(const px_tls_context *c);

/**
 * Drops the caller's reference; the context is freed when the last stream
 * made from it is closed too. NULL is ignored.
 */
void px_tls_context_free(px_tls_context *c);

/**
 * Wraps a connected stream as the client end of a TLS connection to
 * `server_name`: a DNS name, sent as SNI and checked against the
 * certificate, or a numeric IP address, checked against the certificate's
 * IP entries (no SNI then). With verification on, server_name is required.
 * On success the TLS stream owns `inner` (px_tls_close closes it); on
 * failure inner is left as it was. Then await px_tls_handshake_init.
 * Errors: PX_EINVAL (NULL ctx/inner/out, a server context, no name while
 * verifying), PX_ENOMEM.
 */
int px_tls_client_new(px_tls_context *ctx, px_stream *inner,
                      const char *server_name, px_tls_stream **out);

/**
 * Wraps an accepted stream as the server end of a TLS connection. Owns
 * inner on success, as px_tls_client_new. Errors: PX_EINVAL (NULL
 * argument, a client context, a context without certificate), PX_ENOMEM.
 */
int px_tls_server_new(px_tls_context *ctx, px_stream *inner,
                      px_tls_stream **out);

/** A TLS operation: handshake, read, write, write_all or shutdown. */
typedef struct px_tls_op {
  px_future base;        /**< the future; its output is the op's result */
  px_tls_stream *stream; /**< private */
  unsigned char *buf;    /**< private */
  size_t len;            /**< private */
  size_t done;           /**< private */
  int kind;              /**< private */
} px_tls_op;

/**
 * Runs the handshake: completes with output 0 when the connection is
 * established and verified (at once if it already was). Errors: see the
 * file comment. Put it under px_timeout to bound how long a peer may take
 * (a slowloris client then gets PX_ETIMEDOUT).
 */
px_future *px_tls_handshake_init(px_tls_op *f, px_tls_stream *s);

/** Reads up to len bytes: output.u64 = bytes read, 0 after close_notify. */
px_future *px_tls_read_init(px_tls_op *f, px_tls_stream *s, void *buf,
                            size_t len);

/**
 * Writes up to len bytes: output.u64 = bytes written (at least 1), once
 * their TLS records were handed to the inner stream.
 */
px_future *px_tls_write_init(px_tls_op *f, px_tls_stream *s, const void *buf,
                             size_t len);

/**
 * Writes all len bytes: output.u64 = len; on error, output.u64 holds the
 * bytes already accepted. Zero-length reads and writes complete with 0.
 */
px_future *px_tls_write_all_init(px_tls_op *f, px_tls_stream *s,
                                 const void *buf, size_t len);

/**
 * Sends close_notify, then shuts down the inner stream's write side (the
 * peer reads end of stream). Does not wait for the peer's close_notify:
 * read until 0 for that. Later writes fail with PX_EPIPE.
 */
px_future *px_tls_shutdown_init(px_tls_op *f, px_tls_stream *s);

/**
 * The ALPN protocol agreed in the handshake ("http/1.1"), or NULL when
 * none was (or the handshake has not completed). Valid until close.
 */
const char *px_tls_alpn(const px_tls_stream *s);

/**
 * The host name of the connection: the SNI a client sent (on a server), or
 * the name given to px_tls_client_new (on a client). NULL if none.
 */
const char *px_tls_server_name(const px_tls_stream *s);

/** The negotiated protocol version ("TLSv1.3"), or NULL before it is known. */
const char *px_tls_version(const px_tls_stream *s);

/**
 * OpenSSL's reason for the stream's last failure as text, or "" when
 * nothing failed. Read it from the task that saw the error.
 */
const char *px_tls_last_error(const px_tls_stream *s);

/** The wrapped stream (for px_tcp_peer_addr and the like). */
px_stream *px_tls_inner(px_tls_stream *s);

/**
 * Frees the TLS state and closes the inner stream, without sending
 * close_notify (await px_tls_shutdown_init first for a clean close).
 * Every future on the stream must have been dropped. NULL is ignored.
 */
void px_tls_close(px_tls_stream *s);

#ifdef __cplusplus
}
#endif

#endif /* POLLUX_TLS_H */
