/**
 * @file
 * pollux/scope.h - structured concurrency: a scope owns the tasks it spawns
 * (tokio's JoinSet, trio's nursery).
 *
 * Tasks spawned with px_spawn live on their own; a scope ties them to the
 * code that started them. Spawn children into a scope, then await the
 * scope's join: it completes once every child finished, with the first
 * child error seen and a count of failures. If the owner gives up instead
 * (px_scope_cancel, px_scope_drop, or dropping a join that is still
 * pending, which happens when the owner itself is cancelled), every child
 * still running is aborted, so no task outlives the scope that started it
 * and each child's future is dropped exactly once by the runtime.
 *
 *   px_scope_init(&self->scope);
 *   PX_TRY(px_scope_spawn(&self->scope, PX_FUTURE(&fetch_a)));
 *   PX_TRY(px_scope_spawn(&self->scope, PX_FUTURE(&fetch_b)));
 *   PX_AWAIT(px_scope_join_init(&self->join, &self->scope));
 *   int err = self->join.base.error;     // first child error, or 0
 *   px_scope_drop(&self->scope);         // also in the frame's cleanup
 *
 * Or take results one at a time as children finish, with
 * px_scope_join_next (tokio's JoinSet::join_next).
 *
 * Threads: the scope itself (spawn, join, cancel, drop) belongs to the one
 * task that owns it, like any future's state; children may run and finish
 * on any thread, and the scope only ever talks to them through their join
 * handles, which are thread-safe.
 */
#ifndef POLLUX_SCOPE_H
#define POLLUX_SCOPE_H

/** @addtogroup tasks
 * @{
 */

#include <stddef.h>
#include <stdint.h>

#include "pollux/future.h"
#include "pollux/task.h"
#include "pollux/time.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Private: the shared part of a scope (children's wakers reach it). */
typedef struct px__scope_set px__scope_set;

/**
 * A scope: the children it spawned and what became of them. Initialise with
 * px_scope_init; every field but `errors` and `first_error` is private.
 *
 * Memory: a scope holds one small entry per child that was spawned and not
 * yet reaped. A child's task (its frame) is released as soon as the scope
 * sees it finish: at the next px_scope_spawn, join or join_next, whichever
 * comes first. A finished child's result then waits in its entry (a few
 * dozen bytes) until px_scope_join_next hands it over; a child spawned with
 * px_scope_spawn_detached leaves nothing behind. A server that spawns each
 * connection into a scope therefore holds memory for its live connections
 * only, not for every connection it ever served.
 */
typedef struct px_scope {
  px__scope_set *set; /**< private: NULL until the first spawn */
  size_t errors;      /**< read-only: reaped children that failed (not detached ones) */
  int first_error;    /**< read-only: the first such error seen, or 0 */
  int closed;         /**< private: dropped; spawning is refused */
} px_scope;

/** An empty scope; it allocates nothing until the first spawn. */
void px_scope_init(px_scope *scope);

/**
 * Spawns `future` on the current runtime (as px_spawn: the future is copied
 * into the task, the caller's copy must not be used after success) as a
 * child of the scope; its result is kept for px_scope_join_next. Errors:
 * PX_EINVAL (NULL, or a dropped scope), PX_ENORUNTIME, PX_ENOMEM,
 * PX_ESHUTDOWN; on error the caller still owns the future. Each spawn also
 * reaps the children that finished since the scope was last used.
 */
int px_scope_spawn(px_scope *scope, const px_future *future);

/**
 * Like px_scope_spawn, but nobody will ask for the child's result: the
 * child is still aborted with the scope (px_scope_cancel, px_scope_drop)
 * and awaited by px_scope_join, but its output and error are discarded
 * (not counted in `errors`) and its memory is released when it is reaped.
 * The shape of a server's connection tasks.
 */
int px_scope_spawn_detached(px_scope *scope, const px_future *future);

/** Children spawned and not yet reaped (running, or finished and unclaimed). */
size_t px_scope_len(const px_scope *scope);

/**
 * Aborts every child still running (they finish with PX_ECANCELED, which
 * the join counts as errors). The scope stays usable: await the join to know
 * that the children are gone. Returns PX_EINVAL for NULL.
 */
