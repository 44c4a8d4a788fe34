/*
 * The stream interface's checked poll helpers and the futures that drive
 * any px_stream (pollux/stream.h). Nothing here knows a transport: a
 * descriptor, a TLS session or a user's stream all come through ops.
 */
#include <stdint.h>

#include "api/internal/px_internal.h"
#include "pollux/net.h"
#include "pollux/stream.h"

/* A stream whose ops table is missing the function a call needs is as bad
 * as a NULL one: calling through it would crash. Each call checks what it
 * calls (reads and writes come on every poll of every connection, so they
 * pay for their own function, not the whole table). */
static int usable(const px_stream *s) {
  return s != NULL && s->ops != NULL && s->ops->poll_read != NULL &&
         s->ops->poll_write != NULL && s->ops->close != NULL;
}

static int can_read(const px_stream *s) {
  return s != NULL && s->ops != NULL && s->ops->poll_read != NULL;
}

static int can_write(const px_stream *s) {
  return s != NULL && s->ops != NULL && s->ops->poll_write != NULL;
}

/* An implementation's answer outside the protocol is its bug; report it as
 * an I/O error rather than let a wrong count index past a buffer. */
static int checked(int r, size_t len, const size_t *n) {
  if (r < 0) return r;
  if (r == PX_PENDING) return PX_PENDING;
  if (r != PX_READY || *n > len) return PX_EIO;
  return PX_READY;
}

/* A read or write whose arguments passed the checks. The futures below
 * check theirs once, at init, and come straight here on every poll (a
 * connection polls its read twice and its write once per request). */
__attribute__((always_inline)) static inline int read_checked(
    px_stream *s, px_context *cx, void *buf, size_t len, size_t *n) {
  *n = 0;
  /* A zero-length read would be indistinguishable from end of stream. */
  if (len == 0) return PX_READY;
  return checked(s->ops->poll_read(s, cx, buf, len, n), len, n);
}

__attribute__((always_inline)) static inline int write_checked(
    px_stream *s, px_context *cx, const void *buf, size_t len, size_t *n) {
  *n = 0;
  if (len == 0) return PX_READY;
  int r = checked(s->ops->poll_write(s, cx, buf, len, n), len, n);
  /* tokio's WriteZero: a write that moves nothing would loop forever. */
  if (r == PX_READY && *n == 0) return PX_EIO;
  return r;
}

int px_stream_poll_read(px_stream *s, px_context *cx, void *buf, size_t len,
                        size_t *n) {
  if (n == NULL) return PX_EINVAL;
  *n = 0;
  if (!can_read(s) || cx == NULL || (buf == NULL && len > 0)) return PX_EINVAL;
  return read_checked(s, cx, buf, len, n);
}

int px_stream_poll_write(px_stream *s, px_context *cx, const void *buf,
                         size_t len, size_t *n) {
  if (n == NULL) return PX_EINVAL;
  *n = 0;
  if (!can_write(s) || cx == NULL || (buf == NULL && len > 0)) return PX_EINVAL;
  return write_checked(s, cx, buf, len, n);
}

int px_stream_poll_flush(px_stream *s, px_context *cx) {
  if (!usable(s) || cx == NULL) return PX_EINVAL;
  if (s->ops->poll_flush == NULL) return PX_READY;
  int r = s->ops->poll_flush(s, cx);
  return r < 0 || r == PX_PENDING || r == PX_READY ? r : PX_EIO;
}

int px_stream_poll_shutdown(px_stream *s, px_context *cx) {
  if (!usable(s) || cx == NULL) return PX_EINVAL;
  if (s->ops->poll_shutdown == NULL) return PX_ENOTSUP;
  int r = s->ops->poll_shutdown(s, cx);
  return r < 0 || r == PX_PENDING || r == PX_READY ? r : PX_EIO;
}

void px_stream_cancel(px_stream *s, px_stream_dir dir) {
  if (s != NULL && s->ops != NULL && s->ops->cancel != NULL)
    s->ops->cancel(s, dir);
}

void px_stream_close(px_stream *s) {
  if (s != NULL && s->ops != NULL && s->ops->close != NULL) s->ops->close(s);
}

/* ---- Futures -------------------------------------------------------- */

/* OP_INVALID: init found the arguments bad (a NULL stream, one without the
 * function the operation needs, a NULL buffer with len > 0); the first poll
 * says PX_EINVAL, as px_stream_poll_read and _write would. */
enum { OP_READ, OP_WRITE, OP_WRITE_ALL, OP_FLUSH, OP_SHUTDOWN, OP_INVALID };

static px_poll finish(px_stream_io *f, int r) {
  f->waiting = (r == PX_PENDING);
  if (r == PX_PENDING) return PX_PENDING;
  f->base.error = r < 0 ? r : 0;
  return PX_READY;
}

