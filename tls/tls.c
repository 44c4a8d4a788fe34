/*
 * TLS streams over OpenSSL (pollux/tls.h).
 *
 * OpenSSL is given two memory BIOs instead of a socket: `rbio` holds
 * ciphertext read from the inner stream that OpenSSL has not consumed yet,
 * `wbio` the ciphertext OpenSSL produced that has not gone out yet. So
 * SSL_do_handshake/SSL_read/SSL_write never block and never see a
 * descriptor; when one of them answers WANT_READ, we read more ciphertext
 * from the inner stream with an ordinary pollux read future, and whatever
 * lands in wbio is written out with an ordinary pollux write future. Those
 * two inner futures live in the stream (one per direction, like the inner
 * stream's own slots), and `rd_owner` / `wr_owner` say which TLS operation
 * polled one last, so that a dropped operation drops the inner future it
 * was waiting on and leaves no waker behind.
 *
 * Cancel safety falls out of that: the inner read is cancel-safe (a
 * pending read has read nothing), and a completed inner read is handed to
 * rbio in the same poll, so no ciphertext is ever held by a future; the
 * plaintext is inside the SSL object until an SSL_read returns it, and an
 * SSL_read that returned bytes completes its future in the same poll.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal/px_internal.h"
#include "pollux/net.h"
#include "pollux/tls.h"

#define ERR_LEN 256
/* One TLS record is at most 16 KiB of payload plus ~300 bytes of header,
 * padding and tag: a buffer this size reads a whole record at once. */
#define CIPHER_BUF (17 * 1024)
/* Plaintext handed to SSL_write per turn: bounds the ciphertext queued in
 * wbio (and so memory) while still filling four full records. */
#define WRITE_CHUNK (64 * 1024)

struct px_tls_context {
  SSL_CTX *ssl_ctx;
  px_tls_role role;
  px__atomic(long) refs;
  bool has_cert;
  bool ca_loaded;
  bool verify;
  unsigned char *alpn; /* wire format: length-prefixed names */
  size_t alpn_len;
  char err[ERR_LEN];
};

enum { OP_HANDSHAKE, OP_READ, OP_WRITE, OP_WRITE_ALL, OP_SHUTDOWN };

struct px_tls_stream {
  pthread_mutex_t lock; /* OpenSSL's SSL object is not thread-safe */
  px_tls_context *ctx;
  px_stream *inner;
  SSL *ssl;
  BIO *rbio; /* network -> OpenSSL */
  BIO *wbio; /* OpenSSL -> network */
  int fatal; /* sticky error once OpenSSL or the inner stream failed */
  bool flush_alert;   /* a failed handshake still owes the peer its alert */
  bool established;   /* the handshake completed */
  bool eof_in;        /* the inner stream reached end of stream */
  bool inner_shut;    /* the inner write side was shut down */
  px_tcp_io rd;       /* the inner read, while rd_owner != NULL */
  px_tls_op *rd_owner;
  px_tcp_io wr;       /* the inner write, while wr_owner != NULL */
  px_tls_op *wr_owner;
  px_tls_op *writer;  /* the write or shutdown in progress */
  size_t out_off, out_len; /* obuf[out_off, out_len) is owed to inner */
  char *name;         /* server_name given to a client */
  char alpn[256];     /* the agreed ALPN protocol, NUL-terminated */
  char err[ERR_LEN];
  unsigned char ibuf[CIPHER_BUF];
  unsigned char obuf[CIPHER_BUF];
};

/* ---- Error text --------------------------------------------------------- */

static void set_err(char *buf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, ERR_LEN, fmt, ap);
  va_end(ap);
}

/* Moves OpenSSL's queued reason into buf (as "what: reason") and empties the
 * thread's queue, so it cannot be blamed on the next stream on this thread. */
static void take_openssl_err(char *buf, const char *what) {
  unsigned long e = ERR_get_error();
  char reason[ERR_LEN - 64];
  if (e == 0)
    snprintf(reason, sizeof reason, "no reason given");
  else
    ERR_error_string_n(e, reason, sizeof reason);
  set_err(buf, "%s: %s", what, reason);
  ERR_clear_error();
}

