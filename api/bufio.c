/*
 * Buffered readers and writers and length-prefixed frames over any
 * px_stream (pollux/bufio.h).
 *
 * The reader's cancel safety comes from one rule: an operation consumes
 * (advances pos) only in the poll that completes it. Until then it only
 * fills the buffer and scans, and filled bytes belong to the reader, not
 * to the operation, so a dropped operation leaves them for the next one.
 */
#include <stdint.h>
#include <string.h>

#include "api/internal/px_internal.h"
#include "pollux/bufio.h"

/* ---- Reader ----------------------------------------------------------- */

struct px_buf_reader {
  px_stream base; /* ops == &reader_ops */
  px_stream *inner;
  unsigned char *buf; /* NULL until the first fill */
  size_t cap;
  size_t pos; /* first unconsumed byte */
  size_t end; /* one past the last buffered byte */
};

static size_t avail(const px_buf_reader *r) { return r->end - r->pos; }

static void consume(px_buf_reader *r, size_t n) {
  r->pos += n;
  /* An empty buffer restarts at 0, so the next fill has all of it. */
  if (r->pos == r->end) r->pos = r->end = 0;
}

/*
 * Reads more from inner into the free space (moving the unconsumed bytes
 * to the front first when the tail is full). PX_READY with *n = bytes
 * added (0: end of stream), PX_PENDING, or an error. Never called with a
 * full buffer.
 */
static int fill(px_buf_reader *r, px_context *cx, size_t *n) {
  *n = 0;
  if (r->buf == NULL) {
    r->buf = px__alloc(r->cap);
    if (r->buf == NULL) return PX_ENOMEM;
  }
  if (r->end == r->cap && r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, avail(r));
    r->end -= r->pos;
    r->pos = 0;
  }
  int rc = px_stream_poll_read(r->inner, cx, r->buf + r->end, r->cap - r->end,
                               n);
  if (rc == PX_READY) r->end += *n;
  return rc;
}

static int reader_poll_read(px_stream *self, px_context *cx, void *buf,
                            size_t len, size_t *n) {
  px_buf_reader *r = (px_buf_reader *)self;
  if (avail(r) == 0) {
    /* Nothing buffered and the caller wants at least a buffer's worth:
     * copying through the buffer would only cost a memcpy. */
    if (len >= r->cap) return px_stream_poll_read(r->inner, cx, buf, len, n);
    size_t got;
    int rc = fill(r, cx, &got);
    if (rc != PX_READY) return rc;
    if (got == 0) {
      *n = 0;
      return PX_READY;
    }
  }
  *n = len < avail(r) ? len : avail(r);
  memcpy(buf, r->buf + r->pos, *n);
  consume(r, *n);
  return PX_READY;
}

/* The other direction passes straight through. */
static int reader_poll_write(px_stream *self, px_context *cx, const void *buf,
                             size_t len, size_t *n) {
  return px_stream_poll_write(((px_buf_reader *)self)->inner, cx, buf, len, n);
}

static int reader_poll_flush(px_stream *self, px_context *cx) {
  return px_stream_poll_flush(((px_buf_reader *)self)->inner, cx);
}

static int reader_poll_shutdown(px_stream *self, px_context *cx) {
  return px_stream_poll_shutdown(((px_buf_reader *)self)->inner, cx);
}

/* Every waker a reader's operation leaves is the inner stream's. */
static void reader_cancel(px_stream *self, px_stream_dir dir) {
  px_stream_cancel(((px_buf_reader *)self)->inner, dir);
}

static void reader_close(px_stream *self) {
  px_buf_reader *r = (px_buf_reader *)self;
  px_stream_close(r->inner);
  if (r->buf != NULL) px__free(r->buf, r->cap);
  px__free(r, sizeof(*r));
}

static const px_stream_ops reader_ops = {
    "buf_reader",      reader_poll_read,     reader_poll_write,
    reader_poll_flush, reader_poll_shutdown, reader_cancel,
    reader_close};

