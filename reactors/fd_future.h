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
 * syscall as an `attempt` function. The syscall is tried unless the
 * direction was seen drained with no readiness since (px__io_look), so an
 * operation that can complete at once (data already buffered, a connection
 * already queued) does so on its first poll.
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
static inline px_poll px__fd_complete(px_future *f, int err) {
  f->error = err;
  return PX_READY;
}

/* The loop of the file comment, whole: the one place that waits for
 * readiness. px__fd_drive below is its inline front. */
px_poll px__fd_drive_slow(px_future *f, px_context *cx, px__io *io,
                          unsigned interest, px__fd_attempt_fn attempt);

/* The loop from its first attempt on: `r` is what that attempt said and
 * `ev` the readiness it acted on. */
px_poll px__fd_attempted(px_future *f, px_context *cx, px__io *io,
                         unsigned interest, px__fd_attempt_fn attempt,
                         px__io_event ev, int r);

/* Completes like px__fd_complete after taking our waker back from io. */
px_poll px__fd_finish(px_future *f, px__io *io, unsigned interest, int err);

/*
 * A bit of px_future.state's user bits: the last poll returned PENDING, so
 * our waker may still sit in the px__io slot of our direction.
 */
#define PX__FD_WAITING 0x1u

/*
 * Takes a future's waker back out of the px__io slot once it stops waiting
 * (it completed, or it is dropped), so that a finished or cancelled
 * operation (a read under a timeout, the loser of a select, a read that
 * succeeded on a poll some other wake caused) neither keeps its task alive
 * nor leaves a waker pointing into a block_on frame that is gone.
 *
 * Asking for readiness with no waker does exactly that: when not ready it
 * swaps the slot's waker for the empty one; when ready, the dispatch that
 * set the bits already took the waker (one load, inline). One reader and
 * one writer at a time per descriptor is assumed, as everywhere in net.h,
 * so the slot holds our waker and nobody else's.
 */
static inline void px__fd_forget_waker(px_future *f, px__io *io,
                                       unsigned interest) {
  if (!(f->state & PX__FD_WAITING)) return;
  f->state &= ~PX__FD_WAITING;
  px_context no_waker = {.waker = NULL, .runtime = NULL};
  px__io_event ev;
  (void)px__io_poll_ready(io, &no_waker, interest, &ev);
}

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

/* An attempt that completed (done, or an error r < 0): our waker back from
 * io, the readiness it used up cleared, the future READY. */
static inline px_poll px__fd_done(px_future *f, px__io *io, unsigned interest,
                                  px__io_event ev, int r) {
  /* Our waker back first: while the readiness acted on is still set that is
   * one load (the dispatch that set it took the waker), where after the
   * clear it would be a store under the lock. */
  px__fd_forget_waker(f, io, interest);
  /* A short transfer is taken as "drained" only where the kernel says so
   * (PX__FD_DONE_DRAINED): elsewhere a read can be short with more queued
   * (a tty, a Unix socket with several writers), and with an edge-triggered
   * backend no new event would come. There the readiness stays, and the
   * next operation's EAGAIN clears it. */
  if (r == PX__FD_DONE_DRAINED && px__io_short_drains(io))
    px__io_clear_ready(io, ev);
  return px__fd_complete(f, r < 0 ? r : 0);
}

/*
 * The readiness loop's front, inline (with the caller's constant `attempt`
 * inlined into it) because every read and write of every connection comes
 * through here: io registered by this runtime, the direction ready at one
 * look, and an attempt that completes are handled here; the rest (the
 * first poll, which registers; a wait; EAGAIN; a retry) goes to the loop
 * out of line, which decides as before.
 */
static inline px_poll px__fd_drive(px_future *f, px_context *cx, px__io *io,
                                   unsigned interest,
                                   px__fd_attempt_fn attempt) {
  px__io_event ev;
  if (!px__fd_registered_here(io, cx) ||
      !px__io_ready_at_once(io, interest, &ev))
    return px__fd_drive_slow(f, cx, io, interest, attempt);
  /* The look above stored nothing, so an empty budget ends the poll here
   * as it would in the loop. */
  if (!px__coop_proceed(cx)) return PX_PENDING;
  int r = attempt(f);
  if (r == PX__FD_RETRY || r == PX__FD_WOULD_BLOCK)
    return px__fd_attempted(f, cx, io, interest, attempt, ev, r);
  return px__fd_done(f, io, interest, ev, r);
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
