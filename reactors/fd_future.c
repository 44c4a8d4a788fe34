/*
 * The readiness loop every descriptor future shares (see fd_future.h), and the
 * byte streams built on it: TCP and Unix connections, pipes, wrapped
 * descriptors. They differ only in the syscall that moves the bytes.
 *
 * Registration with the reactor is lazy: a descriptor may be created
 * anywhere, and the first poll of a future on it registers it with the
 * reactor of the runtime polling it. With no runtime there is no reactor to
 * wait on, so such a future fails with PX_ENORUNTIME instead of hanging.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "executors/executor.h"
#include "internal/px_internal.h"
#include "reactors/fd_future.h"

/* ---- The readiness loop --------------------------------------------- */

int px__fd_after_failure(void) {
  if (errno == EINTR) return PX__FD_RETRY;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return PX__FD_WOULD_BLOCK;
  return px_err_from_errno(errno);
}

px_poll px__fd_complete(px_future *f, int err) {
  f->error = err;
  return PX_READY;
}

/*
 * Registers io with the reactor of the runtime polling us (once; later
 * calls find it registered). Fails when there is no runtime, or when io is
 * registered with another runtime's reactor, whose events this runtime
 * would never see.
 */
static int ensure_registered(px__io *io, px_context *cx) {
  if (cx->runtime == NULL) return PX_ENORUNTIME;
  const px__reactor_ops *ops = NULL;
  px__reactor *r = NULL;
  px__runtime_reactor(cx->runtime, &ops, &r);
  if (ops == NULL || r == NULL) return PX_ENORUNTIME;
  return px__io_register(io, ops, r);
}

/*
 * A bit of px_future.state's user bits: the last poll returned PENDING, so
 * our waker may still sit in the px__io slot of our direction.
 */
#define WAITING 0x1u

/*
 * Takes a future's waker back out of the px__io slot once it stops waiting
 * (it completed, or it is dropped), so that a finished or cancelled
 * operation (a read under a timeout, the loser of a select, a read that
 * succeeded on a poll some other wake caused) neither keeps its task alive
 * nor leaves a waker pointing into a block_on frame that is gone.
 *
 * Asking for readiness with no waker does exactly that: when not ready it
 * swaps the slot's waker for the empty one; when ready, the dispatch that
 * set the bits already took the waker. One reader and one writer at a time
 * per descriptor is assumed, as everywhere in net.h, so the slot holds our
 * waker and nobody else's.
 */
void px__fd_forget_waker(px_future *f, px__io *io, unsigned interest) {
  if (!(f->state & WAITING)) return;
  f->state &= ~WAITING;
  px_context no_waker = {.waker = NULL, .runtime = NULL};
  px__io_event ev;
  (void)px__io_poll_ready(io, &no_waker, interest, &ev);
}

px_poll px__fd_finish(px_future *f, px__io *io, unsigned interest, int err) {
  px__fd_forget_waker(f, io, interest);
  return px__fd_complete(f, err);
}

px_poll px__fd_drive(px_future *f, px_context *cx, px__io *io,
                     unsigned interest, px__fd_attempt_fn attempt) {
  int err = ensure_registered(io, cx);
  if (err < 0) return px__fd_finish(f, io, interest, err);
  /* A socket that always has data must not monopolise its thread. */
  if (!px__coop_proceed(cx)) return PX_PENDING;

  px__io_event ev;
  bool have_event = false;
  for (;;) {
    int r = attempt(f);
    if (r == PX__FD_RETRY) continue;
    if (r != PX__FD_WOULD_BLOCK)
      return px__fd_finish(f, io, interest, r < 0 ? r : 0);
    /* EAGAIN: the readiness we acted on is used up. The clear is skipped
     * if an event arrived after our snapshot, so nothing is lost. */
    if (have_event) px__io_clear_ready(io, ev);
    if (!px__io_poll_ready(io, cx, interest, &ev)) {
      f->state |= WAITING;
      return PX_PENDING;
    }
    have_event = true;
  }
}

void px__fd_close(px__io *io) {
  /* Deregister before closing: once closed, the number can be handed to a
   * new descriptor at once, and the reactor must not confuse the two. */
  px__io_deregister(io);
  /* No retry on EINTR: on Linux the descriptor is gone either way, and a
   * retry could close someone else's new descriptor. */
  close(io->fd);
}

void px__fd_release(px__io *io, void *mem, size_t size) {
  /* Remember the reactor before deregistering forgets it. */
  px__reactor *r = io->reactor;
  const px__reactor_ops *ops = io->ops;
  px__fd_close(io);
  px__io_retire(r, ops, io, mem, size);
}

/* ---- Streams -------------------------------------------------------- */

int px__stream_new(int fd, unsigned flags, px_tcp_stream **out) {
  px_tcp_stream *s = px__alloc(sizeof(*s));
  if (s == NULL) return PX_ENOMEM;
  s->fd = fd;
  s->flags = flags;
  px__io_init(&s->io, fd);
  *out = s;
  return 0;
}

/*
 * write() on a pipe whose reader is gone raises SIGPIPE, whose default
 * action kills the process; sockets have MSG_NOSIGNAL, pipes have nothing
 * like it. So the signal is blocked in this thread for the one call, and a
 * SIGPIPE it raised is taken off the pending set before unblocking (a
 * SIGPIPE sent to the whole process by someone else is left alone, since
 * it is only consumed when our write failed with EPIPE).
 */