/* ---- Contexts ----------------------------------------------------------- */

int px_tls_context_new(px_tls_context **out, px_tls_role role) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  if (role != PX_TLS_CLIENT && role != PX_TLS_SERVER) return PX_EINVAL;
  px_tls_context *c = px__calloc(sizeof(*c));
  if (c == NULL) return PX_ENOMEM;
  c->ssl_ctx = SSL_CTX_new(role == PX_TLS_CLIENT ? TLS_client_method()
                                                 : TLS_server_method());
  if (c->ssl_ctx == NULL) {
    ERR_clear_error();
    px__free(c, sizeof(*c));
    return PX_ENOMEM;
  }
  c->role = role;
  c->refs = 1;
  c->verify = role == PX_TLS_CLIENT;
  /* TLS 1.0 and 1.1 are deprecated (RFC 8996). Renegotiation would let the
   * peer start a handshake in the middle of a read or write. */
  SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(c->ssl_ctx, SSL_OP_NO_RENEGOTIATION);
  *out = c;
  return 0;
}

static void context_unref(px_tls_context *c) {
  long left = atomic_fetch_sub(&c->refs, 1) - 1;
  if (left > 0) return;
  SSL_CTX_free(c->ssl_ctx);
  if (c->alpn != NULL) px__free(c->alpn, c->alpn_len);
  px__free(c, sizeof(*c));
}

void px_tls_context_free(px_tls_context *c) {
  if (c != NULL) context_unref(c);
}

const char *px_tls_context_error(const px_tls_context *c) {
  return c == NULL ? "" : c->err;
}

/* PX_ENOENT for a missing or unreadable file, so the caller can tell a typo
 * from a bad PEM file (OpenSSL reports both as "system lib"). */
static int check_readable(px_tls_context *c, const char *path) {
  if (access(path, R_OK) == 0) return 0;
  int err = px_err_from_errno(errno);
  set_err(c->err, "%s: %s", path, strerror(errno));
  return err == PX_EACCES ? err : PX_ENOENT;
}

int px_tls_context_use_cert(px_tls_context *c, const char *cert_file,
                            const char *key_file) {
  if (c == NULL || cert_file == NULL || key_file == NULL) return PX_EINVAL;
  c->err[0] = '\0';
  int err = check_readable(c, cert_file);
  if (err == 0) err = check_readable(c, key_file);
  if (err < 0) return err;
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, cert_file) != 1) {
    take_openssl_err(c->err, cert_file);
    return PX_EPROTO;
  }
  if (SSL_CTX_use_PrivateKey_file(c->ssl_ctx, key_file, SSL_FILETYPE_PEM) !=
      1) {
    take_openssl_err(c->err, key_file);
    return PX_EPROTO;
  }
  if (SSL_CTX_check_private_key(c->ssl_ctx) != 1) {
    take_openssl_err(c->err, "key does not match certificate");
    return PX_EPROTO;
  }
  c->has_cert = true;
  return 0;
}

int px_tls_context_load_ca(px_tls_context *c, const char *ca_file,
                           const char *ca_dir) {
  if (c == NULL || (ca_file == NULL && ca_dir == NULL)) return PX_EINVAL;
  c->err[0] = '\0';
  int err = ca_file != NULL ? check_readable(c, ca_file) : 0;
  if (err == 0 && ca_dir != NULL) err = check_readable(c, ca_dir);
  if (err < 0) return err;
  ERR_clear_error();
  if (SSL_CTX_load_verify_locations(c->ssl_ctx, ca_file, ca_dir) != 1) {
    take_openssl_err(c->err, ca_file != NULL ? ca_file : ca_dir);
    return PX_EPROTO;
  }
  c->ca_loaded = true;
  return 0;
}

int px_tls_context_set_verify(px_tls_context *c, bool on) {
  if (c == NULL) return PX_EINVAL;
  c->verify = on;
  return 0;
}

