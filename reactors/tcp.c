/*
 * TCP listeners and streams (pollux/net.h) over whichever reactor the
 * runtime was built with.
 *
 * Every operation is a future with the same shape, mio's and tokio's:
 *
 *   loop {
 *     try the non-blocking syscall;
 *     success or a real error -> READY;
 *     EAGAIN -> clear the readiness we acted on, and ask px__io again:
 *               not ready -> our waker is stored, PENDING;
 *               ready     -> an event came in meanwhile, try again.
 *   }
 *
 * That loop lives once, in drive(); each operation only supplies its
 * syscall as an `attempt` function. The syscall is tried before looking at
 * readiness at all, so an operation that can complete at once (data already
 * buffered, a connection already queued) does so on its first poll, without
 * waiting for the reactor to report an edge.
 *
 * Registration with the reactor is lazy: socket creation (bind, accept,
 * connect) may happen anywhere, and the first poll of a future on the
 * socket registers it with the reactor of the runtime polling it. With no
 * runtime there is no reactor to wait on, so such a future fails with
 * PX_ENORUNTIME instead of hanging.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "executors/executor.h"
#include "internal/px_internal.h"
#include "pollux/net.h"
#include "reactors/reactor.h"

#define LISTEN_BACKLOG 1024

/* Listeners and streams are the same thing to the reactor: a descriptor
 * and its readiness record (io.fd repeats fd for the backend's sake). */
struct px_tcp_listener {
  int fd;
  px__io io;
};

struct px_tcp_stream {
  int fd;
  px__io io;
};

/* One address of either family, without casts between sockaddr types. */
typedef union sockaddr_any {
  struct sockaddr sa;
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
  struct sockaddr_storage ss;
} sockaddr_any;

/* ---- Helpers shared by every operation ------------------------------ */

/*
 * Parses a numeric IPv4 or IPv6 address. Names are refused (PX_EINVAL):
 * resolving them means DNS, which blocks, and a runtime thread must never
 * block.
 */
static int parse_addr(const char *host, uint16_t port, sockaddr_any *a,
                      socklen_t *len) {
  memset(a, 0, sizeof(*a));
  if (host == NULL) return PX_EINVAL;
  if (inet_pton(AF_INET, host, &a->in4.sin_addr) == 1) {
    a->in4.sin_family = AF_INET;
    a->in4.sin_port = htons(port);
    *len = sizeof(a->in4);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
    a->in6.sin6_family = AF_INET6;
    a->in6.sin6_port = htons(port);
    *len = sizeof(a->in6);
    return 0;
  }
  return PX_EINVAL;
}

static int open_socket(int family, int *out) {
  /* Non-blocking from birth, so no syscall on it can stall the runtime;
   * CLOEXEC so a child started with exec does not keep it open. */
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return px_err_from_errno(errno);
  *out = fd;
  return 0;
}

/* Wraps a connected (or connecting) descriptor. On failure fd is left open. */
static int stream_new(int fd, px_tcp_stream **out) {
  px_tcp_stream *s = px__alloc(sizeof(*s));
  if (s == NULL) return PX_ENOMEM;
  s->fd = fd;
  px__io_init(&s->io, fd);
  /* Nagle's algorithm holds small writes back while an ACK is pending,
   * which adds up to 40 ms to request/response traffic. An async program
   * already batches what it writes, so send at once. Failure only costs
   * latency, hence ignored. */
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  *out = s;
  return 0;
}

static void sock_close(px__io *io) {
  /* Deregister before closing: once closed, the number can be handed to a
   * new socket at once, and the reactor must not confuse the two. */
  px__io_deregister(io);
  /* No retry on EINTR: on Linux the descriptor is gone either way, and a
   * retry could close someone else's new descriptor. */
  close(io->fd);
}

/* What one attempt at a syscall came to (negative values are errors). */
enum { WOULD_BLOCK = 0, DONE = 1, RETRY = 2 };

/* Sorts a failed syscall's errno into "retry now", "wait" or an error. */
static int after_failure(void) {
  if (errno == EINTR) return RETRY;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return WOULD_BLOCK;
  return px_err_from_errno(errno);
}

