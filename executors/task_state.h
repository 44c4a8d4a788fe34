/*
 * The task state word (internal to executors/task.c). One atomic 64-bit
 * word per task governs its life; the model is tokio's
 * runtime/task/state.rs. It guarantees that a task is never polled by two
 * threads at once, that a wake arriving while the task runs is never lost,
 * and that the task is freed exactly once.
 */
#ifndef POLLUX_EXECUTORS_TASK_STATE_H
#define POLLUX_EXECUTORS_TASK_STATE_H

#include <assert.h>
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
/* The join handle stored a waker in its slot (task.c join_waker). The bit hands
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


/*
 * The transitions. Each one is the only code that changes the bits it
 * names: it takes the word as it is, checks (by assertion) what must already
 * hold, makes its change in one compare-and-swap and returns what the caller
 * must do next. task.c calls them and never touches the word itself.
 */

static inline uint64_t px__task_state_load(px_task *t) {
  return atomic_load_explicit(&t->state, memory_order_acquire);
}

/* Compare-and-swap of the whole word; on failure *s holds the fresh value. */
static inline bool px__task_state_cas(px_task *t, uint64_t *s, uint64_t ns) {
  return atomic_compare_exchange_weak_explicit(
      &t->state, s, ns, memory_order_acq_rel, memory_order_acquire);
}

/*
 * A new task starts queued: NOTIFIED, with a reference for the runtime's
 * list, one for the run queue and, with a join handle, one for it and
 * JOIN_INTEREST. Not yet shared, so a plain store.
 */
static inline void px__task_state_init(px_task *t, bool join) {
  atomic_init(&t->state,
              PX__TASK_NOTIFIED |
                  (join ? PX__TASK_JOIN_INTEREST | 3 * PX__TASK_REF_ONE
                        : 2 * PX__TASK_REF_ONE));
}

/* ---- References -------------------------------------------------------- */

/* A new reference (a waker clone, shutdown's hold). */
static inline void px__task_state_ref_inc(px_task *t) {
  uint64_t prev =
      atomic_fetch_add_explicit(&t->state, PX__TASK_REF_ONE, memory_order_relaxed);
  (void)prev;
  assert(PX__TASK_REF_COUNT(prev) > 0); /* nobody may revive a freed task */
}

/* Drops n references; returns true when they were the last (free it). */
static inline bool px__task_state_ref_dec(px_task *t, uint64_t n) {
  uint64_t prev = atomic_fetch_sub_explicit(&t->state, n * PX__TASK_REF_ONE,
                                            memory_order_acq_rel);
  assert(PX__TASK_REF_COUNT(prev) >= n);
  return PX__TASK_REF_COUNT(prev) == n;
}

/* ---- Running ----------------------------------------------------------- */

typedef enum px__to_running {
  PX__TO_RUNNING_OK,        /* claimed: poll the future */
  PX__TO_RUNNING_CANCELLED, /* claimed, but cancelled: drop the future */
  PX__TO_RUNNING_FAILED     /* running elsewhere or complete: let go of the
                               queue's reference, nothing else */
} px__to_running;

/*
 * A task taken off a run queue: NOTIFIED -> RUNNING. The queue's reference
 * becomes the running one.
 */
static inline px__to_running px__task_transition_to_running(px_task *t) {
  uint64_t s = px__task_state_load(t);
  do {
    if (s & (PX__TASK_RUNNING | PX__TASK_COMPLETE))
      return PX__TO_RUNNING_FAILED;
  } while (!px__task_state_cas(t, &s, (s & ~PX__TASK_NOTIFIED) |
                                          PX__TASK_RUNNING));
  return (s & PX__TASK_CANCELLED) ? PX__TO_RUNNING_CANCELLED
                                  : PX__TO_RUNNING_OK;
}

typedef enum px__to_idle {
  PX__TO_IDLE_OK,        /* idle until a wake; the running reference went */
  PX__TO_IDLE_NOTIFIED,  /* woken while it ran: queue it again with the
                            running reference */
  PX__TO_IDLE_CANCELLED  /* aborted while it ran: still RUNNING; cancel it */
} px__to_idle;

/* The poll returned PENDING: RUNNING -> idle (or back to a queue).
 * `notified`: the task woke itself by reference during the poll, which
 * px__task_wake_by_ref records on the runner's thread instead of in the
 * word (the NOTIFIED bit it would have set is set here, in the same CAS). */
