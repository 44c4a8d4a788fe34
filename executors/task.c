/*
 * Task life: spawning, the state word's transitions, polling, completion,
 * cancellation and join handles. Every executor uses these unchanged; the
 * state word (executors/task_state.h) is what makes them safe when
 * several threads poll, wake and join at once.
 *
 * Reference counting, in one place: a task starts with one reference for the
 * runtime's list of live tasks (dropped at completion), one for the run queue
 * (it starts NOTIFIED) and one for the join handle if there is one. Running
 * a task borrows the queue's reference; a waker owns one reference.
 */
#include <assert.h>
#include <stdatomic.h>
#include <string.h>

#include "api/internal/px_internal.h"
#include "api/internal/services.h"
#include "executors/executor.h"
#include "executors/task.h"
#include "executors/task_state.h"
#include "observe/observe.h"

/* Every task pays for the header; growing it costs every task (see bench/
 * million_timers' bytes per sleeping task). */
_Static_assert(sizeof(struct px_task) == 48, "task header must stay 48 bytes");
_Static_assert(PX_PRIORITY_LEVELS <= 128, "priority has 7 bits");


static _Atomic uint64_t next_task_id = 1;
static _Thread_local px_task *current_task;
/* current_task woke itself by reference during its poll (a yield, a
 * budget spent, a resource ready again): px__task_wake_by_ref sets this
 * instead of the NOTIFIED bit, and px__task_run sets the bit with the same
 * CAS that clears RUNNING. While RUNNING is held here nothing else reads
 * NOTIFIED (other wakes only add to it; shutdown claims only tasks that
 * are not running), so the word says the same once the poll is over, for
 * one locked instruction less per yield. */
static _Thread_local bool self_notified;

/* Ids come from the global counter in blocks of 1024 per thread, so a
 * spawn costs no shared atomic (ids stay unique, not dense). */
enum { ID_BLOCK = 1024 };
static _Thread_local uint64_t id_next, id_end;

static uint64_t take_task_id(void) {
  if (id_next == id_end) {
    id_next = atomic_fetch_add_explicit(&next_task_id, ID_BLOCK,
                                        memory_order_relaxed);
    id_end = id_next + ID_BLOCK;
  }
  return id_next++;
}

px_task *px__task_current(void) { return current_task; }

void px_spawn_opts_init(px_spawn_opts *opts) {
  if (opts != NULL) opts->priority = PX_PRIORITY_INHERIT;
}

int px_task_current_priority(void) {
  return current_task != NULL ? (int)current_task->priority
                              : PX_PRIORITY_DEFAULT;
}

/* Where the join handle's waker slot starts: after the future, aligned. */
static size_t join_slot_offset(size_t future_size) {
  return PX__TASK_FUTURE_OFFSET +
         (future_size + alignof(px_waker) - 1) / alignof(px_waker) *
             alignof(px_waker);
}

size_t px__task_alloc_size(size_t future_size, bool joinable) {
  return joinable ? join_slot_offset(future_size) + sizeof(px_waker)
                  : PX__TASK_FUTURE_OFFSET + future_size;
}

/* The join handle's waker slot of a joinable task. The future's size is
 * read from its vtable, which nothing writes after spawn. */
static px_waker *join_waker(px_task *t) {
  assert(t->joinable);
  return (px_waker *)((char *)t +
                      join_slot_offset(px__task_future(t)->vtable->size));
}

/* A task of `size` bytes on cache lines of its own fills them whole, so
 * that its last line holds nothing of whatever the allocator puts next. */
static size_t lines_of(size_t size) {
  return (size + PX__CACHE_LINE - 1) & ~(size_t)(PX__CACHE_LINE - 1);
}

static px_task *task_alloc(size_t size, bool aligned) {
  return aligned ? px__alloc_aligned(lines_of(size), PX__CACHE_LINE)
                 : px__alloc(size);
}

static void task_free(px_task *t, size_t size, bool aligned) {
  if (aligned)
    px__free_aligned(t, lines_of(size), PX__CACHE_LINE);
  else
    px__free(t, size);
}

static void task_dealloc(px_task *t) {
  /* The future was dropped at completion; only the join waker can remain. */
  if (t->joinable) px_waker_drop(join_waker(t));
  px_future *f = px__task_future(t);
  task_free(t, px__task_alloc_size(f->vtable->size, t->joinable),
            (t->spare & PX__TASK_SPARE_ALIGNED) != 0);
}

void px__task_ref_inc(px_task *t) { px__task_state_ref_inc(t); }

