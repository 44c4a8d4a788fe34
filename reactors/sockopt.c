/*
 * Socket options (pollux/net.h's px_sockopt) for TCP streams and listeners
 * and UDP sockets: one table says which options apply to which kind of
 * socket and how each maps to setsockopt, so the three public pairs of
 * functions share every check and every translation.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "pollux/net.h"
#include "reactors/fd_future.h"

/* macOS names the keepalive idle time TCP_KEEPALIVE. */
#if !defined(TCP_KEEPIDLE) && defined(TCP_KEEPALIVE)
#define TCP_KEEPIDLE TCP_KEEPALIVE
#endif

enum { BOOL_VALUE, POSITIVE, LINGER };

/* Which kinds of socket an option applies to. */
#define FOR_TCP (1u << PX__SOCK_TCP_STREAM | 1u << PX__SOCK_TCP_LISTENER)
#define FOR_ALL (FOR_TCP | 1u << PX__SOCK_UDP)

typedef struct {
  int level;
  int name;
  int value_kind;
  unsigned kinds;
  int ip_only; /* TCP level: meaningless on a Unix socket */
  int max;     /* largest accepted value (the kernel's own limits) */
} option;

static const option options[] = {
    [PX_SOCKOPT_NODELAY] = {IPPROTO_TCP, TCP_NODELAY, BOOL_VALUE, FOR_TCP, 1,
                            1},
    [PX_SOCKOPT_KEEPALIVE] = {SOL_SOCKET, SO_KEEPALIVE, BOOL_VALUE, FOR_TCP, 1,
                              1},
    /* Linux caps idle and interval at 32767 s and the count at 127. */
    [PX_SOCKOPT_KEEPIDLE] = {IPPROTO_TCP, TCP_KEEPIDLE, POSITIVE, FOR_TCP, 1,
                             32767},
    [PX_SOCKOPT_KEEPINTVL] = {IPPROTO_TCP, TCP_KEEPINTVL, POSITIVE, FOR_TCP, 1,
                              32767},
    [PX_SOCKOPT_KEEPCNT] = {IPPROTO_TCP, TCP_KEEPCNT, POSITIVE, FOR_TCP, 1,
                            127},
    [PX_SOCKOPT_LINGER] = {SOL_SOCKET, SO_LINGER, LINGER, FOR_TCP, 0,
                           INT_MAX},
    [PX_SOCKOPT_REUSEADDR] = {SOL_SOCKET, SO_REUSEADDR, BOOL_VALUE, FOR_ALL, 0,
                              1},
    [PX_SOCKOPT_REUSEPORT] = {SOL_SOCKET, SO_REUSEPORT, BOOL_VALUE, FOR_ALL, 0,
                              1},
    [PX_SOCKOPT_SNDBUF] = {SOL_SOCKET, SO_SNDBUF, POSITIVE, FOR_ALL, 0,
                           INT_MAX / 2},
    [PX_SOCKOPT_RCVBUF] = {SOL_SOCKET, SO_RCVBUF, POSITIVE, FOR_ALL, 0,
                           INT_MAX / 2},
    [PX_SOCKOPT_BROADCAST] = {SOL_SOCKET, SO_BROADCAST, BOOL_VALUE,
                              1u << PX__SOCK_UDP, 0, 1},
};

/* The option's entry, or an error: PX_EINVAL for a value that is no
 * option, PX_ENOTSUP for one that does not apply to this socket. */
static int lookup(int family, int kind, px_sockopt opt, const option **out) {
  if ((unsigned)opt >= sizeof(options) / sizeof(options[0])) return PX_EINVAL;
  const option *o = &options[opt];
  if (!(o->kinds & (1u << kind))) return PX_ENOTSUP;
  if (o->ip_only && family != AF_INET && family != AF_INET6)
    return PX_ENOTSUP;
  *out = o;
  return 0;
}

/* The kernel's "not for this socket" answers, as the caller's error. */
static int from_errno(int e) {
  return e == ENOPROTOOPT || e == EOPNOTSUPP ? PX_ENOTSUP
                                             : px_err_from_errno(e);
}

int px__sockopt_set(int fd, int family, int kind, px_sockopt opt, int value) {
  const option *o;
  int err = lookup(family, kind, opt, &o);
  if (err < 0) return err;
  int rc;
  if (o->value_kind == LINGER) {
    /* -1: off (close returns at once, the kernel sends what is left in
     * the background); 0: close resets the connection; n: close waits up
     * to n seconds for unsent data. */
    if (value < -1) return PX_EINVAL;
    struct linger l = {.l_onoff = value >= 0, .l_linger = value < 0 ? 0 : value};
    rc = setsockopt(fd, o->level, o->name, &l, sizeof(l));
  } else {
    int lo = o->value_kind == BOOL_VALUE ? 0 : 1;
    if (value < lo || value > o->max) return PX_EINVAL;
    rc = setsockopt(fd, o->level, o->name, &value, sizeof(value));
  }
  return rc < 0 ? from_errno(errno) : 0;
}

int px__sockopt_get(int fd, int family, int kind, px_sockopt opt,
                    int *value) {
  if (value == NULL) return PX_EINVAL;
  const option *o;
  int err = lookup(family, kind, opt, &o);
  if (err < 0) return err;
  if (o->value_kind == LINGER) {
    struct linger l;
    socklen_t len = sizeof(l);
    memset(&l, 0, sizeof(l));
    if (getsockopt(fd, o->level, o->name, &l, &len) < 0)
      return from_errno(errno);
    *value = l.l_onoff ? l.l_linger : -1;
    return 0;
  }
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, o->level, o->name, &v, &len) < 0) return from_errno(errno);
  /* Booleans come back as any non-zero value on some kernels. */
  *value = o->value_kind == BOOL_VALUE ? v != 0 : v;
  return 0;
}

int px__sockopt_apply(int fd, int family, int kind,
                      const px_sockopt_value *opts, size_t n) {
  if (opts == NULL && n > 0) return PX_EINVAL;
  for (size_t i = 0; i < n; i++) {
    int err = px__sockopt_set(fd, family, kind, opts[i].opt, opts[i].value);
    if (err < 0) return err;
  }
  return 0;
}

/* ---- Streams ---------------------------------------------------------- */

/* A stream's socket and its family, asked of the socket itself: a
 * wrapped descriptor may be any kind of socket. */
static int stream_socket(const px_stream *s, int *fd, int *family) {
  int err = px__stream_socket(s, fd);
  if (err < 0) return err;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  if (getsockname(*fd, (struct sockaddr *)&ss, &len) < 0)
    return px_err_from_errno(errno);
  *family = ss.ss_family;
  return 0;
}

int px_tcp_set_option(px_tcp_stream *s, px_sockopt opt, int value) {
  int fd = -1, family = 0;
  int err = stream_socket(s, &fd, &family);
  return err < 0 ? err
                 : px__sockopt_set(fd, family, PX__SOCK_TCP_STREAM, opt, value);
}

int px_tcp_get_option(const px_tcp_stream *s, px_sockopt opt, int *value) {
  int fd = -1, family = 0;
  int err = stream_socket(s, &fd, &family);
  return err < 0 ? err
                 : px__sockopt_get(fd, family, PX__SOCK_TCP_STREAM, opt, value);
}