/* The server's choice: the first of its own names the client offered. */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg) {
  (void)ssl;
  px_tls_context *c = arg;
  unsigned char *chosen = NULL;
  if (SSL_select_next_proto(&chosen, outlen, c->alpn, (unsigned)c->alpn_len,
                            in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* RFC 7301: no_application_protocol */
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

int px_tls_context_set_alpn(px_tls_context *c, const char *const *protos,
                            size_t n) {
  if (c == NULL || (protos == NULL && n > 0)) return PX_EINVAL;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    size_t l = protos[i] == NULL ? 0 : strlen(protos[i]);
    if (l == 0 || l > 255) return PX_EINVAL;
    len += 1 + l;
  }
  if (len > 65535) return PX_EINVAL;
  unsigned char *wire = NULL;
  if (len > 0) {
    wire = px__alloc(len);
    if (wire == NULL) return PX_ENOMEM;
    unsigned char *p = wire;
    for (size_t i = 0; i < n; i++) {
      size_t l = strlen(protos[i]);
      *p++ = (unsigned char)l;
      memcpy(p, protos[i], l);
      p += l;
    }
  }
  if (c->role == PX_TLS_CLIENT) {
    /* Returns 0 on success, unlike the rest of OpenSSL. */
    if (SSL_CTX_set_alpn_protos(c->ssl_ctx, wire, (unsigned)len) != 0) {
      if (wire != NULL) px__free(wire, len);
      ERR_clear_error();
      return PX_ENOMEM;
    }
  } else {
    SSL_CTX_set_alpn_select_cb(c->ssl_ctx, len > 0 ? alpn_select : NULL, c);
  }
  if (c->alpn != NULL) px__free(c->alpn, c->alpn_len);
  c->alpn = wire;
  c->alpn_len = len;
  return 0;
}

/* ---- Streams ------------------------------------------------------------ */

static int stream_new(px_tls_context *ctx, px_stream *inner,
                      px_tls_stream **out) {
  px_tls_stream *s = px__calloc(sizeof(*s));
  if (s == NULL) return PX_ENOMEM;
  s->ssl = SSL_new(ctx->ssl_ctx);
  s->rbio = BIO_new(BIO_s_mem());
  s->wbio = BIO_new(BIO_s_mem());
  if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL ||
      pthread_mutex_init(&s->lock, NULL) != 0) {
    SSL_free(s->ssl);
    BIO_free(s->rbio);
    BIO_free(s->wbio);
    ERR_clear_error();
    px__free(s, sizeof(*s));
    return PX_ENOMEM;
  }
  /* An empty rbio means "no ciphertext yet" (retry), not end of stream: the
   * inner stream's end is tracked in eof_in. */
  BIO_set_mem_eof_return(s->rbio, -1);
  SSL_set_bio(s->ssl, s->rbio, s->wbio); /* the SSL owns both now */
  s->inner = inner;
  atomic_fetch_add(&ctx->refs, 1);
  s->ctx = ctx;
  *out = s;
  return 0;
}

static bool is_ip_literal(const char *name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name, buf) == 1 ||
         inet_pton(AF_INET6, name, buf) == 1;
}

