/**
 * @file
 * pollux/signal.h - Unix signals as an async stream (tokio::signal::unix).
 *
 * A px_signal delivers the signals it was opened for, one per receive, as
 * a future completing with the signal number: a program can await SIGINT
 * or SIGTERM next to its other work and shut down gracefully instead of
 * being killed in the middle of a write.
 *
 * On Linux it is a signalfd. signalfd only sees signals that are blocked,
 * so px_signal_open blocks them in the calling thread's mask. Threads
 * created afterwards inherit that mask (the runtime's workers included, if
 * the runtime is created after the open); a thread created earlier with the
 * signals unblocked would take them the old way, so open signal streams
 * early, or block the signals in main first. Closing leaves them blocked:
 * unblocking would let a signal that arrives later kill the process that
 * asked to handle it.
 *
 * Elsewhere it is a self-pipe: a handler installed with sigaction writes the
 * signal number into a pipe the stream reads. A signal may be owned by one
 * px_signal at a time there; closing restores the previous handler.
 *
 * Like the kernel's, deliveries coalesce: a signal raised twice before it
 * is received may be received once.
 */
#ifndef POLLUX_SIGNAL_H
#define POLLUX_SIGNAL_H

/** @addtogroup io
 * @{
 */

#include <stddef.h>

#include "pollux/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A stream of received signals (opaque). */
typedef struct px_signal px_signal;

/**
 * Opens a stream of the `n` signals in `signals` (1..64 of them; SIGKILL and
 * SIGSTOP cannot be caught: PX_EINVAL).
 */
int px_signal_open(px_signal **out, const int *signals, size_t n);

/** Completes with output.i64 = the number of the next signal received. */
typedef struct px_signal_recv {
  px_future base; /**< the future header (must be first) */
  px_signal *sig; /**< private */
} px_signal_recv;
/** Initialises a wait for the next signal of `s` and returns its future. */
px_future *px_signal_recv_init(px_signal_recv *f, px_signal *s);

/** Closes the stream and frees it. NULL is ignored. */
void px_signal_close(px_signal *s);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_SIGNAL_H */