static ssize_t write_no_sigpipe(int fd, const void *buf, size_t len) {
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  ssize_t n = write(fd, buf, len);
  int saved = errno;
  if (n < 0 && saved == EPIPE && !sigismember(&old, SIGPIPE)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return n;
}

static int read_attempt(px_future *self) {
  px_tcp_io *f = (px_tcp_io *)self;
  px_tcp_stream *s = f->stream;
  ssize_t n = (s->flags & PX__STREAM_SOCKET) ? recv(s->fd, f->buf, f->len, 0)
                                             : read(s->fd, f->buf, f->len);
  if (n < 0) return px__fd_after_failure();
  f->done = (size_t)n;
  f->base.output.u64 = (uint64_t)n; /* 0: the peer shut its side down */
  return PX__FD_DONE;
}

static int write_attempt(px_future *self) {
  px_tcp_io *f = (px_tcp_io *)self;
  px_tcp_stream *s = f->stream;
  /* MSG_NOSIGNAL: writing to a connection the peer closed must come back
   * as PX_EPIPE, not raise SIGPIPE, whose default action kills us. */
  ssize_t n = (s->flags & PX__STREAM_SOCKET)
                  ? send(s->fd, f->buf + f->done, f->len - f->done,
                         MSG_NOSIGNAL)
                  : write_no_sigpipe(s->fd, f->buf + f->done, f->len - f->done);
  if (n < 0) return px__fd_after_failure();
  f->done += (size_t)n;
  /* Kept up to date even if a later chunk fails, so a write_all that ends
   * in an error still says how much went out. */
  f->base.output.u64 = f->done;
  return f->all && f->done < f->len ? PX__FD_RETRY : PX__FD_DONE;
}

static px_poll stream_io_poll(px_future *self, px_context *cx,
                              unsigned interest, px__fd_attempt_fn attempt) {
  px_tcp_io *f = (px_tcp_io *)self;
  if (f->stream == NULL || (f->buf == NULL && f->len > 0))
    return px__fd_complete(self, PX_EINVAL);
  /* Nothing to move: done, without a syscall (a 0-byte read would be
   * indistinguishable from end of stream) and without needing a runtime. */
  if (f->len == 0) {
    self->output.u64 = 0;
    return px__fd_complete(self, 0);
  }
  return px__fd_drive(self, cx, &f->stream->io, interest, attempt);
}

static px_poll read_poll(px_future *self, px_context *cx) {
  return stream_io_poll(self, cx, PX__READABLE, read_attempt);
}

static px_poll write_poll(px_future *self, px_context *cx) {
  return stream_io_poll(self, cx, PX__WRITABLE, write_attempt);
}

static void stream_io_drop(px_future *self, unsigned interest) {
  px_tcp_io *f = (px_tcp_io *)self;
  if (f->stream != NULL) px__fd_forget_waker(self, &f->stream->io, interest);
}

static void read_drop(px_future *self) { stream_io_drop(self, PX__READABLE); }

static void write_drop(px_future *self) { stream_io_drop(self, PX__WRITABLE); }

static const px_future_vtable read_vtable = {sizeof(px_tcp_io), "tcp_read",
                                             read_poll, read_drop};
static const px_future_vtable write_vtable = {sizeof(px_tcp_io), "tcp_write",
                                              write_poll, write_drop};
static const px_future_vtable write_all_vtable = {
    sizeof(px_tcp_io), "tcp_write_all", write_poll, write_drop};

static px_future *stream_io_init(px_tcp_io *f, const px_future_vtable *vt,
                                 px_tcp_stream *s, const void *buf, size_t len,
                                 int all) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, vt);
  f->stream = s;
  /* One buffer field serves both directions; writes never store into it. */
  f->buf = (unsigned char *)(uintptr_t)buf;
  f->len = len;
  f->done = 0;
  f->all = all;
  return &f->base;
}

px_future *px_tcp_read_init(px_tcp_io *f, px_tcp_stream *s, void *buf,
                            size_t len) {
  return stream_io_init(f, &read_vtable, s, buf, len, 0);
}

px_future *px_tcp_write_init(px_tcp_io *f, px_tcp_stream *s, const void *buf,
                             size_t len) {
  return stream_io_init(f, &write_vtable, s, buf, len, 0);
}

px_future *px_tcp_write_all_init(px_tcp_io *f, px_tcp_stream *s,
                                 const void *buf, size_t len) {
  return stream_io_init(f, &write_all_vtable, s, buf, len, 1);
}

int px_tcp_shutdown(px_tcp_stream *s) {
  if (s == NULL) return PX_EINVAL;
  /* A pipe has no half-close: closing the write end is how it ends. */
  if (!(s->flags & PX__STREAM_SOCKET)) return PX_ENOTSUP;
  if (shutdown(s->fd, SHUT_WR) < 0) return px_err_from_errno(errno);
  return 0;
}

int px_tcp_stream_fd(const px_tcp_stream *s) { return s == NULL ? -1 : s->fd; }

void px_tcp_close(px_tcp_stream *s) {
  if (s == NULL) return;
  px__fd_release(&s->io, s, sizeof(*s));
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
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return px_err_from_errno(errno);
  int err = px__stream_new(fds[0], 0, r);
  if (err == 0) err = px__stream_new(fds[1], 0, w);
  if (err < 0) {
    if (*r != NULL) {
      px_tcp_close(*r);
      *r = NULL;
    } else {
      close(fds[0]);
    }
    close(fds[1]);
  }
  return err;
}