int px_tls_client_new(px_tls_context *ctx, px_stream *inner,
                      const char *server_name, px_tls_stream **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  if (ctx == NULL || inner == NULL || ctx->role != PX_TLS_CLIENT)
    return PX_EINVAL;
  if (server_name != NULL && server_name[0] == '\0') server_name = NULL;
  if (ctx->verify && server_name == NULL) return PX_EINVAL;
  if (ctx->verify && !ctx->ca_loaded) {
    /* Loaded on first use rather than in px_tls_context_new so that a
     * context given its own CAs never trusts the system store. */
    if (SSL_CTX_set_default_verify_paths(ctx->ssl_ctx) != 1) ERR_clear_error();
    ctx->ca_loaded = true;
  }
  px_tls_stream *s;
  int err = stream_new(ctx, inner, &s);
  if (err < 0) return err;
  if (server_name != NULL) {
    size_t n = strlen(server_name) + 1;
    s->name = px__alloc(n);
    if (s->name == NULL) {
      s->inner = NULL;
      px_tls_close(s);
      return PX_ENOMEM;
    }
    memcpy(s->name, server_name, n);
  }
  SSL_set_connect_state(s->ssl);
  SSL_set_verify(s->ssl, ctx->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                 NULL);
  int ok = 1;
  if (server_name != NULL && is_ip_literal(server_name)) {
    /* RFC 6066 forbids IP addresses in SNI; they are checked against the
     * certificate's iPAddress entries instead. */
    if (ctx->verify)
      ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), server_name);
  } else if (server_name != NULL) {
    ok = SSL_set_tlsext_host_name(s->ssl, server_name) == 1 &&
         (!ctx->verify || SSL_set1_host(s->ssl, server_name) == 1);
  }
  if (!ok) {
    ERR_clear_error();
    s->inner = NULL; /* the caller keeps it on failure */
    px_tls_close(s);
    return PX_EINVAL;
  }
  *out = s;
  return 0;
}

int px_tls_server_new(px_tls_context *ctx, px_stream *inner,
                      px_tls_stream **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  if (ctx == NULL || inner == NULL || ctx->role != PX_TLS_SERVER ||
      !ctx->has_cert)
    return PX_EINVAL;
  px_tls_stream *s;
  int err = stream_new(ctx, inner, &s);
  if (err < 0) return err;
  SSL_set_accept_state(s->ssl);
  SSL_set_verify(s->ssl,
                 ctx->verify ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                             : SSL_VERIFY_NONE,
                 NULL);
  *out = s;
  return 0;
}

void px_tls_close(px_tls_stream *s) {
  if (s == NULL) return;
  /* The futures were dropped, and each drop gave its inner future back;
   * these cover a caller that closed while one was still pending. */
  if (s->rd_owner != NULL) px_future_drop(&s->rd.base);
  if (s->wr_owner != NULL) px_future_drop(&s->wr.base);
  SSL_free(s->ssl); /* frees both BIOs */
  pthread_mutex_destroy(&s->lock);
  px_tcp_close(s->inner);
  if (s->name != NULL) px__free(s->name, strlen(s->name) + 1);
  context_unref(s->ctx);
  px__free(s, sizeof(*s));
}

px_stream *px_tls_inner(px_tls_stream *s) {
  return s == NULL ? NULL : s->inner;
}

const char *px_tls_last_error(const px_tls_stream *s) {
  return s == NULL ? "" : s->err;
}

const char *px_tls_alpn(const px_tls_stream *s) {
  if (s == NULL || !s->established || s->alpn[0] == '\0') return NULL;
  return s->alpn;
}

const char *px_tls_server_name(const px_tls_stream *s) {
  if (s == NULL) return NULL;
  if (s->name != NULL) return s->name;
  return SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *px_tls_version(const px_tls_stream *s) {
  if (s == NULL || !s->established) return NULL;
  return SSL_get_version(s->ssl);
}

/* ---- Moving ciphertext -------------------------------------------------- */

/* Result of the steps below besides PX_PENDING: 0 or a negative error. */
typedef struct step {
  px_poll poll;
  int err;
} step;

static step ready(int err) {
  step r = {PX_READY, err};
  return r;
}

static int fail(px_tls_stream *s, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->err, ERR_LEN, fmt, ap);
  va_end(ap);
  s->fatal = err;
  return err;
}

/*
 * Writes everything OpenSSL queued in wbio to the inner stream. READY(0)
 * once wbio and obuf are empty.
 */