/* Shared by reader and writer: the capacity check and the default. */
static int capacity_of(size_t requested, size_t *cap) {
  if (requested > PX_BUF_MAX_CAPACITY) return PX_EINVAL;
  *cap = requested == 0 ? PX_BUF_DEFAULT_CAPACITY : requested;
  return 0;
}

int px_buf_reader_new(px_stream *inner, size_t capacity, px_buf_reader **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  size_t cap;
  if (inner == NULL || capacity_of(capacity, &cap) < 0) return PX_EINVAL;
  px_buf_reader *r = px__alloc(sizeof(*r));
  if (r == NULL) return PX_ENOMEM;
  memset(r, 0, sizeof(*r));
  r->base.ops = &reader_ops;
  r->inner = inner;
  r->cap = cap;
  *out = r;
  return 0;
}

px_stream *px_buf_reader_stream(px_buf_reader *r) {
  return r == NULL ? NULL : &r->base;
}

px_stream *px_buf_reader_inner(px_buf_reader *r) {
  return r == NULL ? NULL : r->inner;
}

size_t px_buf_reader_buffered(const px_buf_reader *r) {
  return r == NULL ? 0 : avail(r);
}

const void *px_buf_reader_peek(const px_buf_reader *r, size_t *len) {
  if (len != NULL) *len = 0;
  if (r == NULL || len == NULL || avail(r) == 0) return NULL;
  *len = avail(r);
  return r->buf + r->pos;
}

int px_buf_reader_consume(px_buf_reader *r, size_t n) {
  if (r == NULL || n > avail(r)) return PX_EINVAL;
  consume(r, n);
  return 0;
}

void px_buf_reader_close(px_buf_reader *r) {
  if (r != NULL) px_stream_close(&r->base);
}

/* ---- Reader operations ---------------------------------------------- */

enum { OP_UNTIL, OP_LINE, OP_EXACT, OP_FRAME };

/* Copies n buffered bytes out and consumes them: the completing step. */
static void take(px_buf_reader *r, unsigned char *out, size_t n) {
  if (n > 0) memcpy(out, r->buf + r->pos, n);
  consume(r, n);
}

/* read_until / read_line. f->done counts bytes already scanned. */
static int step_until(px_buf_io *f, px_context *cx) {
  px_buf_reader *r = f->reader;
  size_t limit = f->op == OP_LINE ? f->cap - 1 : f->cap;
  if (limit > r->cap) limit = r->cap;
  for (;;) {
    size_t scan = avail(r) < limit ? avail(r) : limit;
    if (scan > f->done) {
      unsigned char *hit =
          memchr(r->buf + r->pos + f->done, f->delim, scan - f->done);
      if (hit != NULL) {
        size_t n = (size_t)(hit - (r->buf + r->pos)) + 1;
        take(r, f->out, n);
        f->base.output.u64 = n;
        if (f->op == OP_LINE) f->out[n] = '\0';
        return PX_READY;
      }
      f->done = scan;
    }
    /* No delimiter within the limit: refuse rather than grow. */
    if (avail(r) >= limit) return PX_EMSGSIZE;
    size_t got;
    int rc = fill(r, cx, &got);
    if (rc != PX_READY) return rc;
    if (got == 0) {
      /* End of stream: what is left is the last, unterminated record. */
      size_t n = avail(r);
      take(r, f->out, n);
      f->base.output.u64 = n;
      if (f->op == OP_LINE) f->out[n] = '\0';
      return PX_READY;
    }
  }
}

/* A frame's stages: header not read, header read (still buffered), header
 * consumed (the payload is being copied piecewise). */
enum { FRAME_HEADER, FRAME_PARSED, FRAME_PAYLOAD };

/*
 * Stores f->want bytes at f->out + f->done.. . Whole (cancel-safe) when
 * they fit the buffer: wait until all are buffered, then take them at
 * once. Otherwise piecewise, f->done counting what is already copied, with
 * large remainders read straight into the caller's memory. A parsed frame
 * header still in the buffer is consumed along with the payload. `eof` is
 * the error for a stream that ends first.
 */
