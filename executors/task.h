/*
 * The task header and the task's life as executors see it (internal). A
 * task is one allocation: this 48-byte header, then the future, then, for a
 * task spawned with a join handle, the handle's waker slot. Everything
 * about a task's life (state word, references, join handles, cancellation)
 * lives in task.c and is the same for every executor; the state word's bits
 * and transitions are in executors/task_state.h, which only task.c includes.
 */
#ifndef POLLUX_EXECUTORS_TASK_H
#define POLLUX_EXECUTORS_TASK_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pollux/list.h"
#include "pollux/runtime.h"
#include "pollux/task.h"
#include "pollux/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The task header. The future follows it in the same allocation, aligned for
 * any type. The executor owns `queue_next` while the task is NOTIFIED.
 *
 * The join handle's waker slot (guarded by JOIN_WAKER) is not here but
 * after the future, and only in a task spawned with a handle (`joinable`),
 * as tokio keeps it in the task's trailer: a detached task, the sleeping
 * tasks of a timer-heavy server say, is 16 bytes smaller (a million of
 * them: 16 MB, bench/million_timers).
 */
struct px_task {
  _Atomic uint64_t state;  /* executors/task_state.h */
  px_task *queue_next;     /* run queue link (executor's) */
  px__list owned;          /* runtime's list of live tasks */
  px_runtime *runtime;
  /* Immutable after spawn. Packed so the header stays at 48 bytes. */
  uint64_t id : 48;       /* unique per process, from 1 */
  uint64_t priority : 7;  /* 0..PX_PRIORITY_LEVELS-1, higher runs first */
  uint64_t joinable : 1;  /* spawned with a join handle: it has the slot */
  /* Not a bit-field: bit-fields share one memory location, so the runner
   * setting a bit here would rewrite `id` while another thread reads it
   * (px_join_handle_id right after a spawn: a data race TSan reported
   * under the adversarial suite). A plain byte is its own location, and
   * still fits in the last byte of the 64. */
  unsigned char spare;    /* PX__TASK_SPARE_* bits, owned by the runner */
  /* The future, at offset px__task_future_offset. */
};

/* px_task.spare: the slow-poll warning was given for this task (task.c
 * remembers it for observe/, which warns once per task). */
#define PX__TASK_SPARE_SLOW_POLL 0x1u
/* px_task.spare: the task was allocated on cache lines of its own
 * (PX__CACHE_LINE), so it is freed as such. Set at spawn, before anyone
 * else sees the task. */
#define PX__TASK_SPARE_ALIGNED 0x2u

/* Where the future starts: the header rounded up to the strictest alignment. */
#define PX__TASK_FUTURE_OFFSET                                       \
  ((sizeof(struct px_task) + alignof(max_align_t) - 1) /             \
   alignof(max_align_t) * alignof(max_align_t))

/* The task's future. */
static inline px_future *px__task_future(px_task *t) {
  return (px_future *)((char *)t + PX__TASK_FUTURE_OFFSET);
}

/* The task being polled on this thread, or NULL. */
px_task *px__task_current(void);

/* Bytes one task of a future of `future_size` bytes occupies, with the
 * join handle's waker slot when `joinable`. */
size_t px__task_alloc_size(size_t future_size, bool joinable);

/* What px__task_run did with the task. */
typedef enum px__run_result {
  PX__RUN_DONE = 0,      /* completed, cancelled, or parked waiting for a wake */
  PX__RUN_RESCHEDULE = 1 /* it woke itself while running: queue it again */
} px__run_result;

/*
 * Claims, polls and settles one task the executor took off a queue (the
 * queue's reference comes with it). Returns whether the executor must queue
 * it again; in that case the reference goes back to the queue.
 */
px__run_result px__task_run(px_task *t);

/*
 * Drops the queue's reference to a task the executor will never run
 * (shutdown draining the queues).
 */
void px__task_drop_notified(px_task *t);

/* Shutdown: cancels a live task on the calling (runtime) thread. */
void px__task_shutdown(px_task *t);

/* The task waker (executors/task_waker.c): data is the task. */
extern const px_waker_vtable px__task_waker_vtable;
void px__task_wake_by_val(px_task *t);
void px__task_wake_by_ref(px_task *t);
void px__task_ref_inc(px_task *t);
void px__task_ref_dec(px_task *t);

#ifdef __cplusplus
}
#endif

#endif /* POLLUX_EXECUTORS_TASK_H */
