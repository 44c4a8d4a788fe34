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

#include "pollux/future.h"
#include "pollux/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A set of child tasks that ends together (structured concurrency). Fields are private. */
typedef struct px_scope {
  px_join_handle *children; /**< private: one handle per child, spawn order */
  size_t len;               /**< private: children spawned */
  size_t cap;               /**< private: handles allocated */
  size_t done;              /**< private: children whose result was collected */
  size_t scan_from;         /**< private: children before it are all collected */
  size_t errors;            /**< read-only: children that finished with an error */
  int first_error;          /**< read-only: the first such error seen, or 0 */
  int closed;               /**< private: dropped; spawning is refused */
} px_scope;

/** An empty scope; it allocates nothing until the first spawn. */
void px_scope_init(px_scope *scope);

/**
 * Spawns `future` on the current runtime (as px_spawn: the future is copied
 * into the task, the caller's copy must not be used after success) and keeps
 * its join handle. Errors: PX_EINVAL (NULL, or a dropped scope),
 * PX_ENORUNTIME, PX_ENOMEM, PX_ESHUTDOWN; on error the caller still owns
 * the future.
 */
int px_scope_spawn(px_scope *scope, const px_future *future);

/** Children spawned so far. */
size_t px_scope_len(const px_scope *scope);

/**
 * The join handle of child `i` (spawn order), whose output and error hold
 * the child's result once the join completed. NULL when out of range.
 */
const px_join_handle *px_scope_child(const px_scope *scope, size_t i);

/**
 * Aborts every child still running (they finish with PX_ECANCELED, which
 * the join counts as errors). The scope stays usable: await the join to know
 * that the children are gone. Returns PX_EINVAL for NULL.
 */
int px_scope_cancel(px_scope *scope);

/**
 * Aborts every child still running, lets go of their join handles (the
 * runtime drops the aborted futures on its thread) and frees the scope's
 * memory. Results are no longer readable; spawning is refused. Safe to call
 * twice and on a scope whose join completed. NULL is ignored.
 */
void px_scope_drop(px_scope *scope);

/**
 * Waits for every child (spawned before or while the join is pending). Its
 * output (u64) is the number of children and its error the scope's
 * first_error; PX_EINVAL for a dropped scope. Dropping the join before it
 * completed drops the scope (children aborted): the structured part of
 * structured concurrency.
 */
typedef struct px_scope_join {
  px_future base; /**< the future header (must be first) */
  px_scope *scope; /**< private */
} px_scope_join;
/** Initialises a join of every child of `scope` and returns its future. */
px_future *px_scope_join_init(px_scope_join *join, px_scope *scope);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_SCOPE_H */
