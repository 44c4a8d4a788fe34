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

#include "api/internal/px_internal.h"
#include "pollux/stream.h"
#include "pollux/tls.h"
#include "pollux/waker.h"

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

/* Who left a waker in one direction of the inner stream. */
enum { OWNER_NONE = 0, OWNER_READ, OWNER_WRITE, OWNER_HANDSHAKE };

typedef struct tls_stream {
  px_stream base;       /* first: a TLS stream is a px_stream */
  pthread_mutex_t lock; /* OpenSSL's SSL object is not thread-safe */
  px_tls_context *ctx;
  px_stream *inner;
  SSL *ssl;
  BIO *rbio; /* network -> OpenSSL */
  BIO *wbio; /* OpenSSL -> network */
  int fatal; /* sticky error once OpenSSL or the inner stream failed */
  bool flush_alert; /* a failed handshake still owes the peer its alert */
  bool established; /* the handshake completed */
  bool eof_in;      /* the inner stream reached end of stream */
  bool inner_shut;  /* the inner write side was shut down */
  int rd_owner;     /* OWNER_*: pending on the inner read */
  int wr_owner;     /* OWNER_*: pending on the inner write */
  px_waker reader;  /* a pending read's waker, for records left behind */
  size_t out_off, out_len; /* obuf[out_off, out_len) is owed to inner */
  char *name;              /* server_name given to a client */
  char alpn[256];          /* the agreed ALPN protocol, NUL-terminated */
  char err[ERR_LEN];
  unsigned char ibuf[CIPHER_BUF];
  unsigned char obuf[CIPHER_BUF];
} tls_stream;

static const px_stream_ops tls_ops;

static tls_stream *tls_of(const px_stream *s) {
  if (s == NULL || s->ops != &tls_ops) return NULL;
  return (tls_stream *)(uintptr_t)s;
}

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
                      tls_stream **out) {
  tls_stream *s = px__calloc(sizeof(*s));
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
  s->base.ops = &tls_ops;
  s->inner = inner;
  atomic_fetch_add(&ctx->refs, 1);
  s->ctx = ctx;
  *out = s;
  return 0;
}

/* Frees a stream; `inner` is closed only if the stream owns it by now. */
static void stream_free(tls_stream *s, bool close_inner) {
  px_waker_drop(&s->reader);
  SSL_free(s->ssl); /* frees both BIOs */
  pthread_mutex_destroy(&s->lock);
  if (close_inner) px_stream_close(s->inner);
  if (s->name != NULL) px__free(s->name, strlen(s->name) + 1);
  context_unref(s->ctx);
  px__free(s, sizeof(*s));
}

static bool is_ip_literal(const char *name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name, buf) == 1 ||
         inet_pton(AF_INET6, name, buf) == 1;
}

