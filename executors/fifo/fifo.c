/*
 * The FIFO executor: one thread (the one in block_on) runs tasks in the
 * order they were woken.
 *
 * Two queues: a local one the runtime thread pushes and pops without any
 * synchronisation (intrusive, through task->queue_next, so queuing never
 * allocates), and a remote one behind a mutex for wakes and spawns from other
 * threads, moved to the local queue in one piece when the loop sees its flag.
 * The loop itself is shared with the priority executor (executors/single_thread.h).
 */
#include "api/internal/px_internal.h"
#include "executors/executor.h"
#include "executors/single_thread.h"

struct px__executor {
  px_runtime *rt;
  uint32_t event_interval;
  px__task_list local;
  px__remote_queue remote;
};

static int fifo_create(px_runtime *rt, const px_config *cfg,
                       px__executor **out) {
  px__executor *ex = px__calloc(sizeof *ex);
  if (ex == NULL) return PX_ENOMEM;
  ex->rt = rt;
  ex->event_interval = cfg->event_interval;
  px__remote_init(&ex->remote);
  *out = ex;
  return 0;
}

static void fifo_destroy(px__executor *ex) {
  px__remote_destroy(&ex->remote);
  px__free(ex, sizeof *ex);
}

static void fifo_schedule(px__executor *ex, px_task *t) {
  if (px__likely(px__runtime_is_current(ex->rt)))
    px__task_list_push(&ex->local, t);
  else
    px__remote_push(&ex->remote, ex->rt, t);
}

static void take_remote(px__executor *ex) {
  px__remote_take(&ex->remote, ex->rt, &ex->local);
}

static px_task *pick(px__executor *ex) { return px__task_list_pop(&ex->local); }

static void push(px__executor *ex, px_task *t) {
  px__task_list_push(&ex->local, t);
}

static size_t queued(px__executor *ex) { return ex->local.len; }

static const px__single_thread_hooks hooks = {take_remote, pick, push, queued};

static int fifo_block_on(px__executor *ex, px_future *main) {
  return px__single_thread_block_on(ex->rt, ex, ex->event_interval, &hooks,
                                    &ex->remote, main);
}

static void fifo_drain(px__executor *ex) {
  take_remote(ex);
  px_task *t;
  while ((t = px__task_list_pop(&ex->local)) != NULL)
    px__task_drop_notified(t);
}

const px__executor_ops px__fifo_ops = {
    .name = "fifo",
    .create = fifo_create,
    .destroy = fifo_destroy,
    .schedule = fifo_schedule,
    .block_on = fifo_block_on,
    .drain = fifo_drain,
};