static inline px__to_idle px__task_transition_to_idle(px_task *t,
                                                     bool notified) {
  uint64_t s = px__task_state_load(t);
  uint64_t ns;
  do {
    assert((s & PX__TASK_RUNNING) && !(s & PX__TASK_COMPLETE));
    if (s & PX__TASK_CANCELLED) return PX__TO_IDLE_CANCELLED;
    ns = (s & ~PX__TASK_RUNNING) | (notified ? PX__TASK_NOTIFIED : 0);
    if (!(ns & PX__TASK_NOTIFIED)) ns -= PX__TASK_REF_ONE;
  } while (!px__task_state_cas(t, &s, ns));
  /* The runtime's list still holds a reference: this was not the last. */
  assert(PX__TASK_REF_COUNT(ns) > 0);
  return (ns & PX__TASK_NOTIFIED) ? PX__TO_IDLE_NOTIFIED : PX__TO_IDLE_OK;
}

/*
 * The future finished or was dropped: RUNNING -> COMPLETE (NOTIFIED and
 * RUNNING cleared). Returns the word as it was, whose JOIN_INTEREST and
 * JOIN_WAKER say whether a join handle waits to be woken. References are
 * the caller's to drop.
 */
static inline uint64_t px__task_transition_to_complete(px_task *t) {
  uint64_t s = px__task_state_load(t);
  do {
    assert((s & PX__TASK_RUNNING) && !(s & PX__TASK_COMPLETE));
  } while (!px__task_state_cas(
      t, &s, (s | PX__TASK_COMPLETE) & ~(PX__TASK_RUNNING | PX__TASK_NOTIFIED)));
  return s;
}

/*
 * Shutdown claims an idle or queued task to cancel it: sets RUNNING and
 * CANCELLED. Returns false, having only marked it CANCELLED, when it is
 * running or complete (shutdown stopped every worker first, so nothing
 * still polls it).
 */
static inline bool px__task_transition_to_shutdown(px_task *t) {
  uint64_t s = px__task_state_load(t);
  do {
    if (s & (PX__TASK_RUNNING | PX__TASK_COMPLETE)) {
      atomic_fetch_or_explicit(&t->state, PX__TASK_CANCELLED,
                               memory_order_acq_rel);
      return false;
    }
  } while (!px__task_state_cas(t, &s, s | PX__TASK_RUNNING |
                                          PX__TASK_CANCELLED));
  return true;
}

/* ---- Notifying (wakes and abort) ---------------------------------------- */

typedef enum px__to_notified {
  PX__TO_NOTIFIED_NOTHING, /* already queued or complete: nothing to do */
  PX__TO_NOTIFIED_DEALLOC, /* nothing to do, and the waker's reference was
                              the last: free the task */
  PX__TO_NOTIFIED_MARKED,  /* running: the runner queues it when its poll
                              ends */
  PX__TO_NOTIFIED_SUBMIT   /* idle, now NOTIFIED: queue it (the queue owns
                              a reference) */
} px__to_notified;

/* A wake that consumes the waker's reference (px_waker_wake). */
static inline px__to_notified px__task_transition_to_notified_by_val(
    px_task *t) {
  uint64_t s = px__task_state_load(t);
  uint64_t ns;
  px__to_notified r;
  do {
    if (s & PX__TASK_RUNNING) {
      /* The runner requeues it; our reference goes. */
      ns = (s | PX__TASK_NOTIFIED) - PX__TASK_REF_ONE;
      r = PX__TO_NOTIFIED_MARKED;
    } else if (s & (PX__TASK_COMPLETE | PX__TASK_NOTIFIED)) {
      ns = s - PX__TASK_REF_ONE;
      r = PX__TASK_REF_COUNT(ns) == 0 ? PX__TO_NOTIFIED_DEALLOC
                                      : PX__TO_NOTIFIED_NOTHING;
    } else {
      ns = s | PX__TASK_NOTIFIED; /* our reference becomes the queue's */
      r = PX__TO_NOTIFIED_SUBMIT;
    }
    assert(PX__TASK_REF_COUNT(s) > 0);
  } while (!px__task_state_cas(t, &s, ns));
  return r;
}