int px_tls_client_new(px_tls_context *ctx, px_stream *inner,
                      const char *server_name, px_stream **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  if (ctx == NULL || inner == NULL || inner->ops == NULL ||
      ctx->role != PX_TLS_CLIENT)
    return PX_EINVAL;
  if (server_name != NULL && server_name[0] == '\0') server_name = NULL;
  if (ctx->verify && server_name == NULL) return PX_EINVAL;
  if (ctx->verify && !ctx->ca_loaded) {
    /* Loaded on first use rather than in px_tls_context_new so that a
     * context given its own CAs never trusts the system store. */
    if (SSL_CTX_set_default_verify_paths(ctx->ssl_ctx) != 1) ERR_clear_error();
    ctx->ca_loaded = true;
  }
  tls_stream *s;
  int err = stream_new(ctx, inner, &s);
  if (err < 0) return err;
  if (server_name != NULL) {
    size_t n = strlen(server_name) + 1;
    s->name = px__alloc(n);
    if (s->name == NULL) {
      stream_free(s, false);
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
    stream_free(s, false); /* the caller keeps inner on failure */
    return PX_EINVAL;
  }
  *out = &s->base;
  return 0;
}

int px_tls_server_new(px_tls_context *ctx, px_stream *inner,
                      px_stream **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  if (ctx == NULL || inner == NULL || inner->ops == NULL ||
      ctx->role != PX_TLS_SERVER || !ctx->has_cert)
    return PX_EINVAL;
  tls_stream *s;
  int err = stream_new(ctx, inner, &s);
  if (err < 0) return err;
  SSL_set_accept_state(s->ssl);
  SSL_set_verify(s->ssl,
                 ctx->verify ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                             : SSL_VERIFY_NONE,
                 NULL);
  *out = &s->base;
  return 0;
}

bool px_tls_is_tls(const px_stream *s) { return tls_of(s) != NULL; }

px_stream *px_tls_inner(px_stream *s) {
  tls_stream *t = tls_of(s);
  return t == NULL ? NULL : t->inner;
}

const char *px_tls_last_error(const px_stream *s) {
  tls_stream *t = tls_of(s);
  return t == NULL ? "" : t->err;
}

const char *px_tls_alpn(const px_stream *s) {
  tls_stream *t = tls_of(s);
  if (t == NULL || !t->established || t->alpn[0] == '\0') return NULL;
  return t->alpn;
}

const char *px_tls_server_name(const px_stream *s) {
  tls_stream *t = tls_of(s);
  if (t == NULL) return NULL;
  if (t->name != NULL) return t->name;
  return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *px_tls_version(const px_stream *s) {
  tls_stream *t = tls_of(s);
  if (t == NULL || !t->established) return NULL;
  return SSL_get_version(t->ssl);
}

/* ---- Moving ciphertext -------------------------------------------------- */

static int fail(tls_stream *s, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->err, ERR_LEN, fmt, ap);
  va_end(ap);
  s->fatal = err;
  return err;
}

static bool out_pending(tls_stream *s) {
  return s->out_off < s->out_len || BIO_ctrl_pending(s->wbio) > 0;
}

/*
 * Writes everything OpenSSL queued in wbio to the inner stream, for
 * `owner`. PX_READY once wbio and obuf are empty, PX_PENDING (the inner
 * write holds owner's waker), or an error.
 */
static int flush_out(tls_stream *s, px_context *cx, int owner) {
  for (;;) {
    if (s->out_off == s->out_len) {
      int n = BIO_read(s->wbio, s->obuf, sizeof s->obuf);
      if (n <= 0) return PX_READY;
      s->out_off = 0;
      s->out_len = (size_t)n;
    }
    size_t n = 0;
    int r = px_stream_poll_write(s->inner, cx, s->obuf + s->out_off,
                                 s->out_len - s->out_off, &n);
    if (r == PX_PENDING) {
      s->wr_owner = owner;
      return PX_PENDING;
    }
    s->wr_owner = OWNER_NONE;
    if (r < 0)
      return fail(s, r, "writing to the inner stream: %s", px_strerror(r));
    s->out_off += n;
  }
}

/* Reads one batch of ciphertext from the inner stream into rbio. */
static int fill_in(tls_stream *s, px_context *cx, int owner) {
  size_t n = 0;
  int r = px_stream_poll_read(s->inner, cx, s->ibuf, sizeof s->ibuf, &n);
  if (r == PX_PENDING) {
    s->rd_owner = owner;
    return PX_PENDING;
  }
  s->rd_owner = OWNER_NONE;
  if (r < 0)
    return fail(s, r, "reading from the inner stream: %s", px_strerror(r));
  if (n == 0) {
    s->eof_in = true;
    return PX_READY;
  }
  /* A memory BIO grows to hold what it is given; short only without memory. */
  if (BIO_write(s->rbio, s->ibuf, (int)n) != (int)n) {
    ERR_clear_error();
    return fail(s, PX_ENOMEM, "out of memory buffering ciphertext");
  }
  return PX_READY;
}

/* Classifies a failed SSL_* call (ret = its return value); sets fatal. */
static int ssl_failure(tls_stream *s, int ret, const char *what) {
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

/* Cancels what `owner` left pending in the inner stream. */
static void cancel_owner(tls_stream *s, int owner) {
  if (s->rd_owner == owner) {
    px_stream_cancel(s->inner, PX_STREAM_READ);
    s->rd_owner = OWNER_NONE;
  }
  if (s->wr_owner == owner) {
    px_stream_cancel(s->inner, PX_STREAM_WRITE);
    s->wr_owner = OWNER_NONE;
  }
}

/* ---- The handshake ------------------------------------------------------ */

static int handshake_step(tls_stream *s, px_context *cx) {
  for (;;) {
    if (s->fatal < 0) {
      /* A failed handshake tells the peer why (an alert OpenSSL queued),
       * once, if the inner stream still takes it. */
      if (s->flush_alert) {
        int why = s->fatal;
        char text[ERR_LEN];
        memcpy(text, s->err, ERR_LEN);
        if (flush_out(s, cx, OWNER_HANDSHAKE) == PX_PENDING) return PX_PENDING;
        /* A peer gone meanwhile does not change why the handshake failed. */
        s->fatal = why;
        memcpy(s->err, text, ERR_LEN);
        s->flush_alert = false;
      }
      return s->fatal;
    }
    if (s->established) return PX_READY;
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
    int r = flush_out(s, cx, OWNER_HANDSHAKE);
    if (r != PX_READY) return r;
    if (ret == 1) {
      /* OpenSSL's copy of the name is not NUL-terminated. */
      const unsigned char *p;
      unsigned len;
      SSL_get0_alpn_selected(s->ssl, &p, &len);
      if (len > 0) memcpy(s->alpn, p, len); /* p is NULL without ALPN */
      s->alpn[len] = '\0';
      s->established = true;
      return PX_READY;
    }
    if (s->eof_in) {
      fail(s, PX_ECONNRESET,
           "the peer closed the connection during the handshake");
      continue;
    }
    r = fill_in(s, cx, OWNER_HANDSHAKE);
    if (r != PX_READY) return r;
  }
}

static px_poll handshake_poll(px_future *self, px_context *cx) {
  px_tls_handshake *f = (px_tls_handshake *)self;
  tls_stream *s = tls_of(f->stream);
  int r = PX_EINVAL;
  if (s != NULL) {
    pthread_mutex_lock(&s->lock);
    r = handshake_step(s, cx);
    pthread_mutex_unlock(&s->lock);
  }
  f->waiting = r == PX_PENDING;
  if (r == PX_PENDING) return PX_PENDING;
  self->error = r < 0 ? r : 0;
  return PX_READY;
}

static void handshake_drop(px_future *self) {
  px_tls_handshake *f = (px_tls_handshake *)self;
  tls_stream *s = tls_of(f->stream);
  if (s == NULL || !f->waiting) return;
  f->waiting = 0;
  pthread_mutex_lock(&s->lock);
  cancel_owner(s, OWNER_HANDSHAKE);
  pthread_mutex_unlock(&s->lock);
}

static const px_future_vtable handshake_vtable = {
    sizeof(px_tls_handshake), "tls_handshake", handshake_poll, handshake_drop};

px_future *px_tls_handshake_init(px_tls_handshake *f, px_stream *s) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &handshake_vtable);
  f->stream = s;
  f->waiting = 0;
  return &f->base;
}

