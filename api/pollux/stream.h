/**
 * @file
 * pollux/stream.h - one byte-stream type for every transport, and the
 * futures that read and write it (tokio's AsyncRead / AsyncWrite and their
 * extension traits).
 *
 * A px_stream is an interface: a struct whose first member is a px_stream
 * (a pointer to a table of poll functions). TCP and Unix connections,
 * pipes and wrapped descriptors are one implementation (net.h); a TLS
 * session, a child's stdio, a buffered reader or a stream with deadlines
 * are others, and any code may add its own by filling a px_stream_ops:
 *
 * @code
 *   typedef struct my_stream {
 *     px_stream base;              // first member
 *     ...                          // the implementation's state
 *   } my_stream;
 *
 *   static const px_stream_ops my_ops = {
 *       "my_stream", my_poll_read, my_poll_write, NULL, my_poll_shutdown,
 *       my_cancel, my_close};
 *   my_stream *m = ...; m->base.ops = &my_ops;
 *   px_stream_read_init(&io, &m->base, buf, sizeof buf);   // works as is
 * @endcode
 *
 * The poll functions follow the future protocol without being futures:
 * they return PX_READY when done, PX_PENDING after arranging for
 * cx->waker to be woken when progress is possible, or a negative PX_E*
 * code. Futures (px_stream_read_init, ...) drive them; wrappers (TLS,
 * buffering) call the inner stream's functions from their own.
 *
 * Concurrency: one task may read while another writes (each direction has
 * its own waker slot), but two reads, or two writes, must not be pending
 * on one stream at once. Writes, flushes and shutdown share the write
 * direction.
 *
 * Lifetime: a stream must outlive the futures using it, and the runtime
 * must outlive the streams registered with it: drop the futures, close the
 * stream, then free the runtime.
 */
#ifndef POLLUX_STREAM_H
#define POLLUX_STREAM_H

/** @addtogroup io
 * @{
 */

#include <stddef.h>
#include <stdint.h>

#include "pollux/future.h"
#include "pollux/time.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A byte stream: the first member of every stream implementation. */
typedef struct px_stream px_stream;

/** The table of poll functions a stream implementation supplies. */
typedef struct px_stream_ops px_stream_ops;

/** The two directions of a stream, as px_stream_ops.cancel names them. */
typedef enum px_stream_dir {
  /** The read side: poll_read. */
  PX_STREAM_READ = 1,
  /** The write side: poll_write, poll_flush and poll_shutdown. */
  PX_STREAM_WRITE = 2
} px_stream_dir;

/**
 * What a stream implementation does. Every poll function returns PX_READY
 * (done, results stored), PX_PENDING (not yet: cx->waker will be woken
 * when it is worth polling again) or a negative PX_E* code (the operation
 * failed; the stream may still be closed). They are called from one task
 * per direction at a time, and never with len == 0 or a NULL buffer (the
 * futures answer those themselves).
 */
struct px_stream_ops {
  /** A short name for logs and type checks ("fd", "tls", "buf_reader"). */
  const char *name;
  /**
   * Reads up to len bytes into buf; on PX_READY *n is the count, 0 meaning
   * end of stream (the peer shut down its write side). Required.
   */
  int (*poll_read)(px_stream *s, px_context *cx, void *buf, size_t len,
                   size_t *n);
  /**
   * Writes up to len bytes from buf; on PX_READY *n is the count, at
   * least 1. Required.
   */
  int (*poll_write)(px_stream *s, px_context *cx, const void *buf,
                    size_t len, size_t *n);
  /**
   * Pushes out whatever the stream buffers internally (a buffered writer's
   * bytes, a TLS record) to the layer below. NULL: nothing is ever
   * buffered, so a flush completes at once.
   */
  int (*poll_flush)(px_stream *s, px_context *cx);
  /**
   * Flushes, then ends the write side (a TCP FIN, a TLS close_notify), so
   * the peer reads end of stream; reading stays possible. NULL: shutdown
   * is not supported (PX_ENOTSUP).
   */
  int (*poll_shutdown)(px_stream *s, px_context *cx);
  /**
   * Takes back the waker a PX_PENDING poll of direction `dir` left with
   * the stream, because the operation was dropped (cancelled by a timeout,
   * a select or an aborted task): a cancelled read must keep no task alive
   * and leave no waker pointing into a frame that is gone. Called only
   * after a poll of that direction returned PX_PENDING and before any
   * other poll of that direction. NULL when the stream keeps no wakers
   * (it only delegates to streams whose cancel it calls itself, say).
   */
  void (*cancel)(px_stream *s, px_stream_dir dir);
  /**
   * Releases the stream and everything it owns (descriptors, inner
   * streams it was given ownership of, memory). No future may be using
   * it. Required.
   */
  void (*close)(px_stream *s);
};

