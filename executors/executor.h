/*
 * The executor interface and the task internals it shares with the runtime
 * (internal). An executor decides where ready tasks wait and which thread
 * polls them; everything about a task's life (state word, references, join
 * handles, cancellation) lives in task.c and is the same for every executor.
 */
#ifndef POLLUX_EXECUTORS_EXECUTOR_H
#define POLLUX_EXECUTORS_EXECUTOR_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pollux/list.h"
#include "pollux/runtime.h"
#include "pollux/task.h"
#include "pollux/time.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The task state word (documented in pollux/task.h) -------------- */

#define PX__TASK_RUNNING (1ull << 0)
#define PX__TASK_COMPLETE (1ull << 1)
#define PX__TASK_NOTIFIED (1ull << 2)
#define PX__TASK_JOIN_INTEREST (1ull << 3)
#define PX__TASK_JOIN_WAKER (1ull << 4)
#define PX__TASK_CANCELLED (1ull << 5)
#define PX__TASK_REF_SHIFT 6
#define PX__TASK_REF_ONE (1ull << PX__TASK_REF_SHIFT)
#define PX__TASK_FLAGS_MASK (PX__TASK_REF_ONE - 1)

/*
 * The task header. The future follows it in the same allocation, aligned for
 * any type. The executor owns `queue_next` while the task is NOTIFIED.
 */
struct px_task {
  _Atomic uint64_t state;
  px_task *queue_next;               /* run queue link (executor's) */
  px__list owned;                    /* runtime's list of live tasks */
  px_runtime *runtime;
  px_waker join_waker;               /* guarded by JOIN_WAKER */
  /* Immutable after spawn. Packed so the header stays at 64 bytes. */
  uint64_t id : 48;       /* unique per process, from 1 */
  uint64_t priority : 8;  /* 0..PX_PRIORITY_LEVELS-1, higher runs first */
  uint64_t spare : 8;      /* PX__TASK_SPARE_* bits, owned by the runner */
  /* The future, at offset px__task_future_offset. */
};

/* px_task.spare: the slow-poll warning was given (observe/). */
#define PX__TASK_SPARE_SLOW_POLL 0x1u

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

/* Bytes one task of a future of `future_size` bytes occupies. */
size_t px__task_alloc_size(size_t future_size);

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

/*
 * An intrusive FIFO of tasks through task->queue_next, so queuing never
 * allocates: every executor's run and injection queues that are not rings.
 */

typedef struct px__task_list {
  px_task *head, *tail;
  size_t len; /* for the metrics' queue depths */
} px__task_list;

static inline void px__task_list_push(px__task_list *l, px_task *t) {
  t->queue_next = NULL;
  if (l->tail != NULL)
    l->tail->queue_next = t;
  else
    l->head = t;
  l->tail = t;
  l->len++;
}

static inline px_task *px__task_list_pop(px__task_list *l) {
  px_task *t = l->head;
  if (t != NULL) {
    l->head = t->queue_next;
    if (l->head == NULL) l->tail = NULL;
    l->len--;
  }
  return t;
}

/* Appends all of `from` to `to` and empties `from`. */
static inline void px__task_list_splice(px__task_list *to,
                                        px__task_list *from) {
  if (from->head == NULL) return;
  if (to->tail != NULL)
    to->tail->queue_next = from->head;
  else
    to->head = from->head;
  to->tail = from->tail;
  to->len += from->len;
  from->head = from->tail = NULL;
  from->len = 0;
}

/* Task waker entry points (wakers/task_waker.c). */
extern const px_waker_vtable px__task_waker_vtable;
void px__task_wake_by_val(px_task *t);
void px__task_wake_by_ref(px_task *t);
void px__task_ref_inc(px_task *t);
void px__task_ref_dec(px_task *t);

/* ---- The executor ops table ----------------------------------------- */

typedef struct px__executor px__executor;

