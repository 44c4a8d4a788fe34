/**
 * @file
 * pollux/tls.h - TLS streams over OpenSSL (client and server).
 *
 * A TLS stream wraps an established byte stream (any px_stream: TCP, Unix
 * socket, pipe, another wrapper) and is itself a px_stream, like
 * tokio-openssl's SslStream or libevent's bufferevent_openssl: once the
 * handshake is done, px_stream_read_init, px_stream_write_all_init, the
 * buffered reader and everything else written for px_stream work on it
 * unchanged. OpenSSL runs on memory buffers and never touches a
 * descriptor, so it works over every reactor and nothing ever blocks.
 *
 * @code
 *   px_tls_context *ctx;                        // once per program
 *   px_tls_context_new(&ctx, PX_TLS_CLIENT);    // verification is ON
 *   px_tls_context_load_ca(ctx, "ca.pem", NULL);
 *   ... connect a px_stream *tcp ...
 *   px_stream *tls;
 *   px_tls_client_new(ctx, tcp, "example.com", &tls);   // owns tcp now
 *   PX_TRY_AWAIT(px_tls_handshake_init(&self->hs, tls));
 *   PX_TRY_AWAIT(px_stream_write_all_init(&self->io, tls, req, len));
 *   PX_TRY_AWAIT(px_stream_read_init(&self->io, tls, buf, sizeof buf));
 *   PX_AWAIT(px_stream_shutdown_init(&self->io, tls));   // close_notify
 *   px_stream_close(tls);                               // closes tcp too
 * @endcode
 *
 * Reads complete with the bytes read, 0 once the peer sent close_notify.
 * A write completes once its bytes are encrypted; their records go to the
 * inner stream at once when it takes them, else with the next write,
 * flush or shutdown, or while a read waits (px_stream_flush_init waits
 * until they are all out). Shutdown sends close_notify, then shuts down
 * the inner stream's write side; it does not wait for the peer's
 * close_notify (read until 0 for that); later writes fail with PX_EPIPE.
 * Reads, writes and shutdown before the handshake completed fail with
 * PX_ENOTCONN.
 *
 * Errors: PX_ECERT when certificate verification failed (untrusted issuer,
 * expired, wrong host name), PX_EPROTO for any other TLS failure (a bad
 * record, an alert from the peer, no common protocol or ALPN), PX_ECONNRESET
 * when the peer closed the connection during the handshake, PX_EOF when it
 * closed it after the handshake without close_notify (the data may have been
 * truncated: a protocol with its own framing may accept that), and the inner
 * stream's errors as they are. px_tls_last_error() gives OpenSSL's reason
 * as text ("certificate verify failed: hostname mismatch"). After such an
 * error every operation on the stream fails with the same error: close it.
 * (A timeout or a cancellation is not an error of the stream.)
 *
 * Cancel safety: the rules of pollux/stream.h hold. A dropped pending read
 * has returned nothing and loses nothing: ciphertext already read and
 * plaintext already decrypted stay inside the stream for the next read. A
 * write reports its bytes only once OpenSSL has taken them, so a dropped
 * pending write has written nothing. A dropped handshake can be resumed
 * with a new handshake future.
 *
 * Threads: one task may read while another writes, as on any px_stream;
 * the stream serialises its use of OpenSSL with a mutex. A context is
 * configured first, then shared read-only by any number of streams on any
 * threads; it is reference-counted, so it may be freed while streams made
 * from it are still open.
 */
#ifndef POLLUX_TLS_H
#define POLLUX_TLS_H

/** @addtogroup tls
 * @{
 */

#include <stdbool.h>
#include <stddef.h>

#include "pollux/future.h"
#include "pollux/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Shared TLS settings (an OpenSSL SSL_CTX): certificates, trust, ALPN. */
typedef struct px_tls_context px_tls_context;

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
 * On success *out is a new px_stream that owns `inner` (px_stream_close
 * closes both); on failure inner is left as it was. Then await
 * px_tls_handshake_init. Errors: PX_EINVAL (NULL ctx/inner/out, a server
 * context, no name while verifying), PX_ENOMEM.
 */
int px_tls_client_new(px_tls_context *ctx, px_stream *inner,
                      const char *server_name, px_stream **out);

/**
 * Wraps an accepted stream as the server end of a TLS connection. Owns
 * inner on success, as px_tls_client_new. Errors: PX_EINVAL (NULL
 * argument, a client context, a context without certificate), PX_ENOMEM.
 */
int px_tls_server_new(px_tls_context *ctx, px_stream *inner,
                      px_stream **out);

/** The handshake future; its fields are private. */
typedef struct px_tls_handshake {
  px_future base;    /**< the future header; output unused */
  px_stream *stream; /**< private */
  int waiting;       /**< private: the last poll returned PX_PENDING */
} px_tls_handshake;

/**
 * Runs the handshake: completes with error 0 when the connection is
 * established and verified (at once if it already was). Errors: PX_EINVAL
 * (NULL or not a TLS stream), the ones of the file comment. Put it under
 * px_timeout to bound how long a peer may take (a slowloris client then
 * gets PX_ETIMEDOUT).
 */
px_future *px_tls_handshake_init(px_tls_handshake *f, px_stream *s);

/** True when `s` is a TLS stream made by px_tls_client_new/server_new. */
bool px_tls_is_tls(const px_stream *s);

/**
 * The ALPN protocol agreed in the handshake ("http/1.1"), or NULL when
 * none was, the handshake has not completed, or s is not a TLS stream.
 * Valid until the stream is closed.
 */
const char *px_tls_alpn(const px_stream *s);

/**
 * The host name of the connection: the SNI a client sent (on a server), or
 * the name given to px_tls_client_new (on a client). NULL if none.
 */
const char *px_tls_server_name(const px_stream *s);

/**
 * The negotiated protocol version ("TLSv1.3"), or NULL before the
 * handshake completed (or for a stream that is not TLS).
 */
const char *px_tls_version(const px_stream *s);

/**
 * OpenSSL's reason for the stream's last failure as text, or "" when
 * nothing failed (or s is not a TLS stream). Read it from the task that
 * saw the error.
 */
const char *px_tls_last_error(const px_stream *s);

/** The wrapped stream, or NULL when s is not a TLS stream. */
px_stream *px_tls_inner(px_stream *s);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_TLS_H */