static px_poll complete(px_future *f, int err) {
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

/* Tries the operation once; stores output on DONE. */
typedef int (*attempt_fn)(px_future *f);

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
 * per socket is assumed, as everywhere in net.h, so the slot holds our
 * waker and nobody else's.
 */
static void forget_waker(px_future *f, px__io *io, unsigned interest) {
  if (!(f->state & WAITING)) return;
  f->state &= ~WAITING;
  px_context no_waker = {.waker = NULL, .runtime = NULL};
  px__io_event ev;
  (void)px__io_poll_ready(io, &no_waker, interest, &ev);
}

static px_poll finish(px_future *f, px__io *io, unsigned interest, int err) {
  forget_waker(f, io, interest);
  return complete(f, err);
}

/* The loop of the file comment: the one place that waits for readiness. */
static px_poll drive(px_future *f, px_context *cx, px__io *io,
                     unsigned interest, attempt_fn attempt) {
  int err = ensure_registered(io, cx);
  if (err < 0) return finish(f, io, interest, err);

  px__io_event ev;
  bool have_event = false;
  for (;;) {
    int r = attempt(f);
    if (r == RETRY) continue;
    if (r != WOULD_BLOCK) return finish(f, io, interest, r < 0 ? r : 0);
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

/* ---- Listener ------------------------------------------------------- */

int px_tcp_bind(const char *host, uint16_t port, px_tcp_listener **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  sockaddr_any addr;
  socklen_t addr_len;
  int err = parse_addr(host, port, &addr, &addr_len);
  if (err < 0) return err;
  int fd;
  err = open_socket(addr.sa.sa_family, &fd);
  if (err < 0) return err;

  /* SO_REUSEADDR lets a restarted server bind while connections of its
   * previous run linger in TIME_WAIT; it does not allow two listeners. */
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
      bind(fd, &addr.sa, addr_len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
    err = px_err_from_errno(errno);
    close(fd);
    return err;
  }
  px_tcp_listener *l = px__alloc(sizeof(*l));
  if (l == NULL) {
    close(fd);
    return PX_ENOMEM;
  }
  l->fd = fd;
  px__io_init(&l->io, fd);
  *out = l;
  return 0;
}

int px_tcp_listener_port(const px_tcp_listener *l) {
  if (l == NULL) return PX_EINVAL;
  sockaddr_any addr;
  socklen_t len = sizeof(addr);
  if (getsockname(l->fd, &addr.sa, &len) < 0) return px_err_from_errno(errno);
  if (addr.sa.sa_family == AF_INET) return ntohs(addr.in4.sin_port);
  if (addr.sa.sa_family == AF_INET6) return ntohs(addr.in6.sin6_port);
  return PX_EAFNOSUPPORT;
}

void px_tcp_listener_close(px_tcp_listener *l) {
  if (l == NULL) return;
  sock_close(&l->io);
  px__free(l, sizeof(*l));
}

/* ---- Accept --------------------------------------------------------- */

static int accept_attempt(px_future *self) {
  px_tcp_accept *f = (px_tcp_accept *)self;
  int fd = accept4(f->listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    /* The client gave up while its connection sat in the backlog. That is
     * its problem, not the listener's: accept the next one (accept(2)
     * asks for the same treatment of EPROTO on Linux). */
    if (errno == ECONNABORTED || errno == EPROTO) return RETRY;
    return after_failure();
  }
  px_tcp_stream *s;
  int err = stream_new(fd, &s);
  if (err < 0) {
    close(fd);
    return err;
  }
  f->base.output.ptr = s;
  return DONE;
}

static px_poll accept_poll(px_future *self, px_context *cx) {
  px_tcp_accept *f = (px_tcp_accept *)self;
  if (f->listener == NULL) return complete(self, PX_EINVAL);
  return drive(self, cx, &f->listener->io, PX__READABLE, accept_attempt);
}

static void accept_drop(px_future *self) {
  px_tcp_accept *f = (px_tcp_accept *)self;
  if (f->listener != NULL) forget_waker(self, &f->listener->io, PX__READABLE);
}

static const px_future_vtable accept_vtable = {
    sizeof(px_tcp_accept), "tcp_accept", accept_poll, accept_drop};

px_future *px_tcp_accept_init(px_tcp_accept *f, px_tcp_listener *l) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &accept_vtable);
  f->listener = l;
  return &f->base;
}

/* ---- Connect -------------------------------------------------------- */

/*
 * Has the non-blocking connect finished? SO_ERROR holds its failure, but
 * reads 0 both when it succeeded and while it is still under way, so
 * getpeername tells those two apart (ENOTCONN: not yet). That makes the
 * attempt safe to call at any time, even without a writable event.
 */
static int connect_attempt(px_future *self) {
  px_tcp_connect *f = (px_tcp_connect *)self;
  int fd = f->pending->fd;
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
    return after_failure();
  if (so_error != 0) return px_err_from_errno(so_error);
  sockaddr_any peer;
  socklen_t peer_len = sizeof(peer);
  if (getpeername(fd, &peer.sa, &peer_len) < 0)
    return errno == ENOTCONN ? WOULD_BLOCK : after_failure();
  /* Connected: the stream now belongs to whoever awaited us. */
  f->base.output.ptr = f->pending;
  f->pending = NULL;
  f->fd = -1;
  return DONE;
}

/* Creates the socket and starts connecting; f->pending holds it after. */
static int connect_start(px_tcp_connect *f, px_context *cx) {
  sockaddr_any addr;
  socklen_t addr_len;
  int err = parse_addr(f->host, f->port, &addr, &addr_len);
  if (err < 0) return err;
  /* Checked before the socket exists, so failing leaves nothing behind. */
  if (cx->runtime == NULL) return PX_ENORUNTIME;
  int fd;
  err = open_socket(addr.sa.sa_family, &fd);
  if (err < 0) return err;
  px_tcp_stream *s;
  err = stream_new(fd, &s);
  if (err < 0) {
    close(fd);
    return err;
  }
  /* A non-blocking connect answers EINPROGRESS and finishes in the
   * background; EINTR means the same (POSIX: it continues). Loopback may
   * also succeed at once. connect_attempt sorts out which happened. */
  if (connect(fd, &addr.sa, addr_len) < 0 && errno != EINPROGRESS &&
      errno != EINTR) {
    err = px_err_from_errno(errno);
    px_tcp_close(s);
    return err;
  }
  f->pending = s;
  f->fd = fd;
  return 0;
}

/* Closes the half-made stream of a connect that failed or was dropped. */
static void connect_abandon(px_tcp_connect *f) {
  px_tcp_close(f->pending);
  f->pending = NULL;
  f->fd = -1;
}

static px_poll connect_poll(px_future *self, px_context *cx) {
  px_tcp_connect *f = (px_tcp_connect *)self;
  if (f->pending == NULL) {
    int err = connect_start(f, cx);
    if (err < 0) return complete(self, err);
  }
  px_poll p = drive(self, cx, &f->pending->io, PX__WRITABLE, connect_attempt);
  if (p == PX_READY && self->error < 0) connect_abandon(f);
  return p;
}

static void connect_drop(px_future *self) {
  px_tcp_connect *f = (px_tcp_connect *)self;
  if (f->pending != NULL) connect_abandon(f);
}

static const px_future_vtable connect_vtable = {
    sizeof(px_tcp_connect), "tcp_connect", connect_poll, connect_drop};

px_future *px_tcp_connect_init(px_tcp_connect *f, const char *host,
                               uint16_t port) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &connect_vtable);
  f->fd = -1;
  f->port = port;
  f->pending = NULL;
  /* A host that does not fit is no numeric address. Leaving it empty makes
   * the first poll fail with PX_EINVAL, so PX_AWAIT reports the mistake. */
  f->host[0] = '\0';
  if (host != NULL && strlen(host) < sizeof(f->host))
    memcpy(f->host, host, strlen(host) + 1);
  return &f->base;
}

