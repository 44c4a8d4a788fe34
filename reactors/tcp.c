/*
 * TCP listeners and connections (pollux/net.h), and the address helpers all
 * sockets share, over whichever reactor the runtime was built with. The
 * readiness loop is fd_future.c, the byte streams fd_stream.c; this file supplies
 * the syscalls of accept and connect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "platform/platform.h"
#include "pollux/net.h"
#include "reactors/fd_future.h"

#define LISTEN_BACKLOG 1024

/* ---- Addresses ------------------------------------------------------ */

/*
 * Parses a numeric IPv4 or IPv6 address. Names are refused (PX_EINVAL):
 * resolving them means DNS, which blocks, and a runtime thread must never
 * block.
 */
int px_addr_parse(const char *host, uint16_t port, px_addr *out) {
  if (out == NULL) return PX_EINVAL;
  memset(out, 0, sizeof(*out));
  if (host == NULL) return PX_EINVAL;
  struct sockaddr_in *in4 = (struct sockaddr_in *)&out->storage;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->storage;
  if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    out->len = sizeof(*in4);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    out->len = sizeof(*in6);
    return 0;
  }
  return PX_EINVAL;
}

int px_addr_port(const px_addr *a) {
  if (a == NULL) return PX_EINVAL;
  if (a->storage.ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)&a->storage)->sin_port);
  if (a->storage.ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)&a->storage)->sin6_port);
  return PX_EAFNOSUPPORT;
}

int px_addr_format(const px_addr *a, char *buf, size_t size) {
  if (a == NULL || buf == NULL || size == 0) return PX_EINVAL;
  char ip[INET6_ADDRSTRLEN];
  int n;
  switch (a->storage.ss_family) {
    case AF_INET:
      inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->storage)->sin_addr,
                ip, sizeof(ip));
      n = snprintf(buf, size, "%s:%d", ip, px_addr_port(a));
      break;
    case AF_INET6:
      /* Brackets keep the port apart from the colons of the address. */
      inet_ntop(AF_INET6,
                &((const struct sockaddr_in6 *)&a->storage)->sin6_addr, ip,
                sizeof(ip));
      n = snprintf(buf, size, "[%s]:%d", ip, px_addr_port(a));
      break;
    case AF_UNIX: {
      /* An unnamed socket (the client end of a connection) has no path. */
      const struct sockaddr_un *un = (const struct sockaddr_un *)&a->storage;
      size_t max = a->len > offsetof(struct sockaddr_un, sun_path)
                       ? a->len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
      n = snprintf(buf, size, "%.*s", (int)strnlen(un->sun_path, max),
                   un->sun_path);
      break;
    }
    default:
      return PX_EINVAL;
  }
  if (n < 0) return PX_EINVAL;
  if ((size_t)n >= size) return PX_ERANGE;
  return n;
}

/* getsockname or getpeername into a px_addr. */
static int sock_addr(int fd, int peer, px_addr *out) {
  if (out == NULL) return PX_EINVAL;
  memset(out, 0, sizeof(*out));
  out->len = sizeof(out->storage);
  struct sockaddr *sa = (struct sockaddr *)&out->storage;
  int rc = peer ? getpeername(fd, sa, &out->len) : getsockname(fd, sa, &out->len);
  return rc < 0 ? px_err_from_errno(errno) : 0;
}

int px_tcp_local_addr(const px_tcp_stream *s, px_addr *out) {
  int fd = -1;
  int err = px__stream_socket(s, &fd);
  return err < 0 ? err : sock_addr(fd, 0, out);
}

int px_tcp_peer_addr(const px_tcp_stream *s, px_addr *out) {
  int fd = -1;
  int err = px__stream_socket(s, &fd);
  return err < 0 ? err : sock_addr(fd, 1, out);
}

static int open_socket(int family, int *out) {
  /* Non-blocking from birth, so no syscall on it can stall the runtime;
   * CLOEXEC so a child started with exec does not keep it open. */
  int fd = px__socket(family, SOCK_STREAM, 0);
  if (fd < 0) return px_err_from_errno(errno);
  *out = fd;
  return 0;
}

/* Wraps a connected (or connecting) socket. On failure fd is left open. */
static int socket_stream_new(int fd, int family, px_tcp_stream **out) {
  int err = px__stream_new(
      fd, PX__STREAM_SOCKET | (family == AF_UNIX ? 0 : PX__STREAM_TCP), out);
  if (err < 0 || family == AF_UNIX) return err;
  /* Nagle's algorithm holds small writes back while an ACK is pending,
   * which adds up to 40 ms to request/response traffic. An async program
   * already batches what it writes, so send at once. Failure only costs
   * latency, hence ignored. */
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return 0;
}

