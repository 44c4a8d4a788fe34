/*
 * The task state word (internal to executors/task.c). One atomic 64-bit
 * word per task governs its life; the model is tokio's
 * runtime/task/state.rs. It guarantees that a task is never polled by two
 * threads at once, that a wake arriving while the task runs is never lost,
 * and that the task is freed exactly once.
 */
#ifndef POLLUX_EXECUTORS_TASK_STATE_H
#define POLLUX_EXECUTORS_TASK_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "executors/task.h"

/* An executor is polling (or cancelling) the task; whoever sets it owns the
 * future until it clears it. */
#define PX__TASK_RUNNING (1ull << 0)
/* The future finished or was cancelled and has been dropped; the output
 * slot is final. Never cleared. */
#define PX__TASK_COMPLETE (1ull << 1)
/* The task sits in a run queue, or was woken while RUNNING and will be
 * queued again when the poll ends. */
#define PX__TASK_NOTIFIED (1ull << 2)
/* A join handle exists and wants the output. */
#define PX__TASK_JOIN_INTEREST (1ull << 3)
/* The join handle stored a waker in px_task.join_waker. The bit hands
 * ownership of that slot back and forth: while it is clear only the join
 * handle may write the slot; while it is set only the task (completing)
 * may read it. */
#define PX__TASK_JOIN_WAKER (1ull << 4)
/* Abort or shutdown asked the task to stop; the next executor to claim it
 * drops the future instead of polling it. */
#define PX__TASK_CANCELLED (1ull << 5)
/* Bits 6-63: the reference count. One for the runtime's list of live tasks
 * (dropped at completion), one while the task is queued or running, one
 * per waker, one for the join handle. The last release frees the task. */
#define PX__TASK_REF_SHIFT 6
#define PX__TASK_REF_ONE (1ull << PX__TASK_REF_SHIFT)
#define PX__TASK_FLAGS_MASK (PX__TASK_REF_ONE - 1)
#define PX__TASK_REF_COUNT(s) ((s) >> PX__TASK_REF_SHIFT)

#endif /* POLLUX_EXECUTORS_TASK_STATE_H */