static int step_exact(px_buf_io *f, px_context *cx, int eof) {
  px_buf_reader *r = f->reader;
  size_t skip = f->stage == FRAME_PARSED ? 4 : 0;
  if (f->done == 0 && skip + f->want <= r->cap) {
    while (avail(r) < skip + f->want) {
      size_t got;
      int rc = fill(r, cx, &got);
      if (rc != PX_READY) return rc;
      if (got == 0) return eof;
    }
    consume(r, skip);
    take(r, f->out, f->want);
    f->done = f->want;
    return PX_READY;
  }
  if (skip > 0) {
    consume(r, skip);
    f->stage = FRAME_PAYLOAD;
  }
  while (f->done < f->want) {
    size_t left = f->want - f->done;
    if (avail(r) > 0) {
      size_t n = left < avail(r) ? left : avail(r);
      take(r, f->out + f->done, n);
      f->done += n;
      continue;
    }
    size_t got;
    int rc = left >= r->cap ? px_stream_poll_read(r->inner, cx,
                                                  f->out + f->done, left, &got)
                            : fill(r, cx, &got);
    if (rc != PX_READY) return rc;
    if (got == 0) return eof;
    if (left >= r->cap) f->done += got;
  }
  return PX_READY;
}

static int step_frame(px_buf_io *f, px_context *cx) {
  px_buf_reader *r = f->reader;
  if (f->stage == FRAME_HEADER) {
    while (avail(r) < 4) {
      size_t got;
      int rc = fill(r, cx, &got);
      if (rc != PX_READY) return rc;
      if (got == 0) return avail(r) == 0 ? PX_EOF : PX_EIO;
    }
    const unsigned char *h = r->buf + r->pos;
    size_t len = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) |
                 ((size_t)h[2] << 8) | (size_t)h[3];
    /* Checked before a byte of payload is read: a hostile header cannot
     * make us allocate or wait for gigabytes. */
    if (len > f->max || len > f->cap) return PX_EMSGSIZE;
    f->want = len;
    f->stage = FRAME_PARSED;
  }
  int rc = step_exact(f, cx, PX_EIO);
  if (rc == PX_READY) f->base.output.u64 = f->want;
  return rc;
}

static px_poll buf_io_poll(px_future *self, px_context *cx) {
  px_buf_io *f = (px_buf_io *)self;
  /* A line already in the buffer completes without reaching the stream's
   * own leaf: it must spend the budget all the same (tokio's coop). */
  int mark;
  if (!px__coop_enter(cx, &mark)) return PX_PENDING;
  int rc;
  if (f->reader == NULL || (f->out == NULL && f->cap > 0) ||
      (f->op == OP_LINE && f->cap == 0) || f->delim < 0 || f->delim > 255) {
    rc = PX_EINVAL;
  } else if (f->op == OP_EXACT) {
    rc = f->want == 0 ? PX_READY : step_exact(f, cx, PX_EOF);
    if (rc == PX_READY) self->output.u64 = f->want;
  } else if (f->op == OP_FRAME) {
    rc = step_frame(f, cx);
  } else {
    rc = step_until(f, cx);
  }
  px__coop_leave(mark, rc != PX_PENDING);
  f->waiting = rc == PX_PENDING;
  if (rc == PX_PENDING) return PX_PENDING;
  self->error = rc < 0 ? rc : 0;
  return PX_READY;
}

static void buf_io_drop(px_future *self) {
  px_buf_io *f = (px_buf_io *)self;
  if (!f->waiting) return;
  f->waiting = 0;
  px_stream_cancel(f->reader->inner, PX_STREAM_READ);
}

static const px_future_vtable until_vtable = {
    sizeof(px_buf_io), "buf_read_until", buf_io_poll, buf_io_drop};
static const px_future_vtable line_vtable = {
    sizeof(px_buf_io), "buf_read_line", buf_io_poll, buf_io_drop};
static const px_future_vtable exact_vtable = {
    sizeof(px_buf_io), "buf_read_exact", buf_io_poll, buf_io_drop};
