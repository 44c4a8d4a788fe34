/*
 * The executor interface (internal): the ops table an executor implements
 * and what the runtime offers executors in return. An executor decides
 * where ready tasks wait and which thread polls them; the task's own life
 * is in executors/task.h, the intrusive task queue in
 * executors/task_list.h, and what leaf code may call in
 * api/internal/services.h.
 */
#ifndef POLLUX_EXECUTORS_EXECUTOR_H
#define POLLUX_EXECUTORS_EXECUTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "executors/task.h"
#include "pollux/runtime.h"
#include "wakers/thread_waker.h"

#ifdef __cplusplus
extern "C" {
#endif

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
  /*
   * Whether tasks get cache lines of their own (PX__CACHE_LINE): for
   * executors that run tasks on several threads. Packed by the allocator,
   * a task's last line held its neighbour's state word, so two workers
   * running neighbours wrote one line (work stealing's yield_many: no
   * faster on 2 workers than on 1). Single-threaded executors keep tasks
   * packed: the line it can cost a task is memory for nothing there.
   */
  bool align_tasks;
} px__executor_ops;

/*
 * The backend chosen by --//executors:executor, defined by the selected
 * backend's `default` library (a registration: see executors/BUILD.bazel).
 */
extern const px__executor_ops *const px__executor_default;

/* ---- What the runtime offers executors (executors/runtime.c) -------- */

struct px__observe;

/*
 * What executors and task.c read from the runtime on every spawn, poll and
 * wake: the observer they push counters and trace events into
 * (observe/observe.h), whether tasks get lines of their own, and the time
 * each task poll is judged by. struct px_runtime (runtime.c) begins with
 * it, which runtime.c asserts, so reading it is one load instead of a call.
 */
typedef struct px__runtime_head {
  struct px__observe *observe;
  bool align_tasks; /* the executor's px__executor_ops.align_tasks */
  /* The instant up to which the timers have fired (px__runtime_elapsed_ns,
   * api/internal/services.h): written under the runtime's timer lock, read
   * as every task poll begins. */
  _Atomic uint64_t elapsed_ns;
} px__runtime_head;

/* The runtime's observer (never NULL while the runtime exists). */
static inline struct px__observe *px__runtime_observe(px_runtime *rt) {
  return ((px__runtime_head *)(void *)rt)->observe;
}

/* px__runtime_elapsed_ns without the call: once per task poll (task.c). */
static inline uint64_t px__runtime_elapsed(px_runtime *rt) {
  return atomic_load_explicit(&((px__runtime_head *)(void *)rt)->elapsed_ns,
                              memory_order_acquire);
}

/* Whether rt's executor wants its tasks on lines of their own
 * (px__executor_ops.align_tasks): read on every spawn. */
static inline bool px__runtime_aligns_tasks(const px_runtime *rt) {
  return ((const px__runtime_head *)(const void *)rt)->align_tasks;
}

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
 * The runtime's block_on waker (wakers/thread_waker.h). It unparks the
 * runtime when woken, for executors whose block_on thread waits in the
 * reactor; an executor whose block_on thread waits in
 * px__thread_waker_park clears its `unpark` before block_on.
 */
px__thread_waker *px__runtime_main_waker(px_runtime *rt);

#ifdef __cplusplus
}
#endif

#endif /* POLLUX_EXECUTORS_EXECUTOR_H */
