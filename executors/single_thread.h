/*
 * What the single-threaded executors (fifo, priority) share (internal),
 * on top of px__task_list (executors/task_list.h):
 *
 *   - px__remote_queue: where wakes and spawns from other threads wait,
 *     behind a mutex, until the runtime thread moves them in one piece;
 *   - px__single_thread_block_on: the block_on loop itself. The calling thread polls
 *     the main future when it was woken, runs a batch of at most
 *     event_interval ready tasks, then looks at I/O and timers: without
 *     blocking when tasks are still ready, so a task that always wakes
 *     itself cannot starve sockets and sleeps (tokio's event_interval), and
 *     blocking in the reactor when none is.
 *
 * An executor differs only in the order it picks tasks, so the loop takes
 * its queue through a table of hooks. Everything here is static inline and
 * the tables are constants, so the compiler turns the hooks back into
 * direct, inlined calls: sharing the loop costs the hot path nothing.
 */
#ifndef POLLUX_EXECUTORS_SINGLE_THREAD_H
#define POLLUX_EXECUTORS_SINGLE_THREAD_H

#include <pthread.h>
#include <stdatomic.h>

#include "api/internal/px_internal.h"
#include "executors/executor.h"
#include "executors/task_list.h"
#include "observe/observe.h"

/* ---- Wakes from other threads -------------------------------------------- */

typedef struct px__remote_queue {
  pthread_mutex_t lock;
  px__task_list list;
  /* Set while `list` may be non-empty: the runtime thread reads it without
   * the lock on every turn, and takes the lock only when it is set. */
  atomic_int pending;
} px__remote_queue;

static inline void px__remote_init(px__remote_queue *q) {
  pthread_mutex_init(&q->lock, NULL);
  q->list.head = q->list.tail = NULL;
  q->list.len = 0;
  atomic_init(&q->pending, 0);
}

static inline void px__remote_destroy(px__remote_queue *q) {
  pthread_mutex_destroy(&q->lock);
}

/* Queues `t` from a thread that is not the runtime's, and unparks it. */
static inline void px__remote_push(px__remote_queue *q, px_runtime *rt,
                                   px_task *t) {
  pthread_mutex_lock(&q->lock);
  px__task_list_push(&q->list, t);
  px__observe_injection_depth(px__runtime_observe(rt), q->list.len);
  atomic_store(&q->pending, 1);
  pthread_mutex_unlock(&q->lock);
  px__runtime_unpark(rt);
}

/* Moves every remote wake, in wake order, to the end of `out`. */
static inline void px__remote_take(px__remote_queue *q, px_runtime *rt,
                                   px__task_list *out) {
  if (!atomic_load_explicit(&q->pending, memory_order_relaxed)) return;
  pthread_mutex_lock(&q->lock);
  atomic_store_explicit(&q->pending, 0, memory_order_relaxed);
  px__task_list_splice(out, &q->list);
  px__observe_injection_depth(px__runtime_observe(rt), 0);
  pthread_mutex_unlock(&q->lock);
}

/* ---- The block_on loop --------------------------------------------------- */

typedef struct px__single_thread_hooks {
  /* Moves the remote wakes into the executor's own queue. */
  void (*take_remote)(px__executor *ex);
  /* The next task to poll, or NULL when none is ready. */
  px_task *(*pick)(px__executor *ex);
  /* Queues a task again (it woke itself while it ran: a yield). */
  void (*push)(px__executor *ex, px_task *t);
  /* Tasks ready in the executor's own queue. */
  size_t (*queued)(px__executor *ex);
} px__single_thread_hooks;

/* What the park check needs (px__runtime_park calls back with it). */
typedef struct px__single_thread_park {
  px__executor *ex;
  const px__single_thread_hooks *hooks;
  px__remote_queue *remote;
  px__thread_waker *main;
} px__single_thread_park;

static inline bool px__single_thread_has_work(void *arg) {
  px__single_thread_park *p = arg;
  return p->hooks->queued(p->ex) != 0 || atomic_load(&p->remote->pending) ||
         atomic_load(&p->main->notified);
}

static inline int px__single_thread_block_on(
    px_runtime *rt, px__executor *ex, uint32_t event_interval,
    const px__single_thread_hooks *hooks, px__remote_queue *remote,
    px_future *main) {
  /* The main future starts notified so that it is polled first. */
  px__thread_waker *tw = px__runtime_main_waker(rt);
  atomic_store(&tw->notified, 1);
  px_waker waker = px__thread_waker_make(tw);
  px_context cx = {&waker, rt};
  px__single_thread_park park = {ex, hooks, remote, tw};
  /* The block_on thread is worker 0: its counters, trace track, log id. */
  px__observe *obs = px__runtime_observe(rt);
  px__observe_worker_enter(obs, 0);

  for (;;) {
    if (px__thread_waker_take(tw)) {
      px__poll_probe probe;
      px__observe_block_on_begin(obs, &probe);
      int r = px__coop_poll(main, &cx); /* with a budget, as a task */
      px__observe_block_on_end(main, &probe);
      if (r != PX_PENDING) {
        px__observe_worker_leave();
        return r < 0 ? r : 0;
      }
    }
    hooks->take_remote(ex);

    uint32_t n = 0;
    px_task *t;
    PX__GAUGE(obs, local_depth, hooks->queued(ex));
    while (n < event_interval && (t = hooks->pick(ex)) != NULL) {
      if (px__task_run(t) == PX__RUN_RESCHEDULE) hooks->push(ex, t);
      n++;
    }
    if (hooks->queued(ex) == 0)
      px__runtime_park(rt, px__single_thread_has_work, &park);
    else
      px__runtime_turn(rt);
  }
}

#endif /* POLLUX_EXECUTORS_SINGLE_THREAD_H */