static step flush_out(px_tls_stream *s, px_tls_op *op, px_context *cx) {
  for (;;) {
    if (s->wr_owner == NULL) {
      if (s->out_off == s->out_len) {
        int n = BIO_read(s->wbio, s->obuf, sizeof s->obuf);
        if (n <= 0) return ready(0);
        s->out_off = 0;
        s->out_len = (size_t)n;
      }
      px_tcp_write_init(&s->wr, s->inner, s->obuf + s->out_off,
                        s->out_len - s->out_off);
    }
    s->wr_owner = op;
    int p = px_future_poll(&s->wr.base, cx);
    if (p == PX_PENDING) {
      step r = {PX_PENDING, 0};
      return r;
    }
    int err = p < 0 ? p : s->wr.base.error;
    uint64_t n = s->wr.base.output.u64;
    px_future_drop(&s->wr.base);
    s->wr_owner = NULL;
    if (err < 0)
      return ready(fail(s, err, "writing to the inner stream: %s",
                        px_strerror(err)));
    s->out_off += (size_t)n;
  }
}

static bool out_pending(px_tls_stream *s) {
  return s->out_off < s->out_len || BIO_ctrl_pending(s->wbio) > 0;
}

/* Reads one batch of ciphertext from the inner stream into rbio. */
static step fill_in(px_tls_stream *s, px_tls_op *op, px_context *cx) {
  if (s->rd_owner == NULL)
    px_tcp_read_init(&s->rd, s->inner, s->ibuf, sizeof s->ibuf);
  s->rd_owner = op;
  int p = px_future_poll(&s->rd.base, cx);
  if (p == PX_PENDING) {
    step r = {PX_PENDING, 0};
    return r;
  }
  int err = p < 0 ? p : s->rd.base.error;
  uint64_t n = s->rd.base.output.u64;
  px_future_drop(&s->rd.base);
  s->rd_owner = NULL;
  if (err < 0)
    return ready(
        fail(s, err, "reading from the inner stream: %s", px_strerror(err)));
  if (n == 0) {
    s->eof_in = true;
    return ready(0);
  }
  /* A memory BIO grows to hold what it is given; short only without memory. */
  if (BIO_write(s->rbio, s->ibuf, (int)n) != (int)n) {
    ERR_clear_error();
    return ready(fail(s, PX_ENOMEM, "out of memory buffering ciphertext"));
  }
  return ready(0);
}

/* Classifies a failed SSL_* call (ret = its return value); sets fatal. */
static int ssl_failure(px_tls_stream *s, int ret, const char *what) {
  int kind = SSL_get_error(s->ssl, ret);
  long verify = SSL_get_verify_result(s->ssl);
  if (kind == SSL_ERROR_SSL && verify != X509_V_OK) {
    ERR_clear_error();
    return fail(s, PX_ECERT, "certificate verify failed: %s",
                X509_verify_cert_error_string(verify));
  }
  take_openssl_err(s->err, what);
  s->fatal = PX_EPROTO;
  return PX_EPROTO;
}

/* ---- Futures ------------------------------------------------------------ */

static px_poll complete(px_tls_op *f, int err, uint64_t out) {
  f->base.error = err;
  f->base.output.u64 = out;
  return PX_READY;
}

static step handshake_step(px_tls_stream *s, px_tls_op *f, px_context *cx) {
  for (;;) {
    if (s->fatal < 0) {
      /* A failed handshake tells the peer why (an alert OpenSSL queued),
       * once, if the inner stream still takes it. */
      if (s->flush_alert) {
        int why = s->fatal;
        char text[ERR_LEN];
        memcpy(text, s->err, ERR_LEN);
        step r = flush_out(s, f, cx);
        if (r.poll == PX_PENDING) return r;
        /* A peer gone meanwhile does not change why the handshake failed. */
        s->fatal = why;
        memcpy(s->err, text, ERR_LEN);
        s->flush_alert = false;
      }
      return ready(s->fatal);
    }
    if (s->established) return ready(0);
    ERR_clear_error();
    int ret = SSL_do_handshake(s->ssl);
    int kind = ret == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, ret);
    if (ret != 1 && kind != SSL_ERROR_WANT_READ) {
      ssl_failure(s, ret, "handshake");
      s->flush_alert = true;
      continue;
    }
    /* Our flight (ClientHello, the server's certificate, Finished...) goes
     * out before we wait for the peer's. */
    step r = flush_out(s, f, cx);
    if (r.poll == PX_PENDING || r.err < 0) return r;
    if (ret == 1) {
      /* OpenSSL's copy of the name is not NUL-terminated. */
      const unsigned char *p;
      unsigned len;
      SSL_get0_alpn_selected(s->ssl, &p, &len);
      memcpy(s->alpn, p, len);
      s->alpn[len] = '\0';
      s->established = true;
      return ready(0);
    }
    if (s->eof_in) {
      fail(s, PX_ECONNRESET,
           "the peer closed the connection during the handshake");
      continue;
    }
    r = fill_in(s, f, cx);
    if (r.poll == PX_PENDING || r.err < 0) return r;
  }
}