/* Drops n references; the last one frees the task. */
static void ref_sub(px_task *t, uint64_t n) {
  if (px__task_state_ref_dec(t, n)) task_dealloc(t);
}

void px__task_ref_dec(px_task *t) { ref_sub(t, 1); }

/* ---- Spawning --------------------------------------------------------- */

static void join_handle_clear(px_join_handle *join);

int px_runtime_spawn(px_runtime *rt, const px_future *future,
                     px_join_handle *join) {
  return px_runtime_spawn_with(rt, future, join, NULL);
}

int px_runtime_spawn_with(px_runtime *rt, const px_future *future,
                          px_join_handle *join, const px_spawn_opts *opts) {
  if (join != NULL) join_handle_clear(join);
  int priority = opts != NULL ? opts->priority : PX_PRIORITY_INHERIT;
  if (priority == PX_PRIORITY_INHERIT)
    priority = px_task_current_priority();
  else if (priority < 0 || priority >= PX_PRIORITY_LEVELS)
    return PX_EINVAL;
  if (rt == NULL || future == NULL || future->vtable == NULL ||
      future->vtable->poll == NULL ||
      future->vtable->size < sizeof(px_future) ||
      (future->state &
       (PX_FUTURE_POLLED | PX_FUTURE_DONE | PX_FUTURE_DROPPED)) != 0)
    return PX_EINVAL; /* a polled future may point into itself: no copy */

  size_t size = px__task_alloc_size(future->vtable->size, join != NULL);
  bool aligned = px__runtime_aligns_tasks(rt);
  px_task *t = task_alloc(size, aligned);
  if (t == NULL) return PX_ENOMEM;
  /* The future moves into the task: legal because it was never polled. */
  memcpy(px__task_future(t), future, future->vtable->size);
  px__task_state_init(t, join != NULL);
  t->queue_next = NULL;
  t->owned.next = t->owned.prev = NULL;
  t->runtime = rt;
  t->id = take_task_id();
  t->priority = (uint64_t)priority;
  t->joinable = join != NULL;
  if (join != NULL) *join_waker(t) = (px_waker)PX_WAKER_EMPTY;
  t->spare = aligned ? PX__TASK_SPARE_ALIGNED : 0;

  int rc = px__runtime_adopt(rt, t);
  if (rc < 0) {
    task_free(t, size, aligned);
    return rc;
  }
  if (join != NULL) join->task = t;
  PX__COUNT(px__runtime_observe(rt), spawned, 1);
  PX__LOG(PX__LOG_DEBUG, "spawn task %llu (%s)", (unsigned long long)t->id,
          future->vtable->name != NULL ? future->vtable->name : "?");
  px__runtime_schedule(rt, t);
  return 0;
}

int px_spawn_with(const px_future *future, px_join_handle *join,
                  const px_spawn_opts *opts) {
  px_runtime *rt = px_runtime_current();
  if (rt == NULL) {
    if (join != NULL) join_handle_clear(join);
    return PX_ENORUNTIME;
  }
  return px_runtime_spawn_with(rt, future, join, opts);
}

int px_spawn(const px_future *future, px_join_handle *join) {
  return px_spawn_with(future, join, NULL);
}

uint64_t px_task_current_id(void) {
  return current_task != NULL ? current_task->id : 0;
}

/* ---- Completion ------------------------------------------------------- */

/*
 * Called by whoever holds RUNNING once the future is finished (READY,
 * misuse, or cancelled): drops the future, publishes COMPLETE, wakes the
 * joiner, leaves the list of live tasks and gives back the running reference.
 */
static void task_complete(px_task *t, int err_override) {
  px_future *f = px__task_future(t);
  PX__COUNT(px__runtime_observe(t->runtime), completed, 1);
  PX__LOG(PX__LOG_DEBUG, "task %llu finished (error %d)",
          (unsigned long long)t->id, err_override < 0 ? err_override : f->error);
  /* Dropping first releases timers, sockets and sub-futures before anyone
   * can observe COMPLETE; the output slot survives the drop. An unfinished
   * future's slot may still hold what it awaits (an async frame's, a
   * sleep's runtime), so the override comes after the drop. */
  px__future_drop(f);
  if (err_override < 0) {
    f->output.u64 = 0;
    f->error = err_override;
  }

  uint64_t s = px__task_transition_to_complete(t);
  /* With JOIN_WAKER set when COMPLETE appeared, the join handle will not
   * write the slot any more, so reading it here is race-free. We only read
   * (wake by reference): the slot is dropped with the task's memory, by
   * whoever releases the last reference, when nobody else can touch it. */
  if ((s & PX__TASK_JOIN_INTEREST) && (s & PX__TASK_JOIN_WAKER))
    px_waker_wake_by_ref(join_waker(t));
  /* The list's reference and the running one go in one atomic step. */
  bool linked = px__runtime_unlink(t->runtime, t);
  ref_sub(t, linked ? 2 : 1);
}

