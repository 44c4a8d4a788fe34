/*
 * The FIFO executor: one thread (the one in block_on) runs tasks in the
 * order they were woken.
 *
 * Two queues: a local one the runtime thread pushes and pops without any
 * synchronisation (intrusive, through task->queue_next, so queuing never
 * allocates), and a remote one behind a mutex for wakes and spawns from other
 * threads, moved to the local queue in one piece when the loop sees its flag.
 */
#include <pthread.h>

#include "api/internal/px_internal.h"
#include "executors/executor.h"
#include "observe/observe.h"

typedef struct task_list {
  px_task *head, *tail;
  size_t len; /* for the metrics' queue depths */
} task_list;

struct px__executor {
  px_runtime *rt;
  uint32_t event_interval;
  task_list local;
  pthread_mutex_t remote_lock;
  task_list remote;
  atomic_int has_remote;
};

static void list_push(task_list *l, px_task *t) {
  t->queue_next = NULL;
  if (l->tail != NULL)
    l->tail->queue_next = t;
  else
    l->head = t;
  l->tail = t;
  l->len++;
}

static px_task *list_pop(task_list *l) {
  px_task *t = l->head;
  if (t != NULL) {
    l->head = t->queue_next;
    if (l->head == NULL) l->tail = NULL;
    l->len--;
  }
  return t;
}

/* Appends all of `from` to `to` and empties `from`. */
static void list_splice(task_list *to, task_list *from) {
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

static int fifo_create(px_runtime *rt, const px_config *cfg,
                       px__executor **out) {
  px__executor *ex = px__calloc(sizeof *ex);
  if (ex == NULL) return PX_ENOMEM;
  ex->rt = rt;
  ex->event_interval = cfg->event_interval;
  pthread_mutex_init(&ex->remote_lock, NULL);
  *out = ex;
  return 0;
}

static void fifo_destroy(px__executor *ex) {
  pthread_mutex_destroy(&ex->remote_lock);
  px__free(ex, sizeof *ex);
}

static void fifo_schedule(px__executor *ex, px_task *t) {
  if (px__likely(px__runtime_is_current(ex->rt))) {
    list_push(&ex->local, t);
    return;
  }
  pthread_mutex_lock(&ex->remote_lock);
  list_push(&ex->remote, t);
  __atomic_store_n(&px__runtime_observe(ex->rt)->injection_depth,
                   ex->remote.len, __ATOMIC_RELAXED);
  atomic_store(&ex->has_remote, 1);
  pthread_mutex_unlock(&ex->remote_lock);
  px__runtime_unpark(ex->rt);
}

static void take_remote(px__executor *ex) {
  if (!atomic_load_explicit(&ex->has_remote, memory_order_relaxed)) return;
  pthread_mutex_lock(&ex->remote_lock);
  atomic_store_explicit(&ex->has_remote, 0, memory_order_relaxed);
  list_splice(&ex->local, &ex->remote);
  __atomic_store_n(&px__runtime_observe(ex->rt)->injection_depth, 0,
                   __ATOMIC_RELAXED);
  pthread_mutex_unlock(&ex->remote_lock);
}

typedef struct park_check {
  px__executor *ex;
  px__thread_waker *main;
} park_check;

static bool has_work(void *arg) {
  park_check *pc = arg;
  return pc->ex->local.head != NULL || atomic_load(&pc->ex->has_remote) ||
         atomic_load(&pc->main->notified);
}

static int fifo_block_on(px__executor *ex, px_future *main) {
  /* The main future starts notified so that it is polled first. */
  px__thread_waker *tw = px__runtime_main_waker(ex->rt);
  atomic_store(&tw->notified, 1);
  px_waker waker = px__thread_waker_make(tw);
  px_context cx = {&waker, ex->rt};
  park_check pc = {ex, tw};
  /* The block_on thread is worker 0: its counters, trace track, log id. */
  px__observe_worker_enter(ex->rt, 0);

  for (;;) {
    if (px__thread_waker_take(tw)) {
      px__poll_probe probe;
      px__observe_poll_begin(ex->rt, &probe);
      int r = px_future_poll(main, &cx);
      px__observe_block_on_end(main, &probe);
      if (r != PX_PENDING) {
        px__observe_worker_leave();
        return r < 0 ? r : 0;
      }
    }
    take_remote(ex);

    /* A batch of at most event_interval tasks, then a look at I/O and
     * timers without blocking, so a task that always wakes itself cannot
     * starve sockets and sleeps (tokio's event_interval). */
    uint32_t n = 0;
    px_task *t;
    PX__GAUGE(ex->rt, local_depth, ex->local.len);
    while (n < ex->event_interval && (t = list_pop(&ex->local)) != NULL) {
      if (px__task_run(t) == PX__RUN_RESCHEDULE) list_push(&ex->local, t);
      n++;
    }
    if (ex->local.head == NULL)
      px__runtime_park(ex->rt, has_work, &pc);
    else
      px__runtime_turn(ex->rt);
  }
}

static void fifo_drain(px__executor *ex) {
  take_remote(ex);
  px_task *t;
  while ((t = list_pop(&ex->local)) != NULL) px__task_drop_notified(t);
}

const px__executor_ops px__fifo_ops = {
    .name = "fifo",
    .create = fifo_create,
    .destroy = fifo_destroy,
    .schedule = fifo_schedule,
    .block_on = fifo_block_on,
    .drain = fifo_drain,
};