typedef struct px__executor_ops {
  const char *name;
  /* Creates the executor for `rt` (after the reactor and timer exist). */
  int (*create)(px_runtime *rt, const px_config *cfg, px__executor **out);
  void (*destroy)(px__executor *ex);
  /*
   * Queues a task that was just NOTIFIED; the queue now owns one reference.
   * Called from any thread: from the runtime's own thread it is a plain
   * push, from elsewhere it must be thread-safe and unpark the runtime.
   */
  void (*schedule)(px__executor *ex, px_task *t);
  /*
   * Drives the runtime on the calling thread until `main` completes: polls
   * `main` whenever its waker fired, runs tasks, and lets the runtime wait on
   * the reactor and timers when nothing is ready.
   */
  int (*block_on)(px__executor *ex, px_future *main);
  /* Shutdown: hands every queued task to px__task_drop_notified. */
  void (*drain)(px__executor *ex);
} px__executor_ops;

/* The backend chosen by --//executors:executor (its *_default target). */
extern const px__executor_ops *const px__executor_default;

/* ---- What the runtime offers executors (executors/runtime.c) -------- */

/*
 * Checks timers and I/O once without waiting, waking what became ready.
 * Returns the number of events and timers handled.
 */
int px__runtime_turn(px_runtime *rt);

/*
 * Parks the calling runtime thread: marks it parked, asks `has_work` once
 * more (so a remote wake that raced with the decision is seen), and if there
 * is still nothing to do waits on the reactor until the next timer deadline,
 * an I/O event or px__runtime_unpark. Wakes what became ready.
 */
int px__runtime_park(px_runtime *rt, bool (*has_work)(void *arg), void *arg);

/*
 * Interrupts px__runtime_park from any thread. Costs one atomic load when the
 * runtime is not parked, one reactor wake-up (a syscall) when it is.
 */
void px__runtime_unpark(px_runtime *rt);

/* Hands a just-NOTIFIED task to the runtime's executor (any thread). */
void px__runtime_schedule(px_runtime *rt, px_task *t);

/*
 * The runtime's list of live tasks, which shutdown walks to drop every task
 * exactly once. adopt fails with PX_ESHUTDOWN once shutdown began.
 */
int px__runtime_adopt(px_runtime *rt, px_task *t);
void px__runtime_disown(px_runtime *rt, px_task *t);
/* Takes t off the list without touching its references; true if it was on. */
bool px__runtime_unlink(px_runtime *rt, px_task *t);

/* Marks the calling thread as running `rt` (NULL to leave). Returns the previous one. */
px_runtime *px__runtime_enter(px_runtime *rt);

/* True when the calling thread is currently running `rt`. */
bool px__runtime_is_current(const px_runtime *rt);

/*
 * Thread waker, used by block_on to be told that `main` must be polled. The
 * one block_on uses lives in the runtime, not on block_on's stack, so a clone
 * left behind in some registration after block_on returned can still be
 * woken harmlessly for as long as the runtime exists.
 */
typedef struct px__thread_waker {
  atomic_int notified;
  atomic_int sleeping; /* the owner blocks in px__thread_waker_park */
  /* Unparked (a reactor wake-up) when woken, for executors whose block_on
   * thread waits in the reactor; NULL when it waits in thread_waker_park. */
  px_runtime *runtime;
} px__thread_waker;
px_waker px__thread_waker_make(px__thread_waker *tw);
/*
 * Blocks the calling thread (the waker's owner) until the waker fired, on a
 * futex, without the reactor: for executors whose block_on thread only polls
 * the main future while worker threads run tasks. Returns at once if it
 * already fired; does not reset it (px__thread_waker_take does).
 */
void px__thread_waker_park(px__thread_waker *tw);
/* The runtime's block_on waker state (see above). */
px__thread_waker *px__runtime_main_waker(px_runtime *rt);
/* Returns whether the waker fired since the last call, and resets it. */
bool px__thread_waker_take(px__thread_waker *tw);

/* ---- What the runtime offers leaf futures (timers, reactor) --------- */

/* Arms `node` to wake `waker` at `deadline` (ns). Runtime thread only. */
int px__runtime_timer_insert(px_runtime *rt, px_timer_node *node,
                             uint64_t deadline_ns, const px_waker *waker);
void px__runtime_timer_cancel(px_runtime *rt, px_timer_node *node);

struct px__reactor_ops;
struct px__reactor;
/* The reactor of a runtime. */
void px__runtime_reactor(px_runtime *rt, const struct px__reactor_ops **ops,
                         struct px__reactor **r);

#ifdef __cplusplus
}
#endif

#endif
