/*
 * UDP sockets (pollux/net.h). Each send or receive moves one datagram, with
 * the readiness loop of fd_future.c around one sendto/recvfrom.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "platform/platform.h"
#include "pollux/net.h"
#include "reactors/fd_future.h"

struct px_udp_socket {
  int fd;
  int family; /* AF_INET or AF_INET6 */
  px__io io;
};

int px_udp_bind_with(const char *host, uint16_t port,
                     const px_sockopt_value *opts, size_t n,
                     px_udp_socket **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  px_addr addr;
  int err = px_addr_parse(host, port, &addr);
  if (err < 0) return err;
  int family = addr.storage.ss_family;
  int fd = px__socket(family, SOCK_DGRAM, 0);
  if (fd < 0) return px_err_from_errno(errno);
  err = px__sockopt_apply(fd, family, PX__SOCK_UDP, opts, n);
  if (err == 0 && bind(fd, (struct sockaddr *)&addr.storage, addr.len) < 0)
    err = px_err_from_errno(errno);
  px_udp_socket *s = NULL;
  if (err == 0) {
    s = px__alloc(sizeof(*s));
    if (s == NULL) err = PX_ENOMEM;
  }
  if (err < 0) {
    close(fd);
    return err;
  }
  s->fd = fd;
  s->family = family;
  px__io_init(&s->io, fd);
  *out = s;
  return 0;
}

int px_udp_bind(const char *host, uint16_t port, px_udp_socket **out) {
  return px_udp_bind_with(host, port, NULL, 0, out);
}

int px_udp_set_option(px_udp_socket *s, px_sockopt opt, int value) {
  if (s == NULL) return PX_EINVAL;
  return px__sockopt_set(s->fd, s->family, PX__SOCK_UDP, opt, value);
}

int px_udp_get_option(const px_udp_socket *s, px_sockopt opt, int *value) {
  if (s == NULL) return PX_EINVAL;
  return px__sockopt_get(s->fd, s->family, PX__SOCK_UDP, opt, value);
}

int px_udp_local_addr(const px_udp_socket *s, px_addr *out) {
  if (s == NULL || out == NULL) return PX_EINVAL;
  memset(out, 0, sizeof(*out));
  out->len = sizeof(out->storage);
  if (getsockname(s->fd, (struct sockaddr *)&out->storage, &out->len) < 0)
    return px_err_from_errno(errno);
  return 0;
}

int px_udp_port(const px_udp_socket *s) {
  px_addr addr;
  int err = px_udp_local_addr(s, &addr);
  return err < 0 ? err : px_addr_port(&addr);
}

int px_udp_connect(px_udp_socket *s, const char *host, uint16_t port) {
  if (s == NULL) return PX_EINVAL;
  px_addr addr;
  int err = px_addr_parse(host, port, &addr);
  if (err < 0) return err;
  /* A datagram connect only records the peer in the kernel: it returns at
   * once, so there is nothing to await. */
  if (connect(s->fd, (struct sockaddr *)&addr.storage, addr.len) < 0)
    return px_err_from_errno(errno);
  return 0;
}

void px_udp_close(px_udp_socket *s) {
  if (s == NULL) return;
  px__fd_release(&s->io, s, sizeof(*s));
}

/* ---- Send and receive ----------------------------------------------- */

/* The futures differ in their syscall; `to.len == 0` means the connected peer. */
static int send_attempt(px_future *self) {
  px_udp_io *f = (px_udp_io *)self;
  const struct sockaddr *to =
      f->to.len > 0 ? (const struct sockaddr *)&f->to.storage : NULL;
  ssize_t n = px__sendto(f->sock->fd, f->buf, f->len, to, f->to.len);
  /* No address and no connected peer: say so in net.h's words. */
  if (n < 0 && errno == EDESTADDRREQ) return PX_ENOTCONN;
  if (n < 0) return px__fd_after_failure();
  f->base.output.u64 = (uint64_t)n;
  return PX__FD_DONE;
}

static int recv_attempt(px_future *self) {
  px_udp_io *f = (px_udp_io *)self;
  px_addr from;
  from.len = sizeof(from.storage);
  ssize_t n = recvfrom(f->sock->fd, f->buf, f->len, 0,
                       (struct sockaddr *)&from.storage, &from.len);
  if (n < 0) return px__fd_after_failure();
  if (f->from != NULL) *f->from = from;
  f->base.output.u64 = (uint64_t)n;
  return PX__FD_DONE;
}

static px_poll udp_poll(px_future *self, px_context *cx, unsigned interest,
                        px__fd_attempt_fn attempt) {
  px_udp_io *f = (px_udp_io *)self;
  if (f->err < 0) return px__fd_complete(self, f->err);
  /* A zero-length datagram is a real thing for UDP, so unlike a stream's
   * zero-length read it goes to the kernel like any other. */
  return px__fd_drive(self, cx, &f->sock->io, interest, attempt);
}

static px_poll send_poll(px_future *self, px_context *cx) {
  return udp_poll(self, cx, PX__WRITABLE, send_attempt);
}

static px_poll recv_poll(px_future *self, px_context *cx) {
  return udp_poll(self, cx, PX__READABLE, recv_attempt);
}

static void send_drop(px_future *self) {
  px_udp_io *f = (px_udp_io *)self;
  if (f->sock != NULL) px__fd_forget_waker(self, &f->sock->io, PX__WRITABLE);
}

static void recv_drop(px_future *self) {
  px_udp_io *f = (px_udp_io *)self;
  if (f->sock != NULL) px__fd_forget_waker(self, &f->sock->io, PX__READABLE);
}

static const px_future_vtable send_vtable = {sizeof(px_udp_io), "udp_send",
                                             send_poll, send_drop};
static const px_future_vtable recv_vtable = {sizeof(px_udp_io), "udp_recv",
                                             recv_poll, recv_drop};

static px_future *udp_io_init(px_udp_io *f, const px_future_vtable *vt,
                              px_udp_socket *s, const void *buf, size_t len,
                              const px_addr *to, px_addr *from) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, vt);
  f->sock = s;
  f->buf = (unsigned char *)(uintptr_t)buf;
  f->len = len;
  memset(&f->to, 0, sizeof(f->to));
  f->from = from;
  /* Bad arguments are kept for the first poll to report. */
  f->err = 0;
  if (s == NULL || (buf == NULL && len > 0)) f->err = PX_EINVAL;
  if (to != NULL) {
    if (to->len == 0 || to->len > sizeof(to->storage))
      f->err = PX_EINVAL;
    else
      f->to = *to;
  }
  return &f->base;
}

px_future *px_udp_send_to_init(px_udp_io *f, px_udp_socket *s,
                               const void *buf, size_t len, const px_addr *to) {
  px_future *fut = udp_io_init(f, &send_vtable, s, buf, len, to, NULL);
  if (fut != NULL && to == NULL) f->err = PX_EINVAL;
  return fut;
}

px_future *px_udp_recv_from_init(px_udp_io *f, px_udp_socket *s, void *buf,
                                 size_t len, px_addr *from) {
  return udp_io_init(f, &recv_vtable, s, buf, len, NULL, from);
}

px_future *px_udp_send_init(px_udp_io *f, px_udp_socket *s, const void *buf,
                            size_t len) {
  return udp_io_init(f, &send_vtable, s, buf, len, NULL, NULL);
}

px_future *px_udp_recv_init(px_udp_io *f, px_udp_socket *s, void *buf,
                            size_t len) {
  return udp_io_init(f, &recv_vtable, s, buf, len, NULL, NULL);
}