/** The header of every stream implementation (its first member). */
struct px_stream {
  /** The implementation's poll functions; never NULL in a live stream. */
  const px_stream_ops *ops;
};

/* ---- Poll functions for wrappers -------------------------------------- */

/**
 * Calls s->ops->poll_read with the checks every caller needs: PX_EINVAL
 * for a NULL stream, ops or (with len > 0) buffer; len == 0 is PX_READY
 * with *n = 0 at once. An implementation claiming more bytes than len is
 * reported as PX_EIO. For stream implementations that wrap another
 * stream; applications use the futures below.
 */
int px_stream_poll_read(px_stream *s, px_context *cx, void *buf, size_t len,
                        size_t *n);

/**
 * Calls s->ops->poll_write with the same checks as px_stream_poll_read. A
 * write that reports 0 bytes for len > 0 fails with PX_EIO (no progress
 * would ever be made).
 */
int px_stream_poll_write(px_stream *s, px_context *cx, const void *buf,
                         size_t len, size_t *n);

/** Calls s->ops->poll_flush; PX_READY when the stream has none. */
int px_stream_poll_flush(px_stream *s, px_context *cx);

/** Calls s->ops->poll_shutdown; PX_ENOTSUP when the stream has none. */
int px_stream_poll_shutdown(px_stream *s, px_context *cx);

/**
 * Calls s->ops->cancel for `dir` if the stream has one. NULL is ignored.
 * For wrappers whose own cancel must cancel the inner stream's operation.
 */
void px_stream_cancel(px_stream *s, px_stream_dir dir);

/* ---- Futures ---------------------------------------------------------- */

/**
 * One operation on a stream: the future behind px_stream_read_init,
 * px_stream_write_init, px_stream_write_all_init, px_stream_flush_init and
 * px_stream_shutdown_init. Its fields are private. Reads and writes
 * complete with output.u64 = bytes moved.
 *
 * Cancel safety: dropping a pending read loses nothing (it has read
 * nothing, so the bytes wait for the next read). Dropping a write or
 * write_all may have written a prefix: the future's own output.u64 says
 * how many bytes went out. The stream stays usable either way.
 */
typedef struct px_stream_io {
  /** The future header; output.u64 is the byte count. */
  px_future base;
  px_stream *stream;  /**< private */
  unsigned char *buf; /**< private */
  size_t len;         /**< private */
  size_t done;        /**< private */
  int op;             /**< private: which operation */
  int waiting;        /**< private: the last poll returned PX_PENDING */
} px_stream_io;

/**
 * Reads up to len bytes (tokio's AsyncReadExt::read): output.u64 = bytes
 * read, 0 at end of stream. A zero-length read completes with 0 at once,
 * even outside a runtime. Errors: PX_EINVAL (NULL stream, or NULL buffer
 * with len > 0), the stream's own (PX_ECONNRESET, PX_ENORUNTIME, ...).
 * Returns &f->base, or NULL when f is NULL.
 */
px_future *px_stream_read_init(px_stream_io *f, px_stream *s, void *buf,
                               size_t len);

/**
 * Writes up to len bytes: output.u64 = bytes written (at least 1 when
 * len > 0). Errors as for px_stream_read_init, plus PX_EPIPE when the peer
 * is gone (never SIGPIPE).
 */
px_future *px_stream_write_init(px_stream_io *f, px_stream *s,
                                const void *buf, size_t len);