/* A wake that keeps the waker (px_waker_wake_by_ref). Never DEALLOC. */
static inline px__to_notified px__task_transition_to_notified_by_ref(
    px_task *t) {
  uint64_t s = px__task_state_load(t);
  uint64_t ns;
  do {
    if (s & (PX__TASK_COMPLETE | PX__TASK_NOTIFIED))
      return PX__TO_NOTIFIED_NOTHING;
    ns = s | PX__TASK_NOTIFIED;
    if (!(s & PX__TASK_RUNNING)) ns += PX__TASK_REF_ONE; /* the queue's */
  } while (!px__task_state_cas(t, &s, ns));
  return (s & PX__TASK_RUNNING) ? PX__TO_NOTIFIED_MARKED
                                : PX__TO_NOTIFIED_SUBMIT;
}

/*
 * Abort: sets CANCELLED; an idle task is also NOTIFIED (with a reference
 * for the queue) so that an executor, on the runtime's thread, drops its
 * future. Returns SUBMIT when the caller must queue it, NOTHING otherwise
 * (complete, already cancelled, or running or queued: it will be seen).
 */
static inline px__to_notified px__task_transition_to_notified_and_cancel(
    px_task *t) {
  uint64_t s = px__task_state_load(t);
  uint64_t ns;
  do {
    if (s & (PX__TASK_COMPLETE | PX__TASK_CANCELLED))
      return PX__TO_NOTIFIED_NOTHING;
    ns = s | PX__TASK_CANCELLED;
    if (!(s & (PX__TASK_RUNNING | PX__TASK_NOTIFIED)))
      ns = (ns | PX__TASK_NOTIFIED) + PX__TASK_REF_ONE;
  } while (!px__task_state_cas(t, &s, ns));
  return (s & (PX__TASK_RUNNING | PX__TASK_NOTIFIED)) ? PX__TO_NOTIFIED_NOTHING
                                                     : PX__TO_NOTIFIED_SUBMIT;
}

/* ---- Join interest and the join waker ----------------------------------- */

/*
 * The join handle stores a waker: sets JOIN_WAKER, handing the slot to the
 * task. Precondition: JOIN_INTEREST set, JOIN_WAKER clear (the slot is the
 * handle's and was just written). Returns false when the task completed
 * first: the bit stays clear and the slot is still the handle's.
 */
static inline bool px__task_set_join_waker(px_task *t) {
  uint64_t s = px__task_state_load(t);
  do {
    assert((s & PX__TASK_JOIN_INTEREST) && !(s & PX__TASK_JOIN_WAKER));
    if (s & PX__TASK_COMPLETE) return false;
  } while (!px__task_state_cas(t, &s, s | PX__TASK_JOIN_WAKER));
  return true;
}

/*
 * The join handle takes its waker slot back to replace the waker: clears
 * JOIN_WAKER. Precondition: JOIN_INTEREST and JOIN_WAKER set. Returns false
 * when the task completed first (the slot is then the task's to read).
 */
static inline bool px__task_unset_join_waker(px_task *t) {
  uint64_t s = px__task_state_load(t);
  do {
    assert((s & PX__TASK_JOIN_INTEREST) && (s & PX__TASK_JOIN_WAKER));
    if (s & PX__TASK_COMPLETE) return false;
  } while (!px__task_state_cas(t, &s, s & ~PX__TASK_JOIN_WAKER));
  return true;
}

/*
 * The join handle goes away (joined or detached): clears JOIN_INTEREST,
 * and JOIN_WAKER too unless the task completed (after completion the slot
 * is left for the last reference to drop). Returns the word as it was: a
 * JOIN_WAKER the handle cleared before completion hands the stored waker
 * back to the handle, which drops it.
 */
static inline uint64_t px__task_unset_join_interest(px_task *t) {
  uint64_t s = px__task_state_load(t);
  uint64_t ns;
  do {
    assert(s & PX__TASK_JOIN_INTEREST);
    ns = s & ~PX__TASK_JOIN_INTEREST;
    if (!(s & PX__TASK_COMPLETE)) ns &= ~PX__TASK_JOIN_WAKER;
  } while (!px__task_state_cas(t, &s, ns));
  return s;
}

#endif /* POLLUX_EXECUTORS_TASK_STATE_H */