static const px_future_vtable frame_vtable = {sizeof(px_buf_io), "frame_read",
                                              buf_io_poll, buf_io_drop};

static px_future *buf_io_init(px_buf_io *f, const px_future_vtable *vt,
                              int op, px_buf_reader *r, void *out, size_t cap) {
  if (f == NULL) return NULL;
  memset(f, 0, sizeof(*f));
  px_future_init(&f->base, vt);
  f->reader = r;
  f->out = out;
  f->cap = cap;
  f->op = op;
  return &f->base;
}

px_future *px_buf_read_line_init(px_buf_io *f, px_buf_reader *r, char *line,
                                 size_t cap) {
  px_future *p = buf_io_init(f, &line_vtable, OP_LINE, r, line, cap);
  if (p != NULL) f->delim = '\n';
  return p;
}

px_future *px_buf_read_until_init(px_buf_io *f, px_buf_reader *r, int delim,
                                  void *out, size_t cap) {
  px_future *p = buf_io_init(f, &until_vtable, OP_UNTIL, r, out, cap);
  if (p != NULL) f->delim = delim;
  return p;
}

px_future *px_buf_read_exact_init(px_buf_io *f, px_buf_reader *r, void *out,
                                  size_t len) {
  px_future *p = buf_io_init(f, &exact_vtable, OP_EXACT, r, out, len);
  if (p != NULL) f->want = len;
  return p;
}

px_future *px_frame_read_init(px_buf_io *f, px_buf_reader *r, void *out,
                              size_t cap, size_t max) {
  px_future *p = buf_io_init(f, &frame_vtable, OP_FRAME, r, out, cap);
  if (p != NULL) f->max = max;
  return p;
}

/* ---- Frame writer ----------------------------------------------------- */

static px_poll frame_write_poll(px_future *self, px_context *cx) {
  px_frame_write *f = (px_frame_write *)self;
  int mark; /* into a buffered writer, a frame reaches no leaf: see buf_io */
  if (!px__coop_enter(cx, &mark)) return PX_PENDING;
  int rc = PX_READY;
  if (f->stream == NULL || (f->buf == NULL && f->len > 0))
    rc = PX_EINVAL;
  else if (f->len > f->max || (uint64_t)f->len > UINT32_MAX)
    rc = PX_EMSGSIZE;
  /* Header, then payload, each written to the end. */
  while (rc == PX_READY && f->done < 4 + f->len) {
    const unsigned char *from = f->done < 4 ? f->header + f->done
                                            : f->buf + (f->done - 4);
    size_t left = f->done < 4 ? 4 - f->done : f->len - (f->done - 4);
    size_t n;
    rc = px_stream_poll_write(f->stream, cx, from, left, &n);
    if (rc == PX_READY) f->done += n;
  }
  px__coop_leave(mark, rc != PX_PENDING);
  f->waiting = rc == PX_PENDING;
  if (rc == PX_PENDING) return PX_PENDING;
  self->error = rc < 0 ? rc : 0;
  if (rc == PX_READY) self->output.u64 = f->len;
  return PX_READY;
}

static void frame_write_drop(px_future *self) {
  px_frame_write *f = (px_frame_write *)self;
  if (!f->waiting) return;
  f->waiting = 0;
  px_stream_cancel(f->stream, PX_STREAM_WRITE);
}

static const px_future_vtable frame_write_vtable = {
    sizeof(px_frame_write), "frame_write", frame_write_poll, frame_write_drop};

px_future *px_frame_write_init(px_frame_write *f, px_stream *s,
                               const void *buf, size_t len, size_t max) {
  if (f == NULL) return NULL;
  memset(f, 0, sizeof(*f));
  px_future_init(&f->base, &frame_write_vtable);
  f->stream = s;
  f->buf = buf;
  f->len = len;
  f->max = max;
  uint32_t n = (uint32_t)len;
  f->header[0] = (unsigned char)(n >> 24);
  f->header[1] = (unsigned char)(n >> 16);
  f->header[2] = (unsigned char)(n >> 8);
  f->header[3] = (unsigned char)n;
  return &f->base;
}

