/*
 * The plain-descriptor px_stream (pollux/stream.h): TCP and Unix
 * connections, pipes, wrapped descriptors. They differ only in the syscall
 * that moves the bytes; waiting is fd_future.c's px__fd_drive.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "platform/platform.h"
#include "reactors/fd_future.h"

/* px__fd_drive never calls the op's vtable; it names the op in a debugger. */
static const px_future_vtable fd_read_vtable = {sizeof(px__fd_op), "fd_read",
                                                NULL, NULL};
static const px_future_vtable fd_write_vtable = {sizeof(px__fd_op),
                                                 "fd_write", NULL, NULL};

int px__stream_new(int fd, unsigned flags, px_stream **out) {
  px__fd_stream *s = px__alloc(sizeof(*s));
  if (s == NULL) return PX_ENOMEM;
  memset(s, 0, sizeof(*s));
  s->base.ops = &px__fd_stream_ops;
  s->fd = fd;
  s->flags = flags;
  px__io_init(&s->io, fd);
  px_future_init(&s->rd.base, &fd_read_vtable);
  px_future_init(&s->wr.base, &fd_write_vtable);
  *out = &s->base;
  return 0;
}

px__fd_stream *px__fd_stream_of(const px_stream *s) {
  if (s == NULL || s->ops != &px__fd_stream_ops) return NULL;
  return (px__fd_stream *)(uintptr_t)s;
}

static px__fd_stream *stream_of_op(px__fd_op *op, int write) {
  return (px__fd_stream *)((char *)op - (write ? offsetof(px__fd_stream, wr)
                                               : offsetof(px__fd_stream, rd)));
}

/* What a transfer of op->n bytes came to (see PX__STREAM_TCP). */
static int short_transfer(const px__fd_stream *s, const px__fd_op *op) {
  return (s->flags & PX__STREAM_TCP) && op->n > 0 && op->n < op->len
             ? PX__FD_DONE_DRAINED
             : PX__FD_DONE;
}

static int read_attempt(px_future *self) {
  px__fd_op *op = (px__fd_op *)self;
  px__fd_stream *s = stream_of_op(op, 0);
  ssize_t n = (s->flags & PX__STREAM_SOCKET)
                  ? px__recv(s->fd, op->buf, op->len)
                  : px__read(s->fd, op->buf, op->len);
  if (n < 0) return px__fd_after_failure();
  op->n = (size_t)n; /* 0: the peer shut its side down */
  return short_transfer(s, op);
}

static int write_attempt(px_future *self) {
  px__fd_op *op = (px__fd_op *)self;
  px__fd_stream *s = stream_of_op(op, 1);
  /* Writing to a connection the peer closed (or a pipe whose reader is
   * gone) must come back as PX_EPIPE, not raise SIGPIPE, whose default
   * action kills us: the platform layer's writes see to that. */
  ssize_t n = (s->flags & PX__STREAM_SOCKET)
                  ? px__send(s->fd, op->buf, op->len)
                  : px__write(s->fd, op->buf, op->len);
  if (n < 0) return px__fd_after_failure();
  op->n = (size_t)n;
  return short_transfer(s, op);
}

/* Drives one direction's op; its result lands in *n. Inlined into each
 * direction's poll, so px__fd_drive's fast path calls that direction's
 * attempt directly (inlined too) rather than through a pointer. */
__attribute__((always_inline)) static inline int drive(
    px__fd_stream *s, px__fd_op *op, px_context *cx, unsigned interest,
    px__fd_attempt_fn attempt, void *buf, size_t len, size_t *n) {
  op->buf = buf;
  op->len = len;
  op->n = 0;
  op->base.error = 0;
  if (px__fd_drive(&op->base, cx, &s->io, interest, attempt) == PX_PENDING)
    return PX_PENDING;
  if (op->base.error < 0) return op->base.error;
  *n = op->n;
  return PX_READY;
}

/*
 * Sockets over a reactor that performs operations itself (io_uring) use
 * them (reactors/completion.c): 1 when so, 0 for the readiness loop, or an
 * error. Pipes and other descriptors always wait for readiness.
 */
static int completes(px__fd_stream *s, px_context *cx) {
  if (!(s->flags & PX__STREAM_SOCKET)) return 0;
  return px__fd_completes(&s->io, cx);
}

static int fd_poll_read(px_stream *self, px_context *cx, void *buf,
                        size_t len, size_t *n) {
  px__fd_stream *s = (px__fd_stream *)self;
  int c = completes(s, cx);
  if (c < 0) return c;
  if (c) {
    if (!px__coop_proceed(cx)) return PX_PENDING;
    return px__fd_op_result(cx, px__op_read(&s->io, cx, buf, len, n));
  }
  return drive(s, &s->rd, cx, PX__READABLE, read_attempt, buf, len, n);
}