/* ---- The stream's poll functions ---------------------------------------- */

/* The checks every operation but the handshake makes: PX_READY to go on,
 * or the error to report. */
static int usable(tls_stream *s) {
  if (s->fatal < 0) return s->fatal;
  if (!s->established) {
    set_err(s->err, "the handshake has not completed");
    return PX_ENOTCONN;
  }
  return PX_READY;
}

static int read_step(tls_stream *s, px_context *cx, void *buf, size_t len,
                     size_t *n) {
  for (;;) {
    ERR_clear_error();
    int ret = SSL_read_ex(s->ssl, buf, len, n);
    if (ret == 1) return PX_READY;
    int kind = SSL_get_error(s->ssl, ret);
    if (kind == SSL_ERROR_ZERO_RETURN) {
      ERR_clear_error();
      *n = 0; /* close_notify: the clean end of stream */
      return PX_READY;
    }
    if (kind != SSL_ERROR_WANT_READ) return ssl_failure(s, ret, "read");
    /* Records a write left behind (or that reading queued: a TLS 1.3 key
     * update answer) go out while we wait, unless a pending write is at it
     * with its own waker. */
    if (out_pending(s) && s->wr_owner != OWNER_WRITE) {
      int r = flush_out(s, cx, OWNER_READ);
      if (r < 0) return r;
    }
    if (s->eof_in)
      return fail(s, PX_EOF,
                  "the peer closed the connection without close_notify "
                  "(the data may be truncated)");
    int r = fill_in(s, cx, OWNER_READ);
    if (r != PX_READY) return r;
  }
}