static void task_cancel(px_task *t) { task_complete(t, PX_ECANCELED); }

/* ---- Running ---------------------------------------------------------- */

px__run_result px__task_run(px_task *t) {
  switch (px__task_transition_to_running(t)) {
    case PX__TO_RUNNING_OK:
      break;
    case PX__TO_RUNNING_CANCELLED:
      task_cancel(t);
      return PX__RUN_DONE;
    case PX__TO_RUNNING_FAILED:
      /* Finished (shutdown or abort got there first): just let go. */
      px__task_ref_dec(t);
      return PX__RUN_DONE;
  }

  px_future *f = px__task_future(t);
  /* The waker handed to poll is borrowed: the running reference keeps the
   * task alive for the poll, so making it costs no count and no allocation. */
  px_waker waker = {&px__task_waker_vtable, t};
  px_context cx = {&waker, t->runtime};
  /* Task polls never nest (block_on inside a runtime is refused, and each
   * executor runs one task at a time on a thread), so what the poll sets
   * is put back to what a thread outside any poll has, not saved first. */
  assert(current_task == NULL);
  current_task = t;
  px__coop_budget = PX__COOP_BUDGET;
  px__poll_time.rt = t->runtime;
  px__poll_time.elapsed_ns = px__runtime_elapsed(t->runtime);
  px__poll_probe probe;
  px__observe_poll_begin(px__runtime_observe(t->runtime), &probe);
  int r = (int)px__future_poll_unchecked(f, &cx);
  /* Only the thread that holds RUNNING touches `spare` after spawn. */
  if (px__unlikely(px__observe_poll_end(&probe)) &&
      px__observe_poll_report(&probe, t->id, f,
                              t->spare & PX__TASK_SPARE_SLOW_POLL))
    t->spare |= PX__TASK_SPARE_SLOW_POLL;
  current_task = NULL;
  px__coop_budget = -1; /* no budget outside a task poll (px_internal.h) */
  px__poll_time.rt = NULL;
  bool notified = self_notified;
  self_notified = false;

  if (r != PX_PENDING) {
    task_complete(t, r < 0 ? r : 0);
    return PX__RUN_DONE;
  }

  switch (px__task_transition_to_idle(t, notified)) {
    case PX__TO_IDLE_OK:
      return PX__RUN_DONE;
    case PX__TO_IDLE_NOTIFIED:
      /* Woken while running: the running reference becomes the queue's. */
      return PX__RUN_RESCHEDULE;
    case PX__TO_IDLE_CANCELLED:
      break;
  }
  task_cancel(t);
  return PX__RUN_DONE;
}

void px__task_drop_notified(px_task *t) { px__task_ref_dec(t); }

/* Shutdown: claim an idle or queued task and cancel it on this thread. */
void px__task_shutdown(px_task *t) {
  if (!px__task_transition_to_shutdown(t)) {
    /* Executors stop their workers before shutdown, so nothing runs now;
     * a COMPLETE task has already left the list. Marked; move on. */
    px__runtime_disown(t->runtime, t);
    return;
  }
  /* Claiming took the running role; it needs a reference of its own because
   * a queued copy of the task still holds the queue's. */
  px__task_ref_inc(t);
  task_cancel(t);
}

/* ---- Waking (the task waker's vtable, in wakers/, calls these) ---------- */

/*
 * What a wake does once the state word said what it is. `rt` and `id` were
 * read before the transition: a wake by value that finds the task running
 * (MARKED) gave its reference away in the transition, and the runner may
 * complete and free the task at once, so the task must not be touched
 * after it (the thread sanitizer caught such a read racing with the
 * block's next life as a freshly spawned task).
 */
/* Inline into its two callers: as a call, saving and restoring registers
 * was 13 of the 40 instructions of a wake (bench/yield_many, callgrind). */
static inline __attribute__((always_inline)) void wake_settle(
    px_task *t, px__to_notified r, px_runtime *rt, uint64_t id) {
  switch (r) {
    case PX__TO_NOTIFIED_NOTHING:
      return;
    case PX__TO_NOTIFIED_DEALLOC:
      task_dealloc(t);
      return;
    case PX__TO_NOTIFIED_MARKED:
      px__observe_wake(px__runtime_observe(rt), id);
      return;
    case PX__TO_NOTIFIED_SUBMIT: /* the queue's reference keeps it alive */
      px__observe_wake(px__runtime_observe(rt), id);
      px__runtime_schedule(rt, t);
      return;
  }
}