/* ---- Listener ------------------------------------------------------- */

static int open_spare(void) {
  return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int px__listener_new(int fd, const struct sockaddr *addr, socklen_t len,
                     px_tcp_listener **out) {
  if (bind(fd, addr, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
    return px_err_from_errno(errno);
  px_tcp_listener *l = px__alloc(sizeof(*l));
  if (l == NULL) return PX_ENOMEM;
  l->fd = fd;
  l->family = addr->sa_family;
  /* Taken now, while descriptors are plentiful. Without it (-1) the
   * listener still works; it just cannot shed connections at EMFILE. */
  l->spare = open_spare();
  px__io_init(&l->io, fd);
  *out = l;
  return 0;
}

int px_tcp_bind_with(const char *host, uint16_t port,
                     const px_sockopt_value *opts, size_t n,
                     px_tcp_listener **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  px_addr addr;
  int err = px_addr_parse(host, port, &addr);
  if (err < 0) return err;
  int family = addr.storage.ss_family;
  int fd = -1;
  err = open_socket(family, &fd);
  if (err < 0) return err;

  /* SO_REUSEADDR lets a restarted server bind while connections of its
   * previous run linger in TIME_WAIT; it does not allow two listeners.
   * Set first, so the caller's options can turn it off. */
  err = px__sockopt_set(fd, family, PX__SOCK_TCP_LISTENER,
                        PX_SOCKOPT_REUSEADDR, 1);
  if (err == 0)
    err = px__sockopt_apply(fd, family, PX__SOCK_TCP_LISTENER, opts, n);
  if (err == 0)
    err = px__listener_new(fd, (struct sockaddr *)&addr.storage, addr.len, out);
  if (err < 0) close(fd);
  return err;
}

int px_tcp_bind(const char *host, uint16_t port, px_tcp_listener **out) {
  return px_tcp_bind_with(host, port, NULL, 0, out);
}

int px_tcp_listener_set_option(px_tcp_listener *l, px_sockopt opt,
                               int value) {
  if (l == NULL) return PX_EINVAL;
  return px__sockopt_set(l->fd, l->family, PX__SOCK_TCP_LISTENER, opt, value);
}

int px_tcp_listener_get_option(const px_tcp_listener *l, px_sockopt opt,
                               int *value) {
  if (l == NULL) return PX_EINVAL;
  return px__sockopt_get(l->fd, l->family, PX__SOCK_TCP_LISTENER, opt, value);
}

int px_tcp_listener_addr(const px_tcp_listener *l, px_addr *out) {
  if (l == NULL) return PX_EINVAL;
  return sock_addr(l->fd, 0, out);
}

int px_tcp_listener_port(const px_tcp_listener *l) {
  px_addr addr;
  int err = px_tcp_listener_addr(l, &addr);
  return err < 0 ? err : px_addr_port(&addr);
}

void px_tcp_listener_close(px_tcp_listener *l) {
  if (l == NULL) return;
  if (l->spare >= 0) close(l->spare);
  px__fd_release(&l->io, l, sizeof(*l));
}

/* ---- Accept --------------------------------------------------------- */

/*
 * The descriptor table is full and a connection waits in the backlog. With
 * a readiness reactor this is a trap: the listener stays readable, accept
 * keeps failing, and the server either spins (level-triggered) or, having
 * given up, never hears of the connection again (edge-triggered). So: give
 * back the spare, accept the connection into the freed slot, close it (the
 * client sees a reset or end of stream instead of hanging), and take the
 * spare again. Returns RETRY to go on with the backlog, WOULD_BLOCK when
 * the backlog is empty, and PX_EMFILE or PX_ENFILE when there is no spare
 * to shed with (or the accept into its slot failed the same way): waiting
 * for readiness then would spin or stall, as above, so the error goes to
 * the caller, whose job it is to pause and try again (px_serve does).
 */
static int shed_connection(px_tcp_listener *l) {
  if (l->spare < 0) l->spare = open_spare();
  if (l->spare < 0) return px_err_from_errno(errno);
  close(l->spare);
  l->spare = -1;
  int fd = px__accept(l->fd, false);
  int saved = errno;
  if (fd >= 0) close(fd);
  l->spare = open_spare();
  if (fd >= 0) return PX__FD_RETRY;
  errno = saved;
  return px__fd_after_failure();
}

static int accept_attempt(px_future *self) {
  px_tcp_accept *f = (px_tcp_accept *)self;
  px_tcp_listener *l = f->listener;
  int fd = px__accept(l->fd, true);
  if (fd < 0) {
    /* The client gave up while its connection sat in the backlog. That is
     * its problem, not the listener's: accept the next one (accept(2)
     * asks for the same treatment of EPROTO on Linux). */
    if (errno == ECONNABORTED || errno == EPROTO) return PX__FD_RETRY;
    if (errno == EMFILE || errno == ENFILE) return shed_connection(l);
    return px__fd_after_failure();
  }
  px_tcp_stream *s;
  int err = socket_stream_new(fd, l->family, &s);
  if (err < 0) {
    close(fd);
    return err;
  }
  f->base.output.ptr = s;
  return PX__FD_DONE;
}

/*
 * Accepts as an operation of the reactor (io_uring's IORING_OP_ACCEPT,
 * reactors/completion.c). A connection that arrives after this future was
 * dropped waits in the listener's op for the next accept.
 */
static px_poll accept_op_poll(px_tcp_accept *f, px_context *cx) {
  px_tcp_listener *l = f->listener;
  for (bool first = true;; first = false) {
    if (!px__coop_proceed(cx)) return PX_PENDING;
    int fd = -1;
    int rc = px__op_accept(&l->io, cx, &fd);
    if (rc == PX_PENDING) {
      if (first) px__coop_refund();
      return PX_PENDING;
    }
    /* As accept_attempt: a client that gave up is its own problem, and at
     * EMFILE the spare lets us shed the connection and go on. */
    if (rc == PX_ECONNABORTED || rc == PX_EPROTO) continue;
    if (rc == PX_EMFILE || rc == PX_ENFILE) {
      int r = shed_connection(l);
      if (r == PX__FD_RETRY) continue;
      /* Nothing to shed: wait for the next connection (io_uring's accept
       * fails before it looks at the backlog, so wait for readability).
       * No spare to shed with: the caller's to pause (shed_connection). */
      if (r == PX__FD_WOULD_BLOCK) {
        rc = px__op_accept_wait(&l->io, cx);
        if (rc == PX_PENDING) return PX_PENDING;
      }
      return px__fd_complete(&f->base, r < 0 ? r : rc);
    }
    if (rc < 0) return px__fd_complete(&f->base, rc);
    px_tcp_stream *s;
    int err = socket_stream_new(fd, l->family, &s);
    if (err < 0) {
      close(fd);
      return px__fd_complete(&f->base, err);
    }
    f->base.output.ptr = s;
    return px__fd_complete(&f->base, 0);
  }
}

static px_poll accept_poll(px_future *self, px_context *cx) {
  px_tcp_accept *f = (px_tcp_accept *)self;
  if (f->listener == NULL) return px__fd_complete(self, PX_EINVAL);
  int c = px__fd_completes(&f->listener->io, cx);
  if (c < 0) return px__fd_complete(self, c);
  if (c) return accept_op_poll(f, cx);
  return px__fd_drive(self, cx, &f->listener->io, PX__READABLE, accept_attempt);
}

static void accept_drop(px_future *self) {
  px_tcp_accept *f = (px_tcp_accept *)self;
  if (f->listener == NULL) return;
  if (px__io_completes(&f->listener->io))
    px__op_forget(&f->listener->io, PX__OP_IN);
  px__fd_forget_waker(self, &f->listener->io, PX__READABLE);
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
  int fd = px_stream_fd(f->pending);
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
    return px__fd_after_failure();
  if (so_error != 0) return px_err_from_errno(so_error);
  px_addr peer;
  int err = sock_addr(fd, 1, &peer);
  if (err == PX_ENOTCONN) return PX__FD_WOULD_BLOCK;
  if (err < 0) return err;
  /* Connected: the stream now belongs to whoever awaited us. */
  f->base.output.ptr = f->pending;
  f->pending = NULL;
  return PX__FD_DONE;
}

/* Creates the socket and starts connecting; f->pending holds it after. */
static int connect_start(px_tcp_connect *f, px_context *cx) {
  if (f->err < 0) return f->err;
  /* Checked before the socket exists, so failing leaves nothing behind. */
  if (cx->runtime == NULL) return PX_ENORUNTIME;
  int family = f->addr.storage.ss_family;
  int fd = -1;
  int err = open_socket(family, &fd);
  if (err < 0) return err;
  px_tcp_stream *s;
  err = socket_stream_new(fd, family, &s);
  if (err < 0) {
    close(fd);
    return err;
  }
  /* A reactor that performs operations itself connects too (connect_poll,
   * px__op_connect); the stream is registered for that now, so its reads
   * and writes are that reactor's operations as well. */
  int c = px__fd_completes(&px__fd_stream_of(s)->io, cx);
  if (c < 0) {
    px_tcp_close(s);
    return c;
  }
  /* A non-blocking connect answers EINPROGRESS and finishes in the
   * background; EINTR means the same (POSIX: it continues). Loopback and
   * Unix sockets may also succeed at once. connect_attempt sorts out which
   * happened. (A Unix socket whose listener's backlog is full answers
   * EAGAIN with nothing under way: that is reported as PX_EAGAIN.) */
  if (c == 0 &&
      connect(fd, (struct sockaddr *)&f->addr.storage, f->addr.len) < 0 &&
      errno != EINPROGRESS && errno != EINTR) {
    err = px_err_from_errno(errno);
    px_tcp_close(s);
    return err;
  }
  f->pending = s;
  return 0;
}

/* Closes the half-made stream of a connect that failed or was dropped. */
static void connect_abandon(px_tcp_connect *f) {
  px_tcp_close(f->pending);
  f->pending = NULL;
}

static px_poll connect_poll(px_future *self, px_context *cx) {
  px_tcp_connect *f = (px_tcp_connect *)self;
  if (f->pending == NULL) {
    int err = connect_start(f, cx);
    if (err < 0) return px__fd_complete(self, err);
  }
  px__io *io = &px__fd_stream_of(f->pending)->io;
  if (px__io_completes(io)) {
    if (!px__coop_proceed(cx)) return PX_PENDING;
    int rc = px__op_connect(io, cx, (struct sockaddr *)&f->addr.storage,
                            f->addr.len);
    if (rc == PX_PENDING) return PX_PENDING;
    if (rc == PX_READY) {
      f->base.output.ptr = f->pending;
      f->pending = NULL;
      return px__fd_complete(self, 0);
    }
    connect_abandon(f);
    return px__fd_complete(self, rc);
  }
  px_poll p = px__fd_drive(self, cx, io, PX__WRITABLE, connect_attempt);
  if (p == PX_READY && self->error < 0) connect_abandon(f);
  return p;
}

static void connect_drop(px_future *self) {
  px_tcp_connect *f = (px_tcp_connect *)self;
  /* Closing the stream deregisters it, waker and all. */
  if (f->pending != NULL) connect_abandon(f);
}

static const px_future_vtable connect_vtable = {
    sizeof(px_tcp_connect), "tcp_connect", connect_poll, connect_drop};

px_future *px__connect_init(px_tcp_connect *f, const px_addr *addr, int err) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &connect_vtable);
  f->pending = NULL;
  /* A bad argument is kept for the first poll to report, so PX_AWAIT
   * fails with it instead of crashing on a NULL future. */
  f->err = err < 0 ? err : addr == NULL ? PX_EINVAL : 0;
  if (f->err == 0 && addr->len > sizeof(addr->storage)) f->err = PX_EINVAL;
  if (f->err == 0)
    f->addr = *addr;
  else
    memset(&f->addr, 0, sizeof(f->addr));
  return &f->base;
}

px_future *px_tcp_connect_addr_init(px_tcp_connect *f, const px_addr *addr) {
  return px__connect_init(f, addr, 0);
}

px_future *px_tcp_connect_init(px_tcp_connect *f, const char *host,
                               uint16_t port) {
  px_addr addr;
  int err = px_addr_parse(host, port, &addr);
  return px__connect_init(f, &addr, err);
}

px_future *px_tcp_connect_timeout_init(px_tcp_connect_timeout *f,
                                       const char *host, uint16_t port,
                                       px_duration limit) {
  if (f == NULL) return NULL;
  /* The timeout drops the connect when time runs out, and connect_drop
   * closes the half-open socket: composition is all it takes. */
  return px_timeout_init(&f->timeout,
                         px_tcp_connect_init(&f->connect, host, port), limit);
}
