/*
 * Async operations on file descriptors (internal), shared by TCP, UDP, Unix
 * sockets, pipes and signals.
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
 * That loop lives once, in px__fd_drive(); each operation only supplies its
 * syscall as an `attempt` function. The syscall is tried before looking at
 * readiness at all, so an operation that can complete at once (data already
 * buffered, a connection already queued) does so on its first poll.
 *
 * Only the px__io API of reactors/reactor.h is used, so the same code runs
 * over every reactor backend, edge- or level-triggered.
 */
#ifndef POLLUX_REACTORS_FD_FUTURE_H
#define POLLUX_REACTORS_FD_FUTURE_H

#include <stdbool.h>
#include <sys/socket.h>

#include "pollux/net.h"
#include "reactors/reactor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What one attempt at a syscall came to (negative values are errors). */
enum {
  PX__FD_WOULD_BLOCK = 0,
  PX__FD_DONE = 1,
  PX__FD_RETRY = 2,
  /* Done, and the kernel had no more: the readiness acted on is used up as
   * if the next attempt had said EAGAIN (PX__STREAM_TCP's short transfer). */
  PX__FD_DONE_DRAINED = 3
};

/* Tries the operation once; stores the future's output on PX__FD_DONE. */
typedef int (*px__fd_attempt_fn)(px_future *f);

/* Sorts a failed syscall's errno into "retry now", "wait" or an error. */
int px__fd_after_failure(void);

/* Stores `err` in the future and returns PX_READY. */
px_poll px__fd_complete(px_future *f, int err);

/* The loop of the file comment: the one place that waits for readiness. */
px_poll px__fd_drive(px_future *f, px_context *cx, px__io *io,
                     unsigned interest, px__fd_attempt_fn attempt);

/* Completes like px__fd_complete after taking our waker back from io. */
px_poll px__fd_finish(px_future *f, px__io *io, unsigned interest, int err);

/*
 * For a future's drop: takes its waker back out of io's slot if its last
 * poll left one there, so a cancelled operation keeps no task alive.
 */
void px__fd_forget_waker(px_future *f, px__io *io, unsigned interest);

/*
 * Registers io with the polling runtime's reactor for completion-style
 * operations (px__op_*, reactor.h): 1 when that reactor performs them, 0
 * when the caller must use the readiness loop, or a negative PX_E* code
 * (no runtime, another runtime's descriptor).
 */
int px__fd_completes_slow(px__io *io, px_context *cx);

/*
 * io is registered by the runtime polling us: every poll after the first,
 * on every read and write, and two loads. A runtime keeps its reactor for
 * life, and deregistration (also when a freed runtime detaches io) clears
 * io->runtime before io->reactor, so a match is never stale.
 */
static inline bool px__fd_registered_here(const px__io *io,
                                          const px_context *cx) {
  return cx->runtime != NULL &&
         __atomic_load_n(&io->runtime, __ATOMIC_RELAXED) == cx->runtime &&
         __atomic_load_n(&io->reactor, __ATOMIC_ACQUIRE) != NULL;
}

/* Inline, since every read and write of a socket asks it first: once
 * registered, the answer is the backend's (io->ops is set before
 * io->reactor is published, so the acquire above covers it). */
static inline int px__fd_completes(px__io *io, px_context *cx) {
  if (px__fd_registered_here(io, cx)) return io->ops->submit != NULL;
  return px__fd_completes_slow(io, cx);
}

/* Passes a px__op_* result on, refunding the cooperative budget unit the
 * caller took (px__coop_proceed) when it is PX_PENDING. */
int px__fd_op_result(px_context *cx, int rc);

/* Deregisters io and closes its descriptor (unless a write still going
 * out took it over: px__io.fd_lingers). */
void px__fd_close(px__io *io);

/*
 * px__fd_close, then frees `mem` (the struct holding io) when no dispatch
 * on another thread can still reach io (see px__io_retire).
 */
void px__fd_release(px__io *io, void *mem, size_t size);

/* ---- Streams: TCP, Unix, pipes and wrapped descriptors ---------------- */

#define PX__STREAM_SOCKET 0x1u /* send/recv (no SIGPIPE); else read/write */
/*
 * A TCP connection: a read or write that moved less than asked for found
 * the receive queue empty or the send buffer full (Linux, the BSDs), so it
 * is taken as drained (PX__FD_DONE_DRAINED) and the next operation waits
 * for readiness instead of making the syscall that would say EAGAIN, as
 * tokio does. Not for other descriptors: a Unix socket's read stops short
 * at another writer's bytes, a tty's at the end of a line. (The one TCP
 * exception, a read stopping at urgent data, leaves the rest for the next
 * arrival: urgent data is not something pollux's protocols use.)
 */
#define PX__STREAM_TCP 0x2u

/*
 * One direction's operation in progress. px__fd_drive keeps its WAITING bit
 * in a future's state, so each direction of a stream has a small future of
 * its own for the stream-level poll functions to drive (one reader and one
 * writer at a time, as stream.h requires).
 */
typedef struct px__fd_op {
  px_future base;
  unsigned char *buf;
  size_t len;
  size_t n;
} px__fd_op;

/* The plain-descriptor implementation of px_stream (fd_stream.c). */
typedef struct px__fd_stream {
  px_stream base; /* ops == &px__fd_stream_ops */
  int fd;
  unsigned flags; /* PX__STREAM_* */
  px__io io;
  px__fd_op rd;
  px__fd_op wr;
} px__fd_stream;

extern const px_stream_ops px__fd_stream_ops;

/* The descriptor stream behind s, or NULL when s is another kind. */
px__fd_stream *px__fd_stream_of(const px_stream *s);

/* Wraps a non-blocking descriptor. On failure fd is left open. */
int px__stream_new(int fd, unsigned flags, px_stream **out);

/* The socket under s: PX_EINVAL for NULL, PX_ENOTSUP for anything that is
 * not a plain descriptor stream over a socket. */
int px__stream_socket(const px_stream *s, int *fd);

/* ---- Socket options (sockopt.c) -------------------------------------- */

/* The kinds of socket px_sockopt distinguishes. */
enum { PX__SOCK_TCP_STREAM, PX__SOCK_TCP_LISTENER, PX__SOCK_UDP };

/* Sets or reads one option of fd (a socket of `family` and `kind`). */
int px__sockopt_set(int fd, int family, int kind, px_sockopt opt, int value);
int px__sockopt_get(int fd, int family, int kind, px_sockopt opt, int *value);

/* Sets n options in order; the first failure stops and is returned. */
int px__sockopt_apply(int fd, int family, int kind,
                      const px_sockopt_value *opts, size_t n);

/* ---- Listeners: TCP and Unix ------------------------------------------ */

struct px_tcp_listener {
  int fd;
  /*
   * A descriptor held in reserve (on /dev/null) for the day accept fails
   * with EMFILE: closing it frees one slot, so the pending connection can
   * be accepted and closed instead of waking us forever (libuv's trick).
   * -1 when it could not be reopened.
   */
  int spare;
  int family;
  px__io io;
};

/* Binds `fd` to addr and listens; on success *out owns fd. */
int px__listener_new(int fd, const struct sockaddr *addr, socklen_t len,
                     px_tcp_listener **out);

/* Connects to any address (TCP or Unix); the future is px_tcp_connect's. */
px_future *px__connect_init(px_tcp_connect *f, const px_addr *addr, int err);

#ifdef __cplusplus
}
#endif

#endif
