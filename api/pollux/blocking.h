/**
 * @file
 * pollux/blocking.h - running blocking work off the runtime thread
 * (tokio::task::spawn_blocking).
 *
 * A future must never block: while it sits in a read() of a slow disk or a
 * CPU-heavy loop, no other task on that thread runs. Blocking work goes to a
 * thread pool the runtime owns instead, and the task awaits its result.
 *
 * The pool is created on first use. Threads are started on demand, up to
 * px_config.blocking_threads; extra jobs wait in a FIFO queue. A thread idle
 * for longer than px_config.blocking_idle_ms exits, so an idle program holds
 * no pool threads. At px_runtime_free, queued jobs are cancelled and running
 * ones are waited for up to px_config.blocking_shutdown_ms; jobs still
 * running after that are abandoned (reported on stderr, their threads left to
 * finish on their own) rather than hanging the program.
 */
#ifndef POLLUX_BLOCKING_H
#define POLLUX_BLOCKING_H

/** @addtogroup blocking
 * @{
 */

#include <stddef.h>
#include <stdint.h>

#include "pollux/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Blocking work: runs on a pool thread, stores its result in *out and
 * returns 0, or returns a negative PX_E* code (positive returns count as 0).
 */
typedef int (*px_blocking_fn)(void *arg, px_value *out);

struct px__blocking_hooks;

/**
 * The future of one blocking job, like a join handle: awaiting it gives fn's
 * output and error. Fields are private.
 */
typedef struct px_blocking {
  px_future base; /**< the future header (must be first) */
  px_blocking_fn fn; /**< private: the job */
  void *arg; /**< private: the job's argument */
  const struct px__blocking_hooks *hooks; /**< NULL for px_spawn_blocking */
  void *job;                              /**< the pool's record once queued */
  void (*free_arg)(void *arg); /**< private: releases an owned arg; NULL once the job owns it */
} px_blocking;

/**
 * Prepares a future that runs fn(arg) on the runtime's blocking pool. Like
 * every pollux future, creating it runs nothing: the job is queued on the
 * first poll, which must happen inside a runtime (else PX_ENORUNTIME).
 *
 * Dropping the future before the job started cancels it (fn never runs).
 * Dropping it while fn runs detaches the job: fn finishes and its result is
 * discarded. So `arg` must stay valid until fn returns, which may be after
 * the future is gone. Errors: PX_ENORUNTIME, PX_ENOMEM, PX_ESHUTDOWN (the
 * runtime is shutting down), PX_ECANCELED (the runtime shut down before the
 * job started), the OS error of creating the first thread, or fn's own.
 *
 * Returns &f->base, or NULL when f or fn is NULL.
 */
px_future *px_spawn_blocking_init(px_blocking *f, px_blocking_fn fn, void *arg);

/**
 * @brief px_spawn_blocking_init with an argument the job owns: `free_arg(arg)`
 * is called exactly once, whatever happens to the job.
 *
 * The argument belongs to the future until its first poll queues the job,
 * and to the job from then on. `free_arg(arg)` runs when the last of the
 * two lets go: after fn ran and its result was read or discarded (on the
 * thread that let go last: the awaiting task's or a pool thread), when the
 * future is dropped before the job started (cancelled: fn never runs), when
 * the runtime shuts down with the job still queued, or when the future is
 * dropped without ever being polled or after its first poll failed
 * (PX_ENORUNTIME, PX_ENOMEM, PX_ESHUTDOWN). A job abandoned at shutdown
 * frees its argument when fn finally returns. So `arg` may be a heap copy
 * that nothing else refers to: tokio's spawn_blocking of a `move` closure.
 *
 * @code
 * static int hash_it(void *arg, px_value *out) { *out = px_u64(slow_hash(arg)); return 0; }
 * PX_TRY_AWAIT_INTO(self->h, px_spawn_blocking_owned_init(&self->job, hash_it,
 *                                                         strdup(path), free));
 * @endcode
 *
 * @return &f->base; NULL when f or fn is NULL, in which case `free_arg(arg)`
 *         has already run (the argument is never leaked). `free_arg` may be
 *         NULL, which makes this px_spawn_blocking_init.
 */
px_future *px_spawn_blocking_owned_init(px_blocking *f, px_blocking_fn fn,
                                        void *arg, void (*free_arg)(void *));

/**
 * The number of threads the runtime's blocking pool has right now, busy or
 * idle (0 before first use and once idle threads timed out), or PX_EINVAL
 * for a NULL runtime. Any thread may ask; the answer may be stale at once.
 */
int px_runtime_blocking_threads(px_runtime *rt);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_BLOCKING_H */