int px_scope_cancel(px_scope *scope);

/**
 * Aborts every child still running, lets go of their join handles (the
 * runtime drops the aborted futures on its thread) and frees the scope's
 * memory. Unclaimed results are discarded; spawning is refused. Safe to
 * call twice and on a scope whose join completed. NULL is ignored.
 */
void px_scope_drop(px_scope *scope);

/**
 * Waits for every child (spawned before or while the join is pending),
 * reaping each as it finishes; unclaimed results are consumed. Its output
 * (u64) is the number of children it reaped and its error the scope's
 * first_error; PX_EINVAL for a dropped scope. Dropping the join before it
 * completed drops the scope (children aborted): the structured part of
 * structured concurrency.
 */
typedef struct px_scope_join {
  px_future base;  /**< the future header; output.u64 = children reaped */
  px_scope *scope; /**< private */
  uint64_t reaped; /**< private */
} px_scope_join;

/** Prepares a join of every child of `scope`; NULL for a NULL join. */
px_future *px_scope_join_init(px_scope_join *join, px_scope *scope);

/**
 * Waits for the next child to finish and hands over its result (tokio's
 * JoinSet::join_next): `found` is 1, `base.output`/`base.error` are the
 * child's output and error and `id` its task id; the child's memory is
 * gone by then. With no child left to wait for (none spawned, or all
 * reaped, detached ones never count), it completes at once with `found`
 * 0 and error 0. Children finish in any order; each is reported once.
 * Dropping a pending join_next loses nothing: a child that finished
 * meanwhile waits for the next call. PX_EINVAL for a dropped scope.
 *
 *   for (;;) {
 *     PX_AWAIT(px_scope_join_next_init(&self->next, &self->scope));
 *     if (!self->next.found) break;
 *     use(self->next.base.output, self->next.base.error);
 *   }
 */
typedef struct px_scope_join_next {
  px_future base;  /**< the future header: the child's output and error */
  px_scope *scope; /**< private */
  int found;       /**< 1 when a child's result was handed over, else 0 */
  uint64_t id;     /**< the reaped child's task id (px_join_handle_id) */
} px_scope_join_next;

/** Prepares a join_next on `scope`; NULL for a NULL future. */
px_future *px_scope_join_next_init(px_scope_join_next *f, px_scope *scope);

/**
 * A graceful end for a scope (tokio's Runtime::shutdown_timeout, applied to
 * one scope): waits up to `grace` for every child to finish on its own,
 * then cancels those still running (px_scope_cancel) and waits for them to
 * go. Its output (u64) is the number of children that had to be cancelled
 * (0: everything finished in time); its error is 0, or PX_EINVAL for a
 * dropped scope. Children's own errors are counted in the scope as by
 * px_scope_join. Dropping it before it completes drops the scope.
 *
 *   px_cancel_token_cancel(self->stop);   // children see it and wind down
 *   PX_AWAIT(px_scope_shutdown_init(&self->sd, &self->conns, px_secs(5)));
 *   px_scope_drop(&self->conns);
 */
typedef struct px_scope_shutdown {
  px_future base;     /**< the future header; output.u64 = children cancelled */
  px_scope *scope;    /**< private */
  px_scope_join join; /**< private */
  px_sleep grace;     /**< private */
  int phase;          /**< private: 0 grace period, 1 after the cancel */
} px_scope_shutdown;

/** Prepares a shutdown of `scope` with `grace` to finish; NULL for NULL f. */
px_future *px_scope_shutdown_init(px_scope_shutdown *f, px_scope *scope,
                                  px_duration grace);

/**
 * Ends the grace period now (a second Ctrl-C): the grace's timer fires at
 * the runtime's next turn of its timers, and the poll its wake brings
 * cancels the children still running and counts them, as at its deadline.
 * Call it from the task that awaits the shutdown (or while nothing polls
 * it). Returns 0, PX_EINVAL for NULL, or PX_EDONE when
 * the shutdown has completed or been dropped, or is past its grace already.
 */
int px_scope_shutdown_now(px_scope_shutdown *f);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_SCOPE_H */