static step read_step(px_tls_stream *s, px_tls_op *f, px_context *cx) {
  for (;;) {
    if (s->fatal < 0) return ready(s->fatal);
    ERR_clear_error();
    size_t n = 0;
    int ret = SSL_read_ex(s->ssl, f->buf, f->len, &n);
    if (ret == 1) {
      f->done = n;
      return ready(0);
    }
    int kind = SSL_get_error(s->ssl, ret);
    if (kind == SSL_ERROR_ZERO_RETURN) {
      ERR_clear_error();
      f->done = 0; /* close_notify: the clean end of stream */
      return ready(0);
    }
    if (kind != SSL_ERROR_WANT_READ)
      return ready(ssl_failure(s, ret, "read"));
    /* Reading may queue records for the peer (a TLS 1.3 key update
     * answer). Send them unless a writer is at it: the writer sends all
     * of wbio before it completes, and its waker must stay in the slot. */
    if (s->writer == NULL && out_pending(s) &&
        (s->wr_owner == NULL || s->wr_owner == f)) {
      step r = flush_out(s, f, cx);
      if (r.poll == PX_READY && r.err < 0) return r;
    }
    if (s->eof_in)
      return ready(fail(s, PX_EOF,
                        "the peer closed the connection without close_notify "
                        "(the data may be truncated)"));
    step r = fill_in(s, f, cx);
    if (r.poll == PX_PENDING || r.err < 0) return r;
  }
}

static step write_step(px_tls_stream *s, px_tls_op *f, px_context *cx) {
  for (;;) {
    if (s->fatal < 0) return ready(s->fatal);
    /* Earlier records first, then report only what went out with them. */
    step r = flush_out(s, f, cx);
    if (r.poll == PX_PENDING || r.err < 0) return r;
    if (f->done == f->len || (f->kind == OP_WRITE && f->done > 0))
      return ready(0);
    if (SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN) {
      set_err(s->err, "write after shutdown");
      return ready(PX_EPIPE);
    }
    size_t chunk = f->len - f->done;
    if (chunk > WRITE_CHUNK) chunk = WRITE_CHUNK;
    ERR_clear_error();
    size_t n = 0;
    int ret = SSL_write_ex(s->ssl, f->buf + f->done, chunk, &n);
    if (ret != 1) return ready(ssl_failure(s, ret, "write"));
    f->done += n;
  }
}

static step shutdown_step(px_tls_stream *s, px_tls_op *f, px_context *cx) {
  if (s->fatal < 0) return ready(s->fatal);
  if (!(SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN)) {
    ERR_clear_error();
    /* With memory BIOs this queues close_notify and returns 0 (the peer's
     * has not been seen) or 1; it cannot block. */
    int ret = SSL_shutdown(s->ssl);
    if (ret < 0) return ready(ssl_failure(s, ret, "shutdown"));
  }
  step r = flush_out(s, f, cx);
  if (r.poll == PX_PENDING || r.err < 0) return r;
  if (!s->inner_shut) {
    int err = px_tcp_shutdown(s->inner);
    /* A peer that already hung up has what close_notify was for. */
    if (err < 0 && err != PX_ENOTCONN) {
      set_err(s->err, "shutting down the inner stream: %s", px_strerror(err));
      return ready(err);
    }
    s->inner_shut = true;
  }
  return ready(0);
}