/* ---- Writer ----------------------------------------------------------- */

struct px_buf_writer {
  px_stream base; /* ops == &writer_ops */
  px_stream *inner;
  unsigned char *buf; /* NULL until the first buffered write */
  size_t cap;
  size_t sent; /* bytes of buf already written to inner */
  size_t used; /* bytes in buf */
};

/* Writes the buffer out to inner (not inner's own flush). */
static int drain(px_buf_writer *w, px_context *cx) {
  while (w->sent < w->used) {
    size_t n;
    int rc = px_stream_poll_write(w->inner, cx, w->buf + w->sent,
                                  w->used - w->sent, &n);
    if (rc != PX_READY) return rc;
    w->sent += n;
  }
  w->sent = w->used = 0;
  return PX_READY;
}

static int writer_poll_write(px_stream *self, px_context *cx, const void *buf,
                             size_t len, size_t *n) {
  px_buf_writer *w = (px_buf_writer *)self;
  if (len > w->cap - w->used) {
    int rc = drain(w, cx);
    if (rc != PX_READY) return rc;
  }
  /* Large writes skip the copy once nothing older is waiting. */
  if (len >= w->cap) return px_stream_poll_write(w->inner, cx, buf, len, n);
  if (w->buf == NULL) {
    w->buf = px__alloc(w->cap);
    if (w->buf == NULL) return PX_ENOMEM;
  }
  memcpy(w->buf + w->used, buf, len);
  w->used += len;
  *n = len;
  return PX_READY;
}

static int writer_poll_flush(px_stream *self, px_context *cx) {
  px_buf_writer *w = (px_buf_writer *)self;
  int rc = drain(w, cx);
  return rc == PX_READY ? px_stream_poll_flush(w->inner, cx) : rc;
}

static int writer_poll_shutdown(px_stream *self, px_context *cx) {
  px_buf_writer *w = (px_buf_writer *)self;
  int rc = drain(w, cx);
  return rc == PX_READY ? px_stream_poll_shutdown(w->inner, cx) : rc;
}

static int writer_poll_read(px_stream *self, px_context *cx, void *buf,
                            size_t len, size_t *n) {
  return px_stream_poll_read(((px_buf_writer *)self)->inner, cx, buf, len, n);
}

static void writer_cancel(px_stream *self, px_stream_dir dir) {
  px_stream_cancel(((px_buf_writer *)self)->inner, dir);
}

static void writer_close(px_stream *self) {
  px_buf_writer *w = (px_buf_writer *)self;
  px_stream_close(w->inner);
  if (w->buf != NULL) px__free(w->buf, w->cap);
  px__free(w, sizeof(*w));
}

static const px_stream_ops writer_ops = {
    "buf_writer",      writer_poll_read,     writer_poll_write,
    writer_poll_flush, writer_poll_shutdown, writer_cancel,
    writer_close};

int px_buf_writer_new(px_stream *inner, size_t capacity, px_buf_writer **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  size_t cap;
  if (inner == NULL || capacity_of(capacity, &cap) < 0) return PX_EINVAL;
  px_buf_writer *w = px__alloc(sizeof(*w));
  if (w == NULL) return PX_ENOMEM;
  memset(w, 0, sizeof(*w));
  w->base.ops = &writer_ops;
  w->inner = inner;
  w->cap = cap;
  *out = w;
  return 0;
}

px_stream *px_buf_writer_stream(px_buf_writer *w) {
  return w == NULL ? NULL : &w->base;
}

px_stream *px_buf_writer_inner(px_buf_writer *w) {
  return w == NULL ? NULL : w->inner;
}

size_t px_buf_writer_buffered(const px_buf_writer *w) {
  return w == NULL ? 0 : w->used - w->sent;
}

void px_buf_writer_close(px_buf_writer *w) {
  if (w != NULL) px_stream_close(&w->base);
}