/**
 * Writes all len bytes (tokio's write_all): output.u64 = len. On error,
 * output.u64 holds the bytes already written.
 */
px_future *px_stream_write_all_init(px_stream_io *f, px_stream *s,
                                    const void *buf, size_t len);

/**
 * Flushes bytes the stream buffers (a px_buf_writer's, a TLS record) to
 * the layer below. Completes at once on streams that buffer nothing.
 */
px_future *px_stream_flush_init(px_stream_io *f, px_stream *s);

/**
 * Flushes, then shuts the write side down: the peer reads end of stream,
 * this end can still read. PX_ENOTSUP for streams without a write side to
 * end (a pipe: close its write end instead).
 */
px_future *px_stream_shutdown_init(px_stream_io *f, px_stream *s);

/**
 * Closes the stream and frees it (s->ops->close). NULL is ignored. No
 * future may still be using the stream.
 */
void px_stream_close(px_stream *s);

/**
 * The descriptor under a plain descriptor stream (TCP, Unix, pipe,
 * px_fd_wrap), or -1 for NULL and for other kinds of stream.
 *
 * For options and queries (setsockopt, getpeername, fstat), not for moving
 * bytes: with the io_uring reactor the stream may already hold bytes the
 * kernel handed to it (a multishot receive into its buffer ring), which a
 * recv on the descriptor would skip, and a write of the stream's may still
 * be in flight, which a write on the descriptor could overtake. Read and
 * write through the stream.
 */
int px_stream_fd(const px_stream *s);

/* ---- Deadlines ---------------------------------------------------------- */

/**
 * A stream with time limits on its operations (tokio-io-timeout's
 * TimeoutStream, Go's deadlines): a px_stream over any other stream that
 * fails an operation with PX_ETIMEDOUT when it waits too long.
 *
 *  - read timeout: a read that has waited this long fails;
 *  - write timeout: the same for a write, flush or shutdown;
 *  - idle timeout: an operation fails once no byte has moved in either
 *    direction for this long (a slowloris or a dead peer).
 *
 * Timers cost nothing while operations complete without waiting. Each
 * direction has one timer of its own, embedded in the stream: an operation
 * that waits arms it for the earliest of its limits, and bytes moving in
 * the other direction only record the time; the timer, when it fires
 * early for that reason, re-arms itself for the new idle deadline (no
 * timer operation per byte or per read, and no allocation ever).
 *
 * After PX_ETIMEDOUT the stream is still usable (the timed-out operation
 * was cancelled like a dropped one; for writes, output.u64 of a write_all
 * says how much went out). Owns its inner stream; like any stream it must
 * be closed before its runtime is freed.
 */
typedef struct px_deadline_stream px_deadline_stream;

/**
 * Wraps `inner` (which it owns from now on) with no limits set. Errors:
 * PX_EINVAL (NULL inner or out), PX_ENOMEM (inner left to the caller).
 */
int px_deadline_stream_new(px_stream *inner, px_deadline_stream **out);

/** The deadline stream as a px_stream; NULL for NULL. */
px_stream *px_deadline_stream_stream(px_deadline_stream *d);

/** The stream underneath (still owned by d); NULL for NULL. */
px_stream *px_deadline_stream_inner(px_deadline_stream *d);

/**
 * Limits how long one read may wait (0: no limit, the default). Takes
 * effect from the next read that waits. Set it from the task using the
 * stream, or before sharing it. PX_EINVAL for NULL.
 */
int px_deadline_stream_set_read_timeout(px_deadline_stream *d,
                                        px_duration limit);

/** The same for writes, flushes and shutdown. PX_EINVAL for NULL. */
int px_deadline_stream_set_write_timeout(px_deadline_stream *d,
                                         px_duration limit);

/**
 * Fails any waiting operation once nothing has moved in either direction
 * for `limit` (0: no limit, the default); the idle clock starts now.
 * PX_EINVAL for NULL.
 */
int px_deadline_stream_set_idle_timeout(px_deadline_stream *d,
                                        px_duration limit);

/** Closes the deadline stream and its inner stream. NULL is ignored. */
void px_deadline_stream_close(px_deadline_stream *d);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_STREAM_H */