/* ---- Read and write ------------------------------------------------- */

static int read_attempt(px_future *self) {
  px_tcp_io *f = (px_tcp_io *)self;
  ssize_t n = recv(f->stream->fd, f->buf, f->len, 0);
  if (n < 0) return after_failure();
  f->done = (size_t)n;
  f->base.output.u64 = (uint64_t)n; /* 0: the peer shut its side down */
  return DONE;
}

static int write_attempt(px_future *self) {
  px_tcp_io *f = (px_tcp_io *)self;
  /* MSG_NOSIGNAL: writing to a connection the peer closed must come back
   * as PX_EPIPE, not raise SIGPIPE, whose default action kills us. */
  ssize_t n =
      send(f->stream->fd, f->buf + f->done, f->len - f->done, MSG_NOSIGNAL);
  if (n < 0) return after_failure();
  f->done += (size_t)n;
  /* Kept up to date even if a later chunk fails, so a write_all that ends
   * in an error still says how much went out. */
  f->base.output.u64 = f->done;
  return f->all && f->done < f->len ? RETRY : DONE;
}

static px_poll stream_io_poll(px_future *self, px_context *cx,
                              unsigned interest, attempt_fn attempt) {
  px_tcp_io *f = (px_tcp_io *)self;
  if (f->stream == NULL || (f->buf == NULL && f->len > 0))
    return complete(self, PX_EINVAL);
  /* Nothing to move: done, without a syscall (a 0-byte read would be
   * indistinguishable from end of stream) and without needing a runtime. */
  if (f->len == 0) {
    self->output.u64 = 0;
    return complete(self, 0);
  }
  return drive(self, cx, &f->stream->io, interest, attempt);
}

static px_poll read_poll(px_future *self, px_context *cx) {
  return stream_io_poll(self, cx, PX__READABLE, read_attempt);
}

static px_poll write_poll(px_future *self, px_context *cx) {
  return stream_io_poll(self, cx, PX__WRITABLE, write_attempt);
}

static void stream_io_drop(px_future *self, unsigned interest) {
  px_tcp_io *f = (px_tcp_io *)self;
  if (f->stream != NULL) forget_waker(self, &f->stream->io, interest);
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

/* ---- Stream --------------------------------------------------------- */

int px_tcp_shutdown(px_tcp_stream *s) {
  if (s == NULL) return PX_EINVAL;
  if (shutdown(s->fd, SHUT_WR) < 0) return px_err_from_errno(errno);
  return 0;
}

int px_tcp_stream_fd(const px_tcp_stream *s) { return s == NULL ? -1 : s->fd; }

void px_tcp_close(px_tcp_stream *s) {
  if (s == NULL) return;
  sock_close(&s->io);
  px__free(s, sizeof(*s));
}
