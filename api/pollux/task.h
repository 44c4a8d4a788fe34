/**
 * @file
 * pollux/task.h - tasks, spawning, join handles.
 *
 * A task is a future the runtime owns and polls on its own (tokio::spawn).
 * It is one allocation: a small header followed by a copy of the future.
 *
 * Its life is governed by one atomic state word (the model is tokio's
 * task/state.rs), which guarantees that a task is never polled by two
 * threads at once, that a wake arriving while it runs is never lost, and
 * that it is freed exactly once; the bits are an implementation detail,
 * documented where they are defined (executors/task_state.h).
 */
#ifndef POLLUX_TASK_H
#define POLLUX_TASK_H

/** @addtogroup tasks
 * @{
 */

#include <stdint.h>

#include "pollux/context.h"
#include "pollux/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A spawned task (opaque): the future, its state word and its join slot. */
typedef struct px_task px_task;

/**
 * A join handle is itself a future (tokio's JoinHandle): awaiting it gives
 * the task's output and error (PX_ECANCELED if the task was aborted or the
 * runtime shut down first). Dropping it with px_future_drop detaches the
 * task, which keeps running; its output is then discarded.
 */
typedef struct px_join_handle {
  px_future base; /**< the future header (must be first) */
  px_task *task; /**< private: NULL once joined or dropped */
} px_join_handle;

/** Priority levels: 0 (lowest) .. PX_PRIORITY_LEVELS - 1 (highest). */
#define PX_PRIORITY_LEVELS 8
#define PX_PRIORITY_DEFAULT 4 /**< the middle level */
#define PX_PRIORITY_INHERIT (-1) /**< the spawning task's level (default outside tasks) */

/**
 * Spawn options. Zero-initialising is not the default: use
 * px_spawn_opts_init, or PX_SPAWN_OPTS_INIT.
 */
typedef struct px_spawn_opts {
  /**
   * PX_PRIORITY_INHERIT (the default: a child runs at its parent's level,
   * PX_PRIORITY_DEFAULT when spawned from outside any task), or a level in
   * 0..PX_PRIORITY_LEVELS-1. Only the priority executor orders tasks by it;
   * the FIFO and work-stealing executors accept it and ignore it.
   */
  int priority;
} px_spawn_opts;

/** A static initialiser for px_spawn_opts with the defaults. */
#define PX_SPAWN_OPTS_INIT {PX_PRIORITY_INHERIT}
/** Sets `opts` to the defaults (PX_SPAWN_OPTS_INIT). */
void px_spawn_opts_init(px_spawn_opts *opts);

/**
 * Spawns `future` on the runtime of the calling thread (inside block_on or
 * a task). The future's bytes (future->vtable->size of them) are copied into
 * the new task, so the caller's copy must not be polled or dropped after a
 * successful spawn. `join` may be NULL to detach at once.
 *
 * Errors: PX_EINVAL (NULL future or vtable, size smaller than px_future,
 * already polled future), PX_ENORUNTIME (no runtime on this thread),
 * PX_ESHUTDOWN, PX_ENOMEM. On error the caller still owns the future.
 */
int px_spawn(const px_future *future, px_join_handle *join);

/** Same, onto an explicit runtime, from any thread (tokio's Handle::spawn). */
int px_runtime_spawn(px_runtime *rt, const px_future *future,
                     px_join_handle *join);

/**
 * px_spawn / px_runtime_spawn with options (NULL: the defaults). An
 * out-of-range priority gives PX_EINVAL.
 */
int px_spawn_with(const px_future *future, px_join_handle *join,
                  const px_spawn_opts *opts);
/** px_runtime_spawn with options (NULL: the defaults); an out-of-range priority gives PX_EINVAL. */
int px_runtime_spawn_with(px_runtime *rt, const px_future *future,
                          px_join_handle *join, const px_spawn_opts *opts);

/** The priority level of the task being polled (PX_PRIORITY_DEFAULT outside tasks). */
int px_task_current_priority(void);

/**
 * Asks the task to stop. It is not polled again; its future is dropped on
 * the runtime thread, and the join handle then reports PX_ECANCELED. Aborting
 * a finished task does nothing. Returns PX_EINVAL for a handle that has no
 * task (NULL, already joined, or dropped).
 */
int px_join_handle_abort(px_join_handle *join);

/** The task's id (unique within the process, starting at 1), or 0. */
uint64_t px_join_handle_id(const px_join_handle *join);

/** The id of the task being polled on this thread; 0 outside a task. */
uint64_t px_task_current_id(void);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_TASK_H */