static int tls_poll_read(px_stream *self, px_context *cx, void *buf,
                         size_t len, size_t *n) {
  tls_stream *s = (tls_stream *)self;
  pthread_mutex_lock(&s->lock);
  int r = usable(s);
  if (r == PX_READY) r = read_step(s, cx, buf, len, n);
  /* Kept while pending, so a write that leaves records behind can wake us
   * to send them. */
  if (r == PX_PENDING) {
    px_waker_set(&s->reader, cx->waker);
  } else {
    px_waker_drop(&s->reader);
    /* Done: no cancel will come, so a flush this read left pending gives
     * its waker back now (the next operation sends the rest). */
    if (s->wr_owner == OWNER_READ) cancel_owner(s, OWNER_READ);
  }
  pthread_mutex_unlock(&s->lock);
  return r;
}

static int tls_poll_write(px_stream *self, px_context *cx, const void *buf,
                          size_t len, size_t *n) {
  tls_stream *s = (tls_stream *)self;
  pthread_mutex_lock(&s->lock);
  int r = usable(s);
  if (r == PX_READY && (SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN)) {
    set_err(s->err, "write after shutdown");
    r = PX_EPIPE;
  }
  /* Earlier records first: that is the backpressure that keeps wbio from
   * growing without bound when the peer does not read. */
  if (r == PX_READY) r = flush_out(s, cx, OWNER_WRITE);
  if (r == PX_READY) {
    size_t chunk = len < WRITE_CHUNK ? len : WRITE_CHUNK;
    ERR_clear_error();
    int ret = SSL_write_ex(s->ssl, buf, chunk, n);
    if (ret != 1) {
      r = ssl_failure(s, ret, "write");
    } else if (flush_out(s, cx, OWNER_WRITE) == PX_PENDING) {
      /* The bytes are taken (READY), so no cancel will come for this
       * poll: hand the inner write back, and let a pending read (which may
       * be what the peer's answer will wake) send the rest. */
      cancel_owner(s, OWNER_WRITE);
      if (!px_waker_is_empty(&s->reader)) px_waker_wake_by_ref(&s->reader);
    }
    /* A flush error is sticky (fatal) and reported by the next call; these
     * bytes were taken either way. */
  }
  pthread_mutex_unlock(&s->lock);
  return r;
}

static int tls_poll_flush(px_stream *self, px_context *cx) {
  tls_stream *s = (tls_stream *)self;
  pthread_mutex_lock(&s->lock);
  int r = usable(s);
  if (r == PX_READY) r = flush_out(s, cx, OWNER_WRITE);
  pthread_mutex_unlock(&s->lock);
  return r;
}

static int shutdown_step(tls_stream *s, px_context *cx) {
  if (!(SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN)) {
    ERR_clear_error();
    /* With memory BIOs this queues close_notify and returns 0 (the peer's
     * has not been seen) or 1; it cannot block. */
    int ret = SSL_shutdown(s->ssl);
    if (ret < 0) return ssl_failure(s, ret, "shutdown");
  }
  int r = flush_out(s, cx, OWNER_WRITE);
  if (r != PX_READY || s->inner_shut) return r;
  r = px_stream_poll_shutdown(s->inner, cx);
  if (r == PX_PENDING) {
    s->wr_owner = OWNER_WRITE;
    return r;
  }
  s->wr_owner = OWNER_NONE;
  /* A pipe has no write side to end, and a peer that already hung up has
   * what close_notify was for. */
  if (r < 0 && r != PX_ENOTSUP && r != PX_ENOTCONN) {
    set_err(s->err, "shutting down the inner stream: %s", px_strerror(r));
    return r;
  }
  s->inner_shut = true;
  return PX_READY;
}

static int tls_poll_shutdown(px_stream *self, px_context *cx) {
  tls_stream *s = (tls_stream *)self;
  pthread_mutex_lock(&s->lock);
  int r = usable(s);
  if (r == PX_READY) r = shutdown_step(s, cx);
  pthread_mutex_unlock(&s->lock);
  return r;
}

static void tls_cancel(px_stream *self, px_stream_dir dir) {
  tls_stream *s = (tls_stream *)self;
  pthread_mutex_lock(&s->lock);
  if (dir == PX_STREAM_READ) {
    cancel_owner(s, OWNER_READ);
    px_waker_drop(&s->reader);
  } else {
    cancel_owner(s, OWNER_WRITE);
  }
  pthread_mutex_unlock(&s->lock);
}

/* No future uses the stream any more, so nothing is pending inside it. */
static void tls_close(px_stream *self) { stream_free((tls_stream *)self, true); }

static const px_stream_ops tls_ops = {
    "tls",          tls_poll_read,     tls_poll_write, tls_poll_flush,
    tls_poll_shutdown, tls_cancel, tls_close};