static px_poll op_poll(px_future *self, px_context *cx) {
  px_tls_op *f = (px_tls_op *)self;
  px_tls_stream *s = f->stream;
  if (s == NULL) return complete(f, PX_EINVAL, 0);
  if (f->kind != OP_SHUTDOWN && f->kind != OP_HANDSHAKE && f->len == 0)
    return complete(f, 0, 0);
  pthread_mutex_lock(&s->lock);
  step r;
  if (f->kind != OP_HANDSHAKE && !s->established && s->fatal == 0) {
    set_err(s->err, "the handshake has not completed");
    r = ready(PX_ENOTCONN);
  } else {
    switch (f->kind) {
      case OP_HANDSHAKE:
        r = handshake_step(s, f, cx);
        break;
      case OP_READ:
        r = read_step(s, f, cx);
        break;
      case OP_SHUTDOWN:
        s->writer = f;
        r = shutdown_step(s, f, cx);
        break;
      default:
        s->writer = f;
        r = write_step(s, f, cx);
        break;
    }
  }
  if (r.poll == PX_READY && s->writer == f) s->writer = NULL;
  pthread_mutex_unlock(&s->lock);
  if (r.poll == PX_PENDING) {
    /* A write dropped while pending reports what it had accepted. */
    if (f->kind == OP_WRITE || f->kind == OP_WRITE_ALL)
      f->base.output.u64 = f->done;
    return PX_PENDING;
  }
  return complete(f, r.err, f->kind == OP_HANDSHAKE || f->kind == OP_SHUTDOWN
                                ? 0
                                : (uint64_t)f->done);
}

/* Gives back the inner futures this operation was waiting on (both are
 * cancel-safe: a pending inner read has read nothing, a pending inner write
 * has written nothing, and obuf still holds what it was to write). */
static void op_drop(px_future *self) {
  px_tls_op *f = (px_tls_op *)self;
  px_tls_stream *s = f->stream;
  if (s == NULL) return;
  pthread_mutex_lock(&s->lock);
  if (s->rd_owner == f) {
    px_future_drop(&s->rd.base);
    s->rd_owner = NULL;
  }
  if (s->wr_owner == f) {
    px_future_drop(&s->wr.base);
    s->wr_owner = NULL;
  }
  if (s->writer == f) s->writer = NULL;
  pthread_mutex_unlock(&s->lock);
}

static const px_future_vtable op_vtable = {sizeof(px_tls_op), "tls_op",
                                           op_poll, op_drop};

static px_future *op_init(px_tls_op *f, px_tls_stream *s, int kind,
                          const void *buf, size_t len) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &op_vtable);
  /* A NULL buffer with a length is refused at the first poll, like a NULL
   * stream, so PX_AWAIT reports it instead of crashing. */
  f->stream = buf == NULL && len > 0 ? NULL : s;
  f->buf = (unsigned char *)(uintptr_t)buf;
  f->len = len;
  f->done = 0;
  f->kind = kind;
  return &f->base;
}

px_future *px_tls_handshake_init(px_tls_op *f, px_tls_stream *s) {
  return op_init(f, s, OP_HANDSHAKE, NULL, 0);
}

px_future *px_tls_read_init(px_tls_op *f, px_tls_stream *s, void *buf,
                            size_t len) {
  return op_init(f, s, OP_READ, buf, len);
}

px_future *px_tls_write_init(px_tls_op *f, px_tls_stream *s, const void *buf,
                             size_t len) {
  return op_init(f, s, OP_WRITE, buf, len);
}

px_future *px_tls_write_all_init(px_tls_op *f, px_tls_stream *s,
                                 const void *buf, size_t len) {
  return op_init(f, s, OP_WRITE_ALL, buf, len);
}

px_future *px_tls_shutdown_init(px_tls_op *f, px_tls_stream *s) {
  return op_init(f, s, OP_SHUTDOWN, NULL, 0);
}
