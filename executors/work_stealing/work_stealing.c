/*
 * The work-stealing executor: N worker threads run tasks; the thread in
 * block_on only polls the main future. The model is tokio's multi-threaded
 * scheduler (runtime/scheduler/multi_thread): names below follow it, so its
 * comments and papers explain this file too.
 *
 * Where a ready task waits (see docs/BACKENDS.md for a picture):
 *
 *   - the LIFO slot of the worker that woke it: a task woken by a task is
 *     usually the one that should run next (a message was just sent to it),
 *     while its data is still in the cache. At most 3 LIFO polls in a row,
 *     so two tasks waking each other cannot starve the rest of the queue;
 *   - the worker's local queue: a 256-slot ring, pushed and popped only by
 *     its owner, from which other workers steal half at a time. Its head is
 *     two 32-bit indices packed in one atomic word (`steal`, `real`): a
 *     stealer first moves `real` to claim tasks, copies them, then moves
 *     `steal` up to `real` to hand the slots back, so the owner never reuses
 *     a slot a stealer is still reading, and no CAS can succeed on a stale
 *     value (the ABA problem) without both indices matching;
 *   - the injection queue: a mutex-protected list for tasks spawned or woken
 *     from threads that are not workers, and for the half of a full local
 *     queue that overflows.
 *
 * Idle workers park, so an idle runtime uses no CPU. A worker that finds no
 * work first searches (steals); at most half of the workers search at once
 * (the throttle), since more searchers only fight over the same queues.
 * Whoever makes work available wakes one parked worker, but only when no
 * worker is searching already: a searcher will find it, and the last
 * searcher to give up looks at every queue once more before parking (that
 * handshake, on one atomic word with sequentially consistent order, is what
 * makes "no searcher and nobody woken" impossible while work is queued).
 *
 * The reactor and the timers have no thread of their own: a parking worker
 * that wins the driver try-lock waits in the reactor (px__runtime_park, with
 * the next timer deadline as timeout) instead of on its futex, and so turns
 * I/O events and expired timers into wakes. Worker 0 is preferred for that
 * wait (parker_park says why); another takes it while worker 0 is stuck in
 * a task. Every event_interval ticks a busy worker that can take the lock
 * polls the reactor without blocking, so I/O and timers are served while
 * every worker is busy.
 *
 * Workers start in create and stop in the first drain (px_runtime_free),
 * before the runtime cancels the remaining tasks.
 */
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "executors/executor.h"
#include "executors/task_list.h"
#include "observe/observe.h"
#include "platform/platform.h"

#define LOCAL_CAP 256u
#define LOCAL_MASK (LOCAL_CAP - 1u)
#define MAX_LIFO_POLLS 3      /* LIFO polls in a row before the queue's turn */
#define GLOBAL_INTERVAL 61u   /* local polls between two looks at injection */
#define PARK_SPINS 32         /* looks for a late notification before parking */
#define OWNER_STUCK_MS 2      /* worker 0 in one task that long: others drive */

/* A worker's parker: where it sleeps, so unpark knows how to wake it. */
enum { PARK_EMPTY, PARK_FUTEX, PARK_DRIVER, PARK_NOTIFIED };

/* The idle state word: workers searching (low 16 bits), unparked (high). */
#define SEARCHING_MASK 0xffffu
#define UNPARKED_ONE (1u << 16)

/*
 * Cache lines. Each worker writes its own fields on every task (tick, the
 * LIFO slot, its queue's tail) and CASes its queue's head on every pop,
 * while the other workers read the idle word on every wake. Data written
 * by one core and read or written by another in the same line makes the
 * line travel between the cores on each access (false sharing): with two
 * busy workers, keeping the groups apart raised yield_many from 11.0M to
 * 15.2M tasks per CPU-second. So each group below starts a line of its
 * own, PX__CACHE_PAIR apart (x86 fetches lines in adjacent pairs).
 */

typedef struct local_queue {
  /* steal << 32 | real: CASed by the owner's pop and by stealers. */
  alignas(PX__CACHE_PAIR) _Atomic uint64_t head;
  _Atomic uint32_t tail; /* written by the owner only */
  /* Slots are atomics only so that the hand-over between owner and stealer
   * is visible to the compiler and to TSan; relaxed loads and stores cost
   * nothing more than plain ones. The ordering comes from head and tail. */
  _Atomic(px_task *) buffer[LOCAL_CAP];
} local_queue;

typedef struct worker {
  px__executor *ex;
  uint32_t index;
  pthread_t thread;
  /* Touched by the worker's own thread only (and by drain once joined). */
  px_task *lifo;
  bool lifo_enabled;
  bool searching;
  bool parking; /* inside park: wakes it causes are announced afterwards */
  uint32_t tick;
  uint32_t until_maintenance; /* ticks left; a countdown, not tick % n,
                                 since a division by a variable is slow */
  uint32_t rand;
  /* tick, published for the helpers' look at worker 0 (parker_park). */
  _Atomic uint32_t progress;
  local_queue queue; /* stealable; starts a line of its own */
  /* Swapped by whoever unparks this worker. */
  alignas(PX__CACHE_PAIR) atomic_int park_state;
} worker;