static int fd_poll_write(px_stream *self, px_context *cx, const void *buf,
                         size_t len, size_t *n) {
  px__fd_stream *s = (px__fd_stream *)self;
  int c = completes(s, cx);
  if (c < 0) return c;
  if (c) {
    if (!px__coop_proceed(cx)) return PX_PENDING;
    return px__fd_op_result(cx, px__op_write(&s->io, cx, buf, len, n));
  }
  /* The op's buffer field serves both directions; writes never store. */
  return drive(s, &s->wr, cx, PX__WRITABLE, write_attempt,
               (void *)(uintptr_t)buf, len, n);
}

/* Bytes written behind (completion-style writes) are still going out:
 * wait for them, and report their failure. */
static int fd_poll_flush(px_stream *self, px_context *cx) {
  px__fd_stream *s = (px__fd_stream *)self;
  if (!px__io_completes(&s->io)) return PX_READY;
  return px__op_flush(&s->io, cx);
}

/* shutdown(2) never blocks, so the poll form is the sync one, after the
 * bytes written behind have gone out. */
static int fd_poll_shutdown(px_stream *self, px_context *cx) {
  int rc = fd_poll_flush(self, cx);
  if (rc == PX_PENDING) return rc;
  /* Bytes behind that met a reset or a closed write side: the kernel says
   * what ending the write side comes to now (ENOTCONN once reset), as it
   * would have after a plain send. */
  if (rc < 0 && rc != PX_ECONNRESET && rc != PX_EPIPE) return rc;
  int err = px_tcp_shutdown(self);
  if (err < 0) return err;
  return rc < 0 ? rc : PX_READY;
}

static void fd_cancel(px_stream *self, px_stream_dir dir) {
  px__fd_stream *s = (px__fd_stream *)self;
  /* A completion-style operation goes on without its future; what it
   * brings waits for the next call (reactors/completion.c). */
  if (px__io_completes(&s->io))
    px__op_forget(&s->io, dir == PX_STREAM_READ ? PX__OP_IN : PX__OP_OUT);
  if (dir == PX_STREAM_READ)
    px__fd_forget_waker(&s->rd.base, &s->io, PX__READABLE);
  else
    px__fd_forget_waker(&s->wr.base, &s->io, PX__WRITABLE);
}

static void fd_close(px_stream *self) {
  px__fd_stream *s = (px__fd_stream *)self;
  px__fd_release(&s->io, s, sizeof(*s));
}

const px_stream_ops px__fd_stream_ops = {
    "fd",      fd_poll_read, fd_poll_write, fd_poll_flush, fd_poll_shutdown,
    fd_cancel, fd_close};

int px_stream_fd(const px_stream *s) {
  px__fd_stream *fs = px__fd_stream_of(s);
  return fs == NULL ? -1 : fs->fd;
}

int px_tcp_stream_fd(const px_tcp_stream *s) { return px_stream_fd(s); }

/* The socket under s: PX_EINVAL for NULL, PX_ENOTSUP for a pipe or a
 * stream that is not a plain descriptor (TLS, buffered, user-defined). */
int px__stream_socket(const px_stream *s, int *fd) {
  if (s == NULL) return PX_EINVAL;
  px__fd_stream *fs = px__fd_stream_of(s);
  if (fs == NULL || !(fs->flags & PX__STREAM_SOCKET)) return PX_ENOTSUP;
  *fd = fs->fd;
  return 0;
}

int px_tcp_shutdown(px_tcp_stream *s) {
  /* A pipe has no half-close: closing the write end is how it ends. */
  int fd = -1;
  int err = px__stream_socket(s, &fd);
  if (err < 0) return err;
  /* Bytes written behind still going out: the FIN follows them, from the
   * completion of the last send. */
  if (px__io_completes(&px__fd_stream_of(s)->io) &&
      px__op_shutdown_later(&px__fd_stream_of(s)->io))
    return 0;
  if (shutdown(fd, SHUT_WR) < 0) return px_err_from_errno(errno);
  return 0;
}

/* ---- Wrapped descriptors and pipes ---------------------------------- */

int px_fd_wrap(int fd, px_stream **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) return PX_EBADF;
  /* Regular files and directories are always "ready" to the kernel and
   * epoll refuses them: there is nothing for a reactor to wait on. */
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return PX_EINVAL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return px_err_from_errno(errno);
  return px__stream_new(fd, S_ISSOCK(st.st_mode) ? PX__STREAM_SOCKET : 0, out);
}

int px_pipe(px_stream **r, px_stream **w) {
  if (r == NULL || w == NULL) return PX_EINVAL;
  *r = NULL;
  *w = NULL;
  int fds[2];
  if (px__pipe(fds, true) < 0) return px_err_from_errno(errno);
  int err = px__stream_new(fds[0], 0, r);
  if (err == 0) err = px__stream_new(fds[1], 0, w);
  if (err < 0) {
    if (*r != NULL) {
      px_stream_close(*r);
      *r = NULL;
    } else {
      close(fds[0]);
    }
    close(fds[1]);
  }
  return err;
}