/* One step of the operation: PX_READY, PX_PENDING or an error. */
static int step(px_stream_io *f, px_context *cx) {
  px_stream *s = f->stream;
  size_t n = 0;
  int r;
  switch (f->op) {
    case OP_READ:
      r = read_checked(s, cx, f->buf, f->len, &n);
      if (r == PX_READY) f->base.output.u64 = n;
      return r;
    case OP_WRITE:
      r = write_checked(s, cx, f->buf, f->len, &n);
      if (r == PX_READY) f->base.output.u64 = n;
      return r;
    case OP_WRITE_ALL:
      while (f->done < f->len) {
        r = write_checked(s, cx, f->buf + f->done, f->len - f->done, &n);
        if (r != PX_READY) return r;
        f->done += n;
        /* Kept up to date even if a later chunk fails, so a write_all that
         * ends in an error still says how much went out. */
        f->base.output.u64 = f->done;
      }
      return PX_READY;
    case OP_FLUSH:
      return px_stream_poll_flush(s, cx);
    case OP_SHUTDOWN:
      return px_stream_poll_shutdown(s, cx);
    default:
      return PX_EINVAL;
  }
}

static px_poll io_poll(px_future *self, px_context *cx) {
  px_stream_io *f = (px_stream_io *)self;
  /* One budget unit per operation, also when a buffered or TLS stream
   * serves it from memory without reaching the socket's leaf. */
  int mark;
  if (cx == NULL) return finish(f, PX_EINVAL); /* vt->poll called directly */
  if (!px__coop_enter(cx, &mark)) return PX_PENDING;
  int r = step(f, cx);
  px__coop_leave(mark, r != PX_PENDING);
  return finish(f, r);
}

static void io_drop(px_future *self) {
  px_stream_io *f = (px_stream_io *)self;
  /* Only a pending operation can have left a waker with the stream. */
  if (!f->waiting) return;
  f->waiting = 0;
  px_stream_cancel(f->stream,
                   f->op == OP_READ ? PX_STREAM_READ : PX_STREAM_WRITE);
}

static const px_future_vtable read_vtable = {sizeof(px_stream_io),
                                             "stream_read", io_poll, io_drop};
static const px_future_vtable write_vtable = {
    sizeof(px_stream_io), "stream_write", io_poll, io_drop};
static const px_future_vtable write_all_vtable = {
    sizeof(px_stream_io), "stream_write_all", io_poll, io_drop};
static const px_future_vtable flush_vtable = {
    sizeof(px_stream_io), "stream_flush", io_poll, io_drop};
static const px_future_vtable shutdown_vtable = {
    sizeof(px_stream_io), "stream_shutdown", io_poll, io_drop};

static px_future *io_init(px_stream_io *f, const px_future_vtable *vt, int op,
                          px_stream *s, const void *buf, size_t len) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, vt);
  f->stream = s;
  /* One buffer field serves both directions; writes never store into it. */
  f->buf = (unsigned char *)(uintptr_t)buf;
  f->len = len;
  f->done = 0;
  f->op = op;
  f->waiting = 0;
  /* Reads and writes are checked here, once (see read_checked); flush and
   * shutdown, rare, go through their checked calls on each poll. */
  if ((op == OP_READ && !can_read(s)) ||
      ((op == OP_WRITE || op == OP_WRITE_ALL) && !can_write(s)) ||
      (buf == NULL && len > 0))
    f->op = OP_INVALID;
  return &f->base;
}

px_future *px_stream_read_init(px_stream_io *f, px_stream *s, void *buf,
                               size_t len) {
  return io_init(f, &read_vtable, OP_READ, s, buf, len);
}

px_future *px_stream_write_init(px_stream_io *f, px_stream *s,
                                const void *buf, size_t len) {
  return io_init(f, &write_vtable, OP_WRITE, s, buf, len);
}

px_future *px_stream_write_all_init(px_stream_io *f, px_stream *s,
                                    const void *buf, size_t len) {
  return io_init(f, &write_all_vtable, OP_WRITE_ALL, s, buf, len);
}

px_future *px_stream_flush_init(px_stream_io *f, px_stream *s) {
  return io_init(f, &flush_vtable, OP_FLUSH, s, NULL, 0);
}

px_future *px_stream_shutdown_init(px_stream_io *f, px_stream *s) {
  return io_init(f, &shutdown_vtable, OP_SHUTDOWN, s, NULL, 0);
}

/* The historical TCP names (pollux/net.h) are the same futures. */

px_future *px_tcp_read_init(px_stream_io *f, px_stream *s, void *buf,
                            size_t len) {
  return px_stream_read_init(f, s, buf, len);
}

px_future *px_tcp_write_init(px_stream_io *f, px_stream *s, const void *buf,
                             size_t len) {
  return px_stream_write_init(f, s, buf, len);
}

px_future *px_tcp_write_all_init(px_stream_io *f, px_stream *s,
                                 const void *buf, size_t len) {
  return px_stream_write_all_init(f, s, buf, len);
}

void px_tcp_close(px_stream *s) { px_stream_close(s); }