struct px__executor {
  /* Read-mostly: set up in create. */
  px_runtime *rt;
  uint32_t n;
  uint32_t event_interval;
  worker *workers;
  uint32_t started;
  bool stopped; /* workers joined (drain) */
  atomic_bool shutdown;

  /* Read on every wake, written only when a worker parks, unparks or
   * starts and stops searching. */
  alignas(PX__CACHE_PAIR) _Atomic uint32_t idle; /* SEARCHING_MASK / UNPARKED_ONE */

  /* Taken every event_interval ticks by a busy worker. */
  alignas(PX__CACHE_PAIR) atomic_int driver; /* try-lock: who may wait in the reactor */

  /* Guards the injection queue and the list of parked workers. */
  alignas(PX__CACHE_PAIR) pthread_mutex_t lock;
  px__task_list inject;
  _Atomic size_t inject_len; /* read without the lock for a quick look */
  uint32_t *sleepers;        /* indices of parked workers, a stack */
  uint32_t num_sleepers;
};

static _Thread_local worker *tls_worker;


/* ---- The injection queue ---------------------------------------------- */

/* The observer the executor's counters and trace events go to. */
static inline px__observe *obs_of(px__executor *ex) {
  return px__runtime_observe(ex->rt);
}

/* The metrics' injection queue depth (observe/), under ex->lock. */
static void observe_inject_depth(px__executor *ex) {
  px__observe_injection_depth(
      obs_of(ex), atomic_load_explicit(&ex->inject_len, memory_order_relaxed));
}

static void inject_push(px__executor *ex, px_task *t) {
  pthread_mutex_lock(&ex->lock);
  px__task_list_push(&ex->inject, t);
  atomic_fetch_add(&ex->inject_len, 1);
  observe_inject_depth(ex);
  pthread_mutex_unlock(&ex->lock);
}

static void inject_push_batch(px__executor *ex, px__task_list *batch,
                              size_t n) {
  pthread_mutex_lock(&ex->lock);
  px__task_list_splice(&ex->inject, batch);
  atomic_fetch_add(&ex->inject_len, n);
  observe_inject_depth(ex);
  pthread_mutex_unlock(&ex->lock);
}

static px_task *inject_pop(px__executor *ex) {
  if (atomic_load_explicit(&ex->inject_len, memory_order_acquire) == 0)
    return NULL;
  pthread_mutex_lock(&ex->lock);
  px_task *t = px__task_list_pop(&ex->inject);
  if (t != NULL) atomic_fetch_sub(&ex->inject_len, 1);
  observe_inject_depth(ex);
  pthread_mutex_unlock(&ex->lock);
  return t;
}

/* ---- The local queue (tokio's queue.rs) ------------------------------- */

static uint64_t pack(uint32_t steal, uint32_t real) {
  return (uint64_t)steal << 32 | real;
}
static uint32_t steal_of(uint64_t head) { return (uint32_t)(head >> 32); }
static uint32_t real_of(uint64_t head) { return (uint32_t)head; }

/* Tasks in a queue; exact for its owner, a snapshot for anyone else. */
static uint32_t queue_len(local_queue *q) {
  /* Head first: real only grows and never passes tail, so tail read after
   * it is at least as far on and the difference cannot wrap. */
  uint32_t real = real_of(atomic_load_explicit(&q->head, memory_order_acquire));
  uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
  return tail - real;
}

/* Free slots, counting those a stealer is still copying out as taken. */
static uint32_t queue_remaining(local_queue *q) {
  uint32_t steal =
      steal_of(atomic_load_explicit(&q->head, memory_order_acquire));
  uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
  return LOCAL_CAP - (tail - steal);
}

/*
 * The queue is full: move half of it, plus `t`, to the injection queue in
 * one lock. Claiming the half is a CAS on head, so it fails (and the caller
 * retries the push) if a stealer got in first and made room anyway.
 */
static bool push_overflow(worker *w, px_task *t, uint32_t head,
                          uint32_t tail) {
  local_queue *q = &w->queue;
  const uint32_t half = LOCAL_CAP / 2;
  (void)tail;
  uint64_t prev = pack(head, head);
  if (!atomic_compare_exchange_strong_explicit(&q->head, &prev,
                                               pack(head + half, head + half),
                                               memory_order_release,
                                               memory_order_relaxed))
    return false;
  px__task_list batch = {NULL, NULL, 0};
  for (uint32_t i = 0; i < half; i++)
    px__task_list_push(
        &batch, atomic_load_explicit(&q->buffer[(head + i) & LOCAL_MASK],
                                     memory_order_relaxed));
  px__task_list_push(&batch, t);
  inject_push_batch(w->ex, &batch, half + 1);
  return true;
}