void px__task_wake_by_val(px_task *t) {
  px_runtime *rt = t->runtime;
  uint64_t id = t->id;
  wake_settle(t, px__task_transition_to_notified_by_val(t), rt, id);
}

void px__task_wake_by_ref(px_task *t) {
  if (t == current_task) {
    /* Woken by its own poll: recorded here, set in the word by
     * px__task_run (see self_notified). */
    if (!self_notified) {
      self_notified = true;
      px__observe_wake(px__runtime_observe(t->runtime), t->id);
    }
    return;
  }
  /* The caller's reference keeps the task alive whatever the transition
   * did, so its fields are read after it: nothing held across the CAS. */
  px__to_notified r = px__task_transition_to_notified_by_ref(t);
  if (r != PX__TO_NOTIFIED_NOTHING) wake_settle(t, r, t->runtime, t->id);
}

/* ---- Join handles ----------------------------------------------------- */

static px_poll join_handle_poll(px_future *self, px_context *cx);
static void join_handle_drop(px_future *self);

static const px_future_vtable join_handle_vtable = {
    sizeof(px_join_handle), "join_handle", join_handle_poll,
    join_handle_drop};

static void join_handle_clear(px_join_handle *join) {
  px_future_init(&join->base, &join_handle_vtable);
  join->task = NULL;
}

/* Takes the finished task's result and lets go of the handle's reference. */
static px_poll join_handle_finish(px_join_handle *j) {
  px_task *t = j->task;
  px_future *f = px__task_future(t);
  j->base.output = f->output;
  j->base.error = f->error;
  j->task = NULL;
  px__task_unset_join_interest(t); /* complete: the waker slot stays */
  px__task_ref_dec(t);
  return PX_READY;
}

static px_poll join_handle_poll(px_future *self, px_context *cx) {
  px_join_handle *j = (px_join_handle *)self;
  px_task *t = j->task;
  if (t == NULL) {
    j->base.error = PX_EINVAL;
    return PX_READY;
  }
  /* Joining finished tasks in a loop must give the others a turn too. */
  if (!px__coop_proceed(cx)) return PX_PENDING;
  uint64_t s = px__task_state_load(t);
  if (s & PX__TASK_COMPLETE) return join_handle_finish(j);
  px__coop_refund(); /* waiting, not progress; completion is re-checked below */

  px_waker *slot = join_waker(t);
  if (s & PX__TASK_JOIN_WAKER) {
    /* A waker is stored. If it wakes the same task, we are done. */
    if (px_waker_will_wake(slot, cx->waker)) return PX_PENDING;
    /* Take the slot back to replace it; fails only if the task completed. */
    if (!px__task_unset_join_waker(t)) return join_handle_finish(j);
    px_waker_drop(slot);
  }
  /* JOIN_WAKER is clear: the slot is ours until we set the bit. */
  *slot = px_waker_clone(cx->waker);
  if (!px__task_set_join_waker(t)) {
    px_waker_drop(slot);
    return join_handle_finish(j);
  }
  return PX_PENDING;
}

/* Dropping a handle before it was awaited to the end detaches the task
 * (it keeps running). */
static void join_handle_drop(px_future *self) {
  px_join_handle *j = (px_join_handle *)self;
  px_task *t = j->task;
  if (t == NULL) return;
  j->task = NULL;
  uint64_t s = px__task_unset_join_interest(t);
  /* Clearing JOIN_WAKER before completion handed the slot back to us. */
  if (!(s & PX__TASK_COMPLETE) && (s & PX__TASK_JOIN_WAKER))
    px_waker_drop(join_waker(t));
  px__task_ref_dec(t);
}

int px_join_handle_abort(px_join_handle *join) {
  if (join == NULL || join->task == NULL) return PX_EINVAL;
  px_task *t = join->task;
  /* An idle task would never be polled again; it is queued so that the
   * executor, on the runtime's thread, drops its future. */
  if (px__task_transition_to_notified_and_cancel(t) == PX__TO_NOTIFIED_SUBMIT)
    px__runtime_schedule(t->runtime, t);
  return 0;
}

uint64_t px_join_handle_id(const px_join_handle *join) {
  return (join == NULL || join->task == NULL) ? 0 : join->task->id;
}