/* Owner only: appends `t`, overflowing to the injection queue when full. */
static void push_back(worker *w, px_task *t) {
  local_queue *q = &w->queue;
  for (;;) {
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t steal = steal_of(head), real = real_of(head);
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (tail - steal < LOCAL_CAP) {
      atomic_store_explicit(&q->buffer[tail & LOCAL_MASK], t,
                            memory_order_relaxed);
      atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
      return;
    }
    if (steal != real) {
      /* A stealer is emptying part of the queue right now; rather than wait
       * for it, send this one task through the injection queue. */
      inject_push(w->ex, t);
      return;
    }
    if (push_overflow(w, t, real, tail)) return;
  }
}

/* Owner only: takes the oldest task. */
static px_task *pop(worker *w) {
  local_queue *q = &w->queue;
  uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
  for (;;) {
    uint32_t steal = steal_of(head), real = real_of(head);
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (real == tail) return NULL;
    /* With no steal in progress both indices move together; during one,
     * only real moves, and the stealer settles steal when it is done. */
    uint64_t next =
        steal == real ? pack(real + 1, real + 1) : pack(steal, real + 1);
    if (atomic_compare_exchange_weak_explicit(&q->head, &head, next,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      return atomic_load_explicit(&q->buffer[real & LOCAL_MASK],
                                  memory_order_relaxed);
  }
}

/* Moves half of src's tasks to dst's slots from dst_tail on; returns how many. */
static uint32_t steal_half(local_queue *src, local_queue *dst,
                           uint32_t dst_tail) {
  uint64_t prev = atomic_load_explicit(&src->head, memory_order_acquire);
  uint64_t next;
  uint32_t n;
  for (;;) {
    uint32_t steal = steal_of(prev), real = real_of(prev);
    uint32_t src_tail = atomic_load_explicit(&src->tail, memory_order_acquire);
    if (steal != real) return 0; /* another worker is stealing from it */
    n = src_tail - real;
    n -= n / 2; /* half, rounded up: a queue of one can be stolen */
    if (n == 0) return 0;
    next = pack(steal, real + n);
    if (atomic_compare_exchange_weak_explicit(&src->head, &prev, next,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      break;
  }
  uint32_t first = steal_of(next);
  for (uint32_t i = 0; i < n; i++) {
    px_task *t = atomic_load_explicit(&src->buffer[(first + i) & LOCAL_MASK],
                                      memory_order_relaxed);
    atomic_store_explicit(&dst->buffer[(dst_tail + i) & LOCAL_MASK], t,
                          memory_order_relaxed);
  }
  /* Hand the slots back: steal catches up with real (which the owner may
   * have moved on meanwhile by popping). */
  prev = next;
  for (;;) {
    uint32_t real = real_of(prev);
    if (atomic_compare_exchange_weak_explicit(&src->head, &prev,
                                              pack(real, real),
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      return n;
  }
}

/* Steals half of victim's queue into w's; returns one of the tasks. */
static px_task *steal_into(worker *victim, worker *w) {
  local_queue *dst = &w->queue;
  uint32_t dst_tail = atomic_load_explicit(&dst->tail, memory_order_relaxed);
  /* Half of the victim's queue must fit into ours. */
  if (queue_remaining(dst) < LOCAL_CAP / 2) return NULL;
  uint32_t n = steal_half(&victim->queue, dst, dst_tail);
  if (n == 0) return NULL;
  n--; /* the last one is run at once, the rest become ours */
  px_task *ret = atomic_load_explicit(
      &dst->buffer[(dst_tail + n) & LOCAL_MASK], memory_order_relaxed);
  if (n > 0)
    atomic_store_explicit(&dst->tail, dst_tail + n, memory_order_release);
  return ret;
}

/* ---- Parking one worker ----------------------------------------------- */

static void unpark(worker *w) {
  int prev = atomic_exchange(&w->park_state, PARK_NOTIFIED);
  if (prev == PARK_FUTEX)
    px__futex_wake(&w->park_state, 1);
  else if (prev == PARK_DRIVER)
    px__runtime_unpark(w->ex->rt);
}

static bool driver_has_work(void *arg) {
  worker *w = arg;
  return atomic_load(&w->park_state) == PARK_NOTIFIED ||
         atomic_load(&w->ex->shutdown);
}

/* Waits in the reactor until an event, a timer or unpark. */
static void park_driver(worker *w) {
  int expected = PARK_EMPTY;
  if (!atomic_compare_exchange_strong(&w->park_state, &expected,
                                      PARK_DRIVER)) {
    atomic_store(&w->park_state, PARK_EMPTY); /* it was NOTIFIED */
    return;
  }
  /* park_state = DRIVER is announced before px__runtime_park marks the
   * runtime parked and asks driver_has_work: unpark swaps NOTIFIED in
   * before it looks at the runtime's parked flag, so one side sees the
   * other (the same handshake the runtime documents). */
  px__runtime_park(w->ex->rt, driver_has_work, w);
  atomic_store(&w->park_state, PARK_EMPTY);
}

/*
 * Whether the reactor needs another driver than worker 0: worker 0 is
 * still running the task it ran at tick `seen`, or sleeps on its futex
 * (it found the driver taken, by a helper's maintenance say, and nobody
 * may be in the reactor now). Sets *seen to worker 0's progress.
 */
static bool owner_away(px__executor *ex, uint32_t *seen) {
  worker *owner = &ex->workers[0];
  int state = atomic_load(&owner->park_state);
  uint32_t now =
      atomic_load_explicit(&owner->progress, memory_order_relaxed);
  bool away = state == PARK_FUTEX || (state == PARK_EMPTY && now == *seen);
  *seen = now;
  return away && !atomic_load(&ex->shutdown);
}

/*
 * Sleeps on the futex until unparked. `watch`: worker 0 is not in the
 * reactor, so wake every OWNER_STUCK_MS to look whether it still runs the
 * same task or sleeps on its futex; if so, stop sleeping and return true,
 * for the caller to wait in the reactor in its place (parker_park). The
 * watch ends once worker 0 waits in the reactor.
 */
static bool park_futex(worker *w, bool watch) {
  int expected = PARK_EMPTY;
  uint32_t seen = atomic_load_explicit(&w->ex->workers[0].progress,
                                       memory_order_relaxed);
  if (!atomic_compare_exchange_strong(&w->park_state, &expected, PARK_FUTEX)) {
    atomic_store(&w->park_state, PARK_EMPTY);
    return false;
  }
  /* A sleeping worker keeps no freed blocks (api/alloc.c; px__runtime_park
   * does the same for the driver), but hands them back only once it has
   * slept PX__TRIM_AFTER_MS: parks between bursts are short, and a worker that
   * gave its blocks to malloc at each one freed in bursts that held
   * malloc's arena lock against the thread spawning the next tasks
   * (bench/spawn_many under work stealing: most of its futex calls, and
   * brk trimming and growing the heap each round). */
  bool keep = px__alloc_holds();
  /* Parks, idle and busy time (observe/); px__runtime_park counts the
   * driver's wait in the reactor the same way. */
  uint64_t idle_start = px__now_ns();
  px__observe_parking(obs_of(w->ex));
  for (;;) {
    /* The kernel re-checks the word, so an unpark between the CAS and the
     * wait makes the wait return at once. */
    if (watch) {
      px__futex_wait_ms(&w->park_state, PARK_FUTEX, OWNER_STUCK_MS);
      if (atomic_load(&w->park_state) == PARK_FUTEX) {
        if (owner_away(w->ex, &seen)) {
          expected = PARK_FUTEX;
          if (atomic_compare_exchange_strong(&w->park_state, &expected,
                                             PARK_EMPTY)) {
            px__observe_parked(obs_of(w->ex), idle_start, px__now_ns(),
                               false);
            return true;
          }
        } else if (atomic_load(&w->ex->workers[0].park_state) ==
                   PARK_DRIVER) {
          /* In the reactor: it leaves only with work it may share, and
           * parks there again after it. */
          watch = false;
        }
      }
    } else if (keep) {
      px__futex_wait_ms(&w->park_state, PARK_FUTEX, PX__TRIM_AFTER_MS);
      if (atomic_load(&w->park_state) == PARK_FUTEX) {
        /* Slept that long: no longer a short park. */
        px__alloc_release();
        keep = false;
      }
    } else {
      px__futex_wait(&w->park_state, PARK_FUTEX);
    }
    expected = PARK_NOTIFIED;
    if (atomic_compare_exchange_strong(&w->park_state, &expected, PARK_EMPTY))
      break;
  }
  px__observe_parked(obs_of(w->ex), idle_start, px__now_ns(), false);
  return false;
}

static bool try_lock_driver(px__executor *ex) {
  return atomic_load_explicit(&ex->driver, memory_order_relaxed) == 0 &&
         atomic_exchange_explicit(&ex->driver, 1, memory_order_acquire) == 0;
}

static void unlock_driver(px__executor *ex) {
  atomic_store_explicit(&ex->driver, 0, memory_order_release);
}

static void parker_park(worker *w) {
  /* A notification often arrives just after we decided to park, so look
   * for it a little while (a few microseconds) before sleeping. Spinning,
   * not sched_yield: on a machine with more runnable threads than cores a
   * yield hands the core to another process for a whole time slice
   * (milliseconds), which is what a wake-up we are about to get must not
   * wait for. */
  for (int i = 0; i < PARK_SPINS; i++) {
    if (atomic_load_explicit(&w->park_state, memory_order_relaxed) ==
        PARK_NOTIFIED) {
      int expected = PARK_NOTIFIED;
      if (atomic_compare_exchange_strong(&w->park_state, &expected,
                                         PARK_EMPTY)) {
        /* Parked all the same, if only for a moment: the metrics count it
         * (a worker woken over and over shows up as parking over and over
         * whether or not it got to sleep). */
        uint64_t now = px__now_ns();
        px__observe_parked(obs_of(w->ex), now, now, false);
        return;
      }
    }
    px__cpu_relax();
  }
  /*
   * Worker 0 is the one that should wait in the reactor. io_uring completes
   * a request as task work of the thread that submitted it, and the thread
   * that waits in the reactor submits the requests (reactors/io_uring,
   * hand_in): with the wait passing from worker to worker, the other's
   * requests woke it from its futex for each completion, and then the
   * waiter (bench http_min, 2 workers: 0.77x tokio multi_thread). Any
   * worker still takes the wait while worker 0 is busy, so that I/O and
   * timers are served while it runs a long task; worker 0 wants it back
   * when it parks, and gets it at the helper's next park.
   */
  px__executor *ex = w->ex;
  worker *owner = &ex->workers[0];
  if (w != owner) {
    int os = atomic_load(&owner->park_state);
    if (os == PARK_FUTEX) {
      /* Worker 0 sleeps on its futex, having found the wait taken: wake it
       * to take the wait (it finds itself still listed as parked, a
       * spurious wake, and parks again, in the reactor). */
      unpark(owner);
      (void)park_futex(w, false);
    } else if (park_futex(w, os != PARK_DRIVER) && try_lock_driver(ex)) {
      /* Worker 0 is stuck in one task, or went to its futex meanwhile:
       * serve I/O and timers in its place. */
      park_driver(w);
      unlock_driver(ex);
    }
  } else if (try_lock_driver(ex)) {
    park_driver(w);
    unlock_driver(ex);
  } else {
    /* A helper waits in the reactor: wake it, so that it gives the wait
     * back at its next park. */
    px__runtime_unpark(ex->rt);
    (void)park_futex(w, false);
  }
}

/* ---- Idle bookkeeping (tokio's idle.rs) ------------------------------- */

static bool idle_should_wake(px__executor *ex) {
  /* A read-modify-write, not a load: it takes part in the idle word's
   * single order of modifications, which the parking side relies on. */
  uint32_t s = atomic_fetch_add(&ex->idle, 0);
  return (s & SEARCHING_MASK) == 0 && (s >> 16) < ex->n;
}

/* Wakes one parked worker, unless someone is searching already. */
static void notify_parked(px__executor *ex) {
  if (atomic_load(&ex->shutdown) || !idle_should_wake(ex)) return;
  pthread_mutex_lock(&ex->lock);
  if (!idle_should_wake(ex) || ex->num_sleepers == 0) {
    pthread_mutex_unlock(&ex->lock);
    return;
  }
  /* The woken worker starts out searching: counted before it runs, so a
   * second notification does not wake a second worker for the same work. */
  atomic_fetch_add(&ex->idle, UNPARKED_ONE + 1);
  uint32_t index = ex->sleepers[--ex->num_sleepers];
  pthread_mutex_unlock(&ex->lock);
  unpark(&ex->workers[index]);
}

/*
 * The same, from a worker that has just queued work on itself (a wake or a
 * yield): it will run that work anyway, so the only question is whether
 * another worker should come and help. A plain look at the idle word
 * answers "no" in the common case (someone is searching already, or nobody
 * is parked) without notify_parked's read-modify-write, which takes the
 * line from every other core and was a third of a yield's cost with two
 * busy workers. A stale answer can only delay help, never lose a task:
 * the worker runs its own queue before it parks.
 */
static void notify_parked_local(px__executor *ex) {
  uint32_t s = atomic_load_explicit(&ex->idle, memory_order_relaxed);
  if ((s & SEARCHING_MASK) != 0 || (s >> 16) >= ex->n) return;
  notify_parked(ex);
}

static void notify_if_work_pending(px__executor *ex) {
  for (uint32_t i = 0; i < ex->n; i++) {
    if (queue_len(&ex->workers[i].queue) > 0) {
      notify_parked(ex);
      return;
    }
  }
  if (atomic_load(&ex->inject_len) > 0) notify_parked(ex);
}

static bool transition_to_searching(worker *w) {
  if (!w->searching) {
    px__executor *ex = w->ex;
    uint32_t s = atomic_load(&ex->idle);
    /* The throttle. Two workers may pass it at once; it is only a limit
     * on contention, not a rule anything depends on. */
    if (2 * (s & SEARCHING_MASK) >= ex->n) return false;
    atomic_fetch_add(&ex->idle, 1);
    w->searching = true;
  }
  return true;
}

static void transition_from_searching(worker *w) {
  if (!w->searching) return;
  w->searching = false;
  /* The last searcher found work: there may be more, so wake another
   * worker to keep searching. */
  if ((atomic_fetch_sub(&w->ex->idle, 1) & SEARCHING_MASK) == 1)
    notify_parked(w->ex);
}

/* Returns whether the worker should really park (nothing of its own). */
static bool transition_to_parked(worker *w) {
  px__executor *ex = w->ex;
  if (w->lifo != NULL || queue_len(&w->queue) > 0) return false;
  pthread_mutex_lock(&ex->lock);
  uint32_t prev =
      atomic_fetch_sub(&ex->idle, UNPARKED_ONE + (w->searching ? 1u : 0u));
  ex->sleepers[ex->num_sleepers++] = w->index;
  pthread_mutex_unlock(&ex->lock);
  bool last_searcher = w->searching && (prev & SEARCHING_MASK) == 1;
  w->searching = false;
  /* Work pushed while we were searching saw a searcher and woke nobody;
   * the last searcher to leave must look once more. */
  if (last_searcher) notify_if_work_pending(ex);
  return true;
}

/* Removes w from the sleepers if it is still there; returns whether it was. */
static bool unpark_by_id(px__executor *ex, uint32_t index) {
  bool found = false;
  pthread_mutex_lock(&ex->lock);
  for (uint32_t i = 0; i < ex->num_sleepers; i++) {
    if (ex->sleepers[i] == index) {
      ex->sleepers[i] = ex->sleepers[--ex->num_sleepers];
      atomic_fetch_add(&ex->idle, UNPARKED_ONE);
      found = true;
      break;
    }
  }
  pthread_mutex_unlock(&ex->lock);
  return found;
}

/* Returns whether the worker should leave park (false: a spurious wake). */
static bool transition_from_parked(worker *w) {
  if (w->lifo != NULL || queue_len(&w->queue) > 0) {
    /* The driver woke tasks into our own queue. If nobody notified us we
     * are still listed as parked: unlist ourselves, not as a searcher. */
    w->searching = !unpark_by_id(w->ex, w->index);
    return true;
  }
  bool listed = false;
  pthread_mutex_lock(&w->ex->lock);
  for (uint32_t i = 0; i < w->ex->num_sleepers; i++)
    if (w->ex->sleepers[i] == w->index) listed = true;
  pthread_mutex_unlock(&w->ex->lock);
  if (listed) return false;
  w->searching = true; /* notify_parked counted us as searching */
  return true;
}

/* ---- The worker loop -------------------------------------------------- */

/* More than `enough` tasks of ours are ready (and we are not searching):
 * worth waking a parked worker. */
static bool has_more_than(worker *w, uint32_t enough) {
  if (w->searching) return false;
  return (w->lifo != NULL ? 1u : 0u) + queue_len(&w->queue) > enough;
}

/* More than one task of ours is ready: worth waking a parked worker. */
static bool should_notify_others(worker *w) { return has_more_than(w, 1); }

/*
 * After a park: the wakes it brought (I/O, timers) are in our queue. Unlike
 * tokio, which wakes another worker for two ready tasks, we wake one for
 * three: the parker runs two itself. A wake costs the woken worker a futex
 * return and two thread switches, more than a short task runs, and on
 * io_uring the driver often comes back with two: bench http_min on two
 * workers served 87k requests per CPU-second waking for two, 98k for
 * three, at the same requests per second. The price is two long tasks run
 * one after the other.
 */
static bool should_notify_after_park(worker *w) {
  return has_more_than(w, 2);
}

static void park(worker *w) {
  px__executor *ex = w->ex;
  if (!transition_to_parked(w)) return;
  while (!atomic_load(&ex->shutdown)) {
    w->parking = true;
    parker_park(w);
    w->parking = false;
    if (should_notify_after_park(w)) notify_parked(ex);
    if (transition_from_parked(w)) break;
  }
}

/* Non-blocking I/O and timers, so they are served while all are busy. */
static void maintenance(worker *w) {
  PX__GAUGE(obs_of(w->ex), local_depth, queue_len(&w->queue));
  if (try_lock_driver(w->ex)) {
    w->parking = true; /* what it wakes is announced below */
    px__runtime_turn(w->ex->rt);
    w->parking = false;
    unlock_driver(w->ex);
    if (should_notify_others(w)) notify_parked(w->ex);
  }
}

static px_task *next_local(worker *w) {
  px_task *t = w->lifo;
  if (t != NULL) {
    w->lifo = NULL;
    PX__COUNT(obs_of(w->ex), lifo_hits, 1);
    return t;
  }
  return pop(w);
}

static px_task *next_task(worker *w) {
  px__executor *ex = w->ex;
  if (w->tick % GLOBAL_INTERVAL == 0) {
    /* Injected tasks get a turn even while local work never runs out. */
    px_task *t = inject_pop(ex);
    return t != NULL ? t : next_local(w);
  }
  px_task *t = next_local(w);
  if (t != NULL) return t;
  size_t len = atomic_load(&ex->inject_len);
  if (len == 0) return NULL;
  /* Take a fair share of the injection queue in one lock: 1/N of it, at
   * most half a local queue, at least the one returned. */
  size_t cap = queue_remaining(&w->queue);
  if (cap > LOCAL_CAP / 2) cap = LOCAL_CAP / 2;
  size_t n = len / ex->n + 1;
  if (n > cap) n = cap;
  if (n < 1) n = 1;
  /* The queue is detached whole under the lock and cut outside it, the
   * rest going back to its front (the order kept): the cut follows n links
   * that the spawning thread just wrote on another CPU, a cache miss each,
   * and a spawner waiting behind that walk slept on the lock at every
   * batch (bench/spawn_many under work stealing). inject_len keeps
   * counting the detached tasks until they are back, so no worker parks
   * meanwhile believing the queue empty. */
  pthread_mutex_lock(&ex->lock);
  px__task_list all = ex->inject;
  ex->inject.head = ex->inject.tail = NULL;
  ex->inject.len = 0;
  pthread_mutex_unlock(&ex->lock);
  t = px__task_list_pop(&all);
  size_t taken = t != NULL ? 1 : 0;
  px_task *u;
  /* Only thieves remove from our queue, so the room counted above is
   * still there and these pushes never overflow back into the lock. */
  while (taken < n && (u = px__task_list_pop(&all)) != NULL) {
    push_back(w, u);
    taken++;
  }
  if (all.head != NULL) {
    pthread_mutex_lock(&ex->lock);
    px__task_list_splice(&all, &ex->inject);
    ex->inject = all;
    pthread_mutex_unlock(&ex->lock);
  }
  atomic_fetch_sub(&ex->inject_len, taken);
  observe_inject_depth(ex);
  return t;
}

static px_task *steal_work(worker *w) {
  px__executor *ex = w->ex;
  if (!transition_to_searching(w)) return NULL;
  /* xorshift32: a different first victim each time spreads the thieves. */
  w->rand ^= w->rand << 13;
  w->rand ^= w->rand >> 17;
  w->rand ^= w->rand << 5;
  uint32_t start = w->rand % ex->n;
  for (uint32_t i = 0; i < ex->n; i++) {
    uint32_t v = (start + i) % ex->n;
    if (v == w->index) continue;
    px_task *t = steal_into(&ex->workers[v], w);
    if (t != NULL) {
      PX__COUNT(obs_of(ex), steals, 1);
      px__trace_instant(obs_of(ex), PX__TRACE_STEAL, t->id);
      return t;
    }
  }
  return inject_pop(ex);
}

static void run_task(worker *w, px_task *t) {
  transition_from_searching(w);
  int lifo_polls = 0;
  for (;;) {
    /* A task that woke itself (a yield) goes to the back of the queue, not
     * into the LIFO slot: everything else ready runs before it again. */
    if (px__task_run(t) == PX__RUN_RESCHEDULE) {
      push_back(w, t);
      if (should_notify_others(w)) notify_parked_local(w->ex);
    }
    t = w->lifo;
    if (t == NULL) {
      w->lifo_enabled = true;
      return;
    }
    w->lifo = NULL;
    PX__COUNT(obs_of(w->ex), lifo_hits, 1);
    if (++lifo_polls >= MAX_LIFO_POLLS) w->lifo_enabled = false;
  }
}

static void *worker_main(void *arg) {
  worker *w = arg;
  px__executor *ex = w->ex;
  tls_worker = w;
  /* So px_spawn and leaf futures inside tasks find the runtime. */
  px__runtime_enter(ex->rt);
  /* Its counters, trace track and log id (observe/). */
  px__observe_worker_enter(obs_of(ex), (int)w->index);
  while (!atomic_load(&ex->shutdown)) {
    w->tick++;
    atomic_store_explicit(&w->progress, w->tick, memory_order_relaxed);
    if (--w->until_maintenance == 0) {
      w->until_maintenance = ex->event_interval;
      maintenance(w);
    }
    px_task *t = next_task(w);
    if (t == NULL) t = steal_work(w);
    if (t != NULL)
      run_task(w, t);
    else
      park(w);
  }
  px__observe_worker_leave();
  px__runtime_enter(NULL);
  tls_worker = NULL;
  return NULL;
}

/* ---- The ops table ---------------------------------------------------- */

static void schedule_local(worker *w, px_task *t) {
  bool notify;
  if (!w->lifo_enabled) {
    /* One task waiting for the current one to finish needs no help (as
     * one in the LIFO slot does not); a second one does. Waking a worker
     * for the only one woke the idle worker every few links of a chain of
     * spawns, only for it to find nothing (we ran the link first) and
     * park again: a futex wake and two context switches each time. */
    push_back(w, t);
    notify = should_notify_others(w);
  } else {
    /* The newest wake runs next; the one it displaces joins the queue,
     * where another worker can steal it. */
    px_task *prev = w->lifo;
    w->lifo = t;
    if (prev != NULL) push_back(w, prev);
    notify = prev != NULL;
  }
  if (notify && !w->parking) notify_parked_local(w->ex);
}

static void ws_schedule(px__executor *ex, px_task *t) {
  worker *w = tls_worker;
  if (w != NULL && w->ex == ex) {
    schedule_local(w, t);
    return;
  }
  inject_push(ex, t);
  notify_parked(ex);
}

static void stop_workers(px__executor *ex) {
  if (ex->stopped) return;
  atomic_store(&ex->shutdown, true);
  /* Every park loop checks shutdown after each wake, and an unpark that
   * comes before the park is remembered as NOTIFIED. */
  for (uint32_t i = 0; i < ex->started; i++) unpark(&ex->workers[i]);
  for (uint32_t i = 0; i < ex->started; i++)
    pthread_join(ex->workers[i].thread, NULL);
  ex->stopped = true;
}

static void ws_destroy(px__executor *ex) {
  stop_workers(ex);
  pthread_mutex_destroy(&ex->lock);
  px__free(ex->sleepers, ex->n * sizeof *ex->sleepers);
  px__free_aligned(ex->workers, ex->n * sizeof *ex->workers, PX__CACHE_PAIR);
  px__free_aligned(ex, sizeof *ex, PX__CACHE_PAIR);
}

static int ws_create(px_runtime *rt, const px_config *cfg,
                     px__executor **out) {
  px__executor *ex = px__calloc_aligned(sizeof *ex, PX__CACHE_PAIR);
  if (ex == NULL) return PX_ENOMEM;
  ex->rt = rt;
  ex->n = cfg->workers;
  ex->event_interval = cfg->event_interval;
  ex->workers = px__calloc_aligned(ex->n * sizeof *ex->workers, PX__CACHE_PAIR);
  ex->sleepers = px__calloc(ex->n * sizeof *ex->sleepers);
  /* Spawns from outside the workers push here one at a time while the
   * workers take batches: a thread that slept on it for each collision
   * paid two context switches (bench/spawn_many under work stealing). */
  px__mutex_init_adaptive(&ex->lock);
  if (ex->workers == NULL || ex->sleepers == NULL) {
    ex->stopped = true;
    ws_destroy(ex);
    return PX_ENOMEM;
  }
  atomic_init(&ex->idle, ex->n * UNPARKED_ONE);
  /* block_on's thread waits on its own futex, never in the reactor, so
   * waking the main future must not interrupt the driver. No other thread
   * exists yet, so this write races with nothing. */
  px__runtime_main_waker(rt)->unpark = NULL;
  for (uint32_t i = 0; i < ex->n; i++) {
    worker *w = &ex->workers[i];
    w->ex = ex;
    w->index = i;
    w->lifo_enabled = true;
    w->until_maintenance = ex->event_interval;
    w->rand = i * 0x9e3779b9u + 0x7f4a7c15u;
    if (w->rand == 0) w->rand = 1;
  }
  for (uint32_t i = 0; i < ex->n; i++) {
    int rc = pthread_create(&ex->workers[i].thread, NULL, worker_main,
                            &ex->workers[i]);
    if (rc != 0) {
      ws_destroy(ex); /* stops the ones already started */
      return px_err_from_errno(rc);
    }
    ex->started++;
  }
  *out = ex;
  return 0;
}

static int ws_block_on(px__executor *ex, px_future *main) {
  /* The main future starts notified so that it is polled first. */
  px__thread_waker *tw = px__runtime_main_waker(ex->rt);
  atomic_store(&tw->notified, 1);
  px_waker waker = px__thread_waker_make(tw);
  px_context cx = {&waker, ex->rt};
  for (;;) {
    if (px__thread_waker_take(tw)) {
      px__poll_probe probe;
      px__observe_block_on_begin(obs_of(ex), &probe);
      int r = px__coop_poll(main, &cx); /* with a budget, as a task */
      px__observe_block_on_end(main, &probe);
      if (r != PX_PENDING) return r < 0 ? r : 0;
    }
    /* A long sleep keeps no freed blocks, as a parking worker's
     * (api/alloc.c). A main future that reaps tasks frees them on this
     * thread (px_serve's connections), and parked here they stayed cached
     * while the server sat idle. Short sleeps keep them: spawning from
     * here, this thread reuses what the workers freed (the depot). */
    if (px__alloc_holds() && !px__thread_waker_park_ms(tw, PX__TRIM_AFTER_MS))
      px__alloc_release();
    px__thread_waker_park(tw);
  }
}

static void ws_drain(px__executor *ex) {
  stop_workers(ex);
  for (uint32_t i = 0; i < ex->n; i++) {
    worker *w = &ex->workers[i];
    if (w->lifo != NULL) {
      px__task_drop_notified(w->lifo);
      w->lifo = NULL;
    }
    px_task *t;
    while ((t = pop(w)) != NULL) px__task_drop_notified(t);
  }
  px_task *t;
  while ((t = inject_pop(ex)) != NULL) px__task_drop_notified(t);
}

const px__executor_ops px__ws_ops = {
    .name = "work_stealing",
    .create = ws_create,
    .destroy = ws_destroy,
    .schedule = ws_schedule,
    .block_on = ws_block_on,
    .drain = ws_drain,
    .align_tasks = true,
};
