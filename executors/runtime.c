/*
 * The runtime ties the three backends together: the executor runs tasks,
 * the reactor waits for I/O, the timer orders deadlines. This file owns what
 * they share: configuration, the list of live tasks, parking, the timer
 * clock, entering and leaving the runtime, and shutdown.
 */
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/internal/list.h"
#include "api/internal/px_internal.h"
#include "api/internal/wake_batch.h"
#include "executors/executor.h"
#include "api/internal/services.h"
#include "observe/observe.h"
#include "reactors/reactor.h"
#include "timers/timer.h"

struct px_runtime {
  /* First: executors and task.c read the observer through it on every
   * spawn, poll and wake (executors/executor.h). */
  px__runtime_head head;
  px_config cfg;
  const px__executor_ops *exec_ops;
  px__executor *exec;
  const px__reactor_ops *reactor_ops;
  px__reactor *reactor;
  const px__timer_ops *timer_ops;
  void *timer;
  /* Multi-threaded executors touch timers from several threads (a sleep
   * polled on any worker inserts and cancels, the driver advances), so every
   * timer operation holds this lock; uncontended under fifo. Wakes of fired
   * timers happen after it is released (see advance_timers). */
  pthread_mutex_t timer_lock;
  /* Under timer_lock: the tick a parked driver sleeps until (PX__TICK_NONE:
   * forever), 0 when nobody waits. An insert for an earlier tick from
   * another thread must interrupt that wait. */
  uint64_t wait_until;
  /* Live tasks. A spinlock: held for a few pointer writes, never across a
   * call. A single-threaded executor shares it only with remote spawns;
   * under work stealing every worker takes it twice per task (adopt,
   * unlink), the first lock to contend as workers grow (bench/scaling.md). */
  px__spinlock owned_lock;
  px__list owned; /* px_task.owned */
  bool closed; /* under owned_lock: no new task may join */

  px__thread_waker main_waker; /* block_on's future was woken */
  atomic_int parked;      /* the runtime thread waits in the reactor */
  atomic_int in_block_on; /* one block_on at a time */

  /* The blocking pool (blocking/), installed by its first job; NULL until
   * then. `blocking_plug` is stored before the pool is published. */
  _Atomic(px__blocking_pool *) blocking;
  _Atomic(const px__blocking_plug *) blocking_plug;
};

/* px__runtime_observe reads the head through a cast of the runtime. */
_Static_assert(offsetof(struct px_runtime, head) == 0,
               "the head must start struct px_runtime");

static _Thread_local px_runtime *tls_runtime;

/* ---- Configuration ---------------------------------------------------- */

static _Thread_local char config_error[160];

void px_config_init(px_config *cfg) {
  if (cfg == NULL) return;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  cfg->workers = n < 1 ? 1 : (n > 1024 ? 1024 : (uint32_t)n);
  cfg->event_capacity = 1024;
  cfg->event_interval = 61;
  cfg->blocking_threads = 64;
  cfg->blocking_idle_ms = 10000;
  cfg->blocking_shutdown_ms = 5000;
  /* PX_SLOW_POLL_MS changes the default without recompiling; a program
   * that sets the field after this call still has the last word. */
  cfg->slow_poll_ms = px__observe_env_slow_poll_ms(100);
}

static int config_fail(const char *field, uint32_t value, const char *range) {
  snprintf(config_error, sizeof config_error, "px_config.%s = %u: must be %s",
           field, value, range);
  return PX_EINVAL;
}

int px_config_validate(const px_config *cfg) {
  config_error[0] = '\0';
  if (cfg == NULL) {
    snprintf(config_error, sizeof config_error, "px_config is NULL");
    return PX_EINVAL;
  }
  if (cfg->workers < 1 || cfg->workers > 1024)
    return config_fail("workers", cfg->workers, "1..1024");
  if (cfg->event_capacity < 1 || cfg->event_capacity > 65536)
    return config_fail("event_capacity", cfg->event_capacity, "1..65536");
  if (cfg->event_interval < 1 || cfg->event_interval > 1000000)
    return config_fail("event_interval", cfg->event_interval, "1..1000000");
  if (cfg->blocking_threads < 1 || cfg->blocking_threads > 4096)
    return config_fail("blocking_threads", cfg->blocking_threads, "1..4096");
  if (cfg->blocking_idle_ms > 3600000)
    return config_fail("blocking_idle_ms", cfg->blocking_idle_ms,
                       "0..3600000");
  if (cfg->blocking_shutdown_ms > 3600000)
    return config_fail("blocking_shutdown_ms", cfg->blocking_shutdown_ms,
                       "0..3600000");
  if (cfg->slow_poll_ms > 3600000)
    return config_fail("slow_poll_ms", cfg->slow_poll_ms, "0..3600000");
  return 0;
}

const char *px_config_error(void) { return config_error; }

const char *px_build_info(void) {
  static char info[128];
  if (info[0] == '\0') {
    /* Benign if two threads race: both write the same bytes. */
    snprintf(info, sizeof info, "executor=%s reactor=%s timer=%s",
             px__executor_default->name, px__reactor_default->name,
             px__timer_default->name);
  }
  return info;
}

const char *px_runtime_reactor(const px_runtime *rt) {
  return rt != NULL ? rt->reactor_ops->name : NULL;
}

/* ---- Creation and shutdown --------------------------------------------- */

/* block_on's waker fired: interrupt the reactor wait of its thread. */
static void unpark_main(void *rt) { px__runtime_unpark(rt); }

int px_runtime_new(px_runtime **out, const px_config *cfg) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  px_config defaults;
  if (cfg == NULL) {
    px_config_init(&defaults);
    cfg = &defaults;
  }
  int rc = px_config_validate(cfg);
  if (rc < 0) return rc;

  px_runtime *rt = px__calloc(sizeof *rt);
  if (rt == NULL) return PX_ENOMEM;
  rt->cfg = *cfg;
  atomic_init(&rt->owned_lock, 0);
  px__list_init(&rt->owned);
  rt->main_waker.unpark = unpark_main;
  rt->main_waker.unpark_arg = rt;
  /* Timers have fired up to the start's tick (timers/timer.h counts
   * ticks from the clock's zero): nothing due later has passed. */
  uint64_t start = px__timer_tick_floor(px__now_ns());
  atomic_init(&rt->head.elapsed_ns, start * PX__TIMER_TICK_NS);
  pthread_mutex_init(&rt->timer_lock, NULL);
  /* Log lines name the running task; observe/ asks through this. */
  px__log_set_task_source(px_task_current_id);
  /* First, so that nothing below can count into a missing observer. */
  rc = px__observe_new(cfg->workers, cfg->slow_poll_ms, &rt->head.observe);
  if (rc < 0) goto fail;

  rt->timer_ops = px__timer_default;
  rt->timer = px__calloc(rt->timer_ops->size);
  if (rt->timer == NULL) {
    rc = PX_ENOMEM;
    goto fail;
  }
  rt->timer_ops->init(rt->timer, start);

  rc = px__reactor_create(px__reactor_default, cfg, &rt->reactor);
  if (rc < 0) goto fail;
  /* The default's fallback where the kernel refused the default. */
  rt->reactor_ops = px__reactor_ops_of(rt->reactor);

  rt->exec_ops = px__executor_default;
  rt->head.align_tasks = rt->exec_ops->align_tasks;
  rc = rt->exec_ops->create(rt, cfg, &rt->exec);
  if (rc < 0) goto fail;

  *out = rt;
  return 0;

fail:
  px__reactor_destroy(rt->reactor);
  if (rt->timer != NULL) {
    rt->timer_ops->destroy(rt->timer);
    px__free(rt->timer, rt->timer_ops->size);
  }
  pthread_mutex_destroy(&rt->timer_lock);
  px__observe_free(rt->head.observe);
  px__free(rt, sizeof *rt);
  return rc;
}

static void owned_lock(px_runtime *rt) { px__spin_lock(&rt->owned_lock); }

static void owned_unlock(px_runtime *rt) { px__spin_unlock(&rt->owned_lock); }

int px__runtime_adopt(px_runtime *rt, px_task *t) {
  owned_lock(rt);
  if (rt->closed) {
    owned_unlock(rt);
    return PX_ESHUTDOWN;
  }
  px__list_insert_head(&rt->owned, &t->owned);
  owned_unlock(rt);
  return 0;
}

bool px__runtime_unlink(px_runtime *rt, px_task *t) {
  owned_lock(rt);
  bool linked = px__list_linked(&t->owned);
  if (linked) px__list_remove(&t->owned);
  owned_unlock(rt);
  return linked;
}

void px__runtime_disown(px_runtime *rt, px_task *t) {
  if (px__runtime_unlink(rt, t)) px__task_ref_dec(t);
}

void px_runtime_free(px_runtime *rt) {
  if (rt == NULL) return;
  /* Freeing a runtime from one of its own tasks would pull the floor out
   * from under the caller; refuse by doing nothing. */
  if (tls_runtime == rt || atomic_load(&rt->in_block_on)) return;

  owned_lock(rt);
  rt->closed = true;
  owned_unlock(rt);

  /* Enter, so futures dropped below can still cancel their timers and
   * deregister their sockets, and wakes they cause are queued locally. */
  px_runtime *prev = px__runtime_enter(rt);
  /* A first drain stops multi-threaded executors' workers, so that nothing
   * polls a task while it is cancelled below, and drops what was queued
   * (a queued task keeps its NOTIFIED bit, which shutdown ignores). The
   * second drain, after the loop, drops what the cancellations woke. */
  rt->exec_ops->drain(rt->exec);
  for (;;) {
    owned_lock(rt);
    px__list *first = px__list_first(&rt->owned);
    px_task *t = first != NULL ? px__container_of(first, px_task, owned) : NULL;
    if (t != NULL) px__task_ref_inc(t); /* keep it alive across the unlock */
    owned_unlock(rt);
    if (t == NULL) break;
    px__task_shutdown(t);
    px__task_ref_dec(t);
  }
  /* Every task is gone, so jobs awaited by tasks were cancelled or detached
   * by their futures' drops; the pool cancels what is left, waits a bounded
   * time for running jobs, and must finish before the backends go (waking a
   * future needs them), and before the last drain (which drops the tasks
   * those wakes queue). Called through the pool's plug, so this file does
   * not depend on blocking/ at link time. */
  px__blocking_pool *pool = px__runtime_blocking(rt);
  if (pool != NULL) {
    atomic_load_explicit(&rt->blocking_plug, memory_order_relaxed)
        ->shutdown(pool);
    atomic_store_explicit(&rt->blocking, NULL, memory_order_relaxed);
  }
  rt->exec_ops->drain(rt->exec);
  px__runtime_enter(prev);

  /* Streams, listeners and signal streams the program has not closed yet
   * let go of the reactor now, so that closing them later (after
   * px_runtime_free, the mirror of opening them before the runtime) only
   * closes their descriptor. Their wakers go too, releasing the tasks they
   * kept alive while the executor can still free them. */
  px__reactor_detach_all(rt->reactor);
  rt->exec_ops->destroy(rt->exec);
  px__reactor_destroy(rt->reactor);
  rt->timer_ops->destroy(rt->timer);
  px__free(rt->timer, rt->timer_ops->size);
  pthread_mutex_destroy(&rt->timer_lock);
  /* Last: the trace file gets every worker's events once they all stopped. */
  px__observe_free(rt->head.observe);
  px__free(rt, sizeof *rt);
}

/* ---- The blocking pool's plug (api/internal/services.h) ------------------- */

px__blocking_pool *px__runtime_blocking(px_runtime *rt) {
  return atomic_load_explicit(&rt->blocking, memory_order_acquire);
}

px__blocking_pool *px__runtime_blocking_install(px_runtime *rt,
                                                const px__blocking_plug *plug,
                                                px__blocking_pool *pool) {
  /* Every pool has the same plug, so a racing install stores the same
   * value; the release below publishes it with the pool. */
  atomic_store_explicit(&rt->blocking_plug, plug, memory_order_relaxed);
  px__blocking_pool *expected = NULL;
  if (atomic_compare_exchange_strong_explicit(&rt->blocking, &expected, pool,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
    return pool;
  return expected;
}

const px_config *px__runtime_config(px_runtime *rt) { return &rt->cfg; }

/* ---- Metrics ------------------------------------------------------------ */

int px_runtime_metrics(px_runtime *rt, px_metrics *out) {
  if (rt == NULL || out == NULL) return PX_EINVAL;
  px__observe_metrics(rt->head.observe, out);
  px__blocking_pool *pool = px__runtime_blocking(rt);
  if (pool != NULL)
    atomic_load_explicit(&rt->blocking_plug, memory_order_relaxed)
        ->gauges(pool, &out->blocking_threads, &out->blocking_queue_depth);
  return 0;
}

/* ---- Entering and driving --------------------------------------------- */

px_runtime *px__runtime_enter(px_runtime *rt) {
  px_runtime *prev = tls_runtime;
  tls_runtime = rt;
  /* Blocks freed while a thread runs a runtime are kept for its next
   * spawns; leaving hands them back (api/alloc.c). */
  px__alloc_cache_use(rt != NULL);
  return prev;
}

bool px__runtime_is_current(const px_runtime *rt) { return tls_runtime == rt; }

px_runtime *px_runtime_current(void) { return tls_runtime; }

px__thread_waker *px__runtime_main_waker(px_runtime *rt) {
  return &rt->main_waker;
}

void px__runtime_schedule(px_runtime *rt, px_task *t) {
  rt->exec_ops->schedule(rt->exec, t);
}

int px_runtime_block_on(px_runtime *rt, px_future *future) {
  if (rt == NULL || future == NULL || future->vtable == NULL) return PX_EINVAL;
  if (future->state & (PX_FUTURE_DONE | PX_FUTURE_DROPPED)) return PX_EDONE;
  if (tls_runtime != NULL) {
    /* Blocking this thread inside a poll would stop every task it runs
     * (and deadlock outright on the same runtime), so nesting is refused;
     * say so, since a bare PX_EBUSY is hard to trace back. */
    PX__LOG(PX__LOG_ERROR,
            "block_on called from inside a runtime (a task or a future "
            "being polled); await the future instead, or spawn it: "
            "returning PX_EBUSY");
    return PX_EBUSY;
  }
  owned_lock(rt);
  bool closed = rt->closed;
  owned_unlock(rt);
  if (closed) return PX_ESHUTDOWN;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&rt->in_block_on, &expected, 1)) {
    PX__LOG(PX__LOG_ERROR,
            "block_on: another thread is already in block_on of this "
            "runtime; use px_runtime_spawn from other threads: returning "
            "PX_EBUSY");
    return PX_EBUSY;
  }

  px_runtime *prev = px__runtime_enter(rt);
  int rc = rt->exec_ops->block_on(rt->exec, future);
  px__runtime_enter(prev);
  px_future_drop(future);
  /* A reactor that performs operations itself (io_uring) may hold requests
   * its last turn queued, bytes written behind among them: hand them to the
   * kernel now, since nothing may poll this runtime for a long while. Not
   * a poll: on a thread that is not the reactor's poller (work stealing)
   * taking completions could take a waiting worker's wake-up. */
  (void)px__reactor_flush(rt->reactor);
  atomic_store(&rt->in_block_on, 0);
  return rc < 0 ? rc : future->error;
}

int px_run(px_future *main) {
  if (tls_runtime != NULL) {
    /* Checked before building a second runtime that could not run anyway. */
    PX__LOG(PX__LOG_ERROR,
            "px_run called from inside a runtime (a task or a future being "
            "polled); await the future instead, or spawn it: returning "
            "PX_EBUSY");
    px_future_drop(main);
    return PX_EBUSY;
  }
  px_runtime *rt;
  int rc = px_runtime_new(&rt, NULL);
  if (rc < 0) {
    px_future_drop(main);
    return rc;
  }
  rc = px_runtime_block_on(rt, main);
  px_runtime_free(rt);
  return rc;
}

/* ---- Timers ----------------------------------------------------------- */


/*
 * The wakers of the timers an advance fires are taken over under the timer
 * lock and woken after it is released (api/internal/wake_batch.h). The
 * timer fires no more than the batch has room for.
 */
static void fire_timer(px_timer_node *node, void *arg) {
  /* The bits stay in the node, no longer owned (see services.h): its
   * owner may be reading them, without the lock, right now. */
  px__wake_batch_push(arg, node->waker);
}

/* Moves the runtime's time to tick `now` (timer_lock held). Before the
 * wakes: a task they wake finds its deadline passed. A timer fires at
 * px__timer_tick of its deadline, so every deadline it fired is at or
 * before this instant (and one not fired yet that a task finds passed
 * completes it: it cancels its node). Concurrent advances (work stealing:
 * the driver and a busy worker's turn) only move it forward. */
static void note_elapsed(px_runtime *rt, uint64_t now) {
  uint64_t seen = now * PX__TIMER_TICK_NS;
  if (seen > atomic_load_explicit(&rt->head.elapsed_ns, memory_order_relaxed))
    atomic_store_explicit(&rt->head.elapsed_ns, seen, memory_order_release);
}

/*
 * Fires the timers due at tick `now` (read by the caller: see
 * px__runtime_turn), a batch at a time: each batch is woken with the lock
 * released, and the next taken where the timer left off (timers/timer.h,
 * advance's `max`). So firing needs no memory however many timers are
 * due, and no other thread waits on the lock for a whole burst.
 */
static size_t advance_timers(px_runtime *rt, uint64_t now) {
  px__wake_batch b;
  px__wake_batch_init(&b);
  size_t total = 0, n;
  do {
    pthread_mutex_lock(&rt->timer_lock);
    /* The batch is empty here: each pass wakes it all. */
    n = rt->timer_ops->advance(rt->timer, now, PX__WAKE_BATCH, fire_timer,
                               &b);
    note_elapsed(rt, now);
    pthread_mutex_unlock(&rt->timer_lock);
    px__wake_batch_wake(&b);
    total += n;
  } while (n == PX__WAKE_BATCH);
  if (total > 0) PX__COUNT(rt->head.observe, timers_fired, total);
  return total;
}

uint64_t px__runtime_elapsed_ns(px_runtime *rt) {
  return px__runtime_elapsed(rt);
}

int px__runtime_timer_insert(px_runtime *rt, px_timer_node *node,
                             const px_waker *waker) {
  if (rt == NULL || node == NULL) return PX_EINVAL;
  px_waker old = PX_WAKER_EMPTY;
  pthread_mutex_lock(&rt->timer_lock);
  bool armed = px__timer_armed(node);
  if (armed) rt->timer_ops->cancel(rt->timer, node);
  /* Cloning a waker only bumps a count; the waker being replaced is
   * dropped after unlocking (dropping may free a task). An unarmed node's
   * bits are not its own (a fired copy, or nothing): overwritten, not
   * dropped. */
  if (!armed || !px_waker_will_wake(&node->waker, waker)) {
    if (armed) old = node->waker;
    node->waker = px_waker_clone(waker);
  }
  /* A heap timer may fail to grow: the node stays unarmed, so release the
   * waker clone it would have woken and let the caller report the error. */
  int rc = rt->timer_ops->insert(rt->timer, node);
  px_waker unarmed = PX_WAKER_EMPTY;
  if (rc < 0) {
    unarmed = node->waker;
    node->waker.vtable = NULL;
    node->waker.data = NULL;
  }
  /* A driver parked on another thread sleeps until wait_until: a deadline
   * before that must interrupt its wait, or the sleep would fire late. */
  bool earlier = rc == 0 && node->tick < rt->wait_until;
  pthread_mutex_unlock(&rt->timer_lock);
  px_waker_drop(&old);
  px_waker_drop(&unarmed);
  if (rc == 0) PX__COUNT(rt->head.observe, timers_armed, 1);
  if (earlier) px__runtime_unpark(rt);
  return rc;
}

void px__runtime_timer_rearm(px_runtime *rt, px_timer_node *node,
                             uint64_t tick) {
  if (rt == NULL || node == NULL) return;
  px_waker wake = PX_WAKER_EMPTY;
  bool earlier = false;
  pthread_mutex_lock(&rt->timer_lock);
  /* Under the lock: another thread's advance may be reading the tick of an
   * armed node (a fired one's is read by no one but its owner). */
  node->tick = tick;
  if (px__timer_armed(node)) {
    rt->timer_ops->cancel(rt->timer, node);
    if (rt->timer_ops->insert(rt->timer, node) < 0) {
      wake = node->waker; /* unarmed now: the waker is ours to wake */
      node->waker.vtable = NULL;
      node->waker.data = NULL;
    } else {
      earlier = tick < rt->wait_until; /* see px__runtime_timer_insert */
    }
  } else {
    /* Fired for the old deadline: the stale bits must not answer "armed
     * for this task" for the new one. */
    node->waker.vtable = NULL;
    node->waker.data = NULL;
  }
  pthread_mutex_unlock(&rt->timer_lock);
  px_waker_wake(&wake);
  if (earlier) px__runtime_unpark(rt);
}

void px__runtime_timer_cancel(px_runtime *rt, px_timer_node *node) {
  if (rt == NULL || node == NULL) return;
  pthread_mutex_lock(&rt->timer_lock);
  bool armed = px__timer_armed(node);
  px_waker old = PX_WAKER_EMPTY;
  if (armed) {
    rt->timer_ops->cancel(rt->timer, node);
    old = node->waker;
  }
  node->waker.vtable = NULL;
  node->waker.data = NULL;
  pthread_mutex_unlock(&rt->timer_lock);
  if (armed) PX__COUNT(rt->head.observe, timers_cancelled, 1);
  px_waker_drop(&old);
}

/* ---- Reactor ---------------------------------------------------------- */

void px__runtime_reactor(px_runtime *rt, const px__reactor_ops **ops,
                         px__reactor **r) {
  *ops = rt->reactor_ops;
  *r = rt->reactor;
}

/* The reactor's wait: until the next timer tick, 0 when one is due at
 * tick `now`, forever without one (-1). It is about to begin, and is
 * announced (px__runtime_timer_insert then knows whether a new timer comes
 * before its end). */
static int park_timeout_ms(px_runtime *rt, uint64_t now) {
  pthread_mutex_lock(&rt->timer_lock);
  uint64_t next = rt->timer_ops->next_tick(rt->timer);
  rt->wait_until = next;
  pthread_mutex_unlock(&rt->timer_lock);
  if (next == PX__TICK_NONE) return -1;
  if (next <= now) return 0;
  uint64_t ms = next - now;
  return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* A look at the I/O that does not wait. */
static int reactor_look(px_runtime *rt) {
  int n = px__reactor_poll(rt->reactor, 0);
  PX__COUNT(rt->head.observe, reactor_polls, 1);
  if (n > 0) PX__COUNT(rt->head.observe, reactor_events, n);
  return n < 0 ? 0 : n;
}

/*
 * Both fire the timers due at a clock reading taken *before* their last
 * look at the I/O, so that a task a timer wakes runs with every readiness
 * that came before its deadline. The order matters when the thread stalls
 * (SIGSTOP, preemption on a loaded machine) between a look and the timers:
 * with the clock read after the look, a timer that fell due during the
 * stall fired while the bytes that arrived during it were unseen, and a
 * server closed as idle a client that had sent a request (the adversarial
 * stall case; fault_test's stall test). The readiness is dispatched before
 * the timers' wakes, so a task another worker runs at once sees it too.
 * tokio's driver polls I/O, then reads the clock: the window stays open.
 */
int px__runtime_turn(px_runtime *rt) {
  uint64_t now = px__timer_tick_floor(px__now_ns());
  int n = reactor_look(rt);
  return n + (int)advance_timers(rt, now);
}

int px__runtime_park(px_runtime *rt, bool (*has_work)(void *arg), void *arg) {
  uint64_t now = px__timer_tick_floor(px__now_ns());
  /* Announce the park before the last look at the queues: a remote waker
   * either sees parked = 1 and unparks us, or pushed early enough for
   * has_work to see it (both sides use sequentially consistent order).
   * A timer already due makes the wait a look. */
  atomic_store(&rt->parked, 1);
  int timeout = has_work(arg) ? 0 : park_timeout_ms(rt, now);
  /* Idle time and the trace's reactor span cover the wait alone. */
  uint64_t wait_start = px__now_ns();
  if (timeout != 0) px__observe_parking(rt->head.observe);
  int n;
  if ((timeout < 0 || timeout > PX__TRIM_AFTER_MS) && px__alloc_holds()) {
    /* A thread that sleeps keeps no freed blocks (api/alloc.c), but only
     * once it has slept PX__TRIM_AFTER_MS: a driver handing its blocks to
     * malloc at every park between bursts of work freed them against the
     * thread allocating the next burst (the work-stealing worker's park
     * waits the same way). Shorter parks keep them. After the trim the
     * park ends as if woken: a wake-up that ended the first wait counts no
     * event, so waiting again here could sleep through it; the caller
     * parks again, with nothing kept and the timeout computed afresh.
     * (That no event came does not say the wait timed out: the reactor's
     * own wake-up counts none. The clock says it.) */
    n = px__reactor_poll(rt->reactor, PX__TRIM_AFTER_MS);
    if (n == 0 &&
        px__now_ns() - wait_start >= PX__TRIM_AFTER_MS * UINT64_C(1000000))
      px__alloc_release();
  } else {
    n = px__reactor_poll(rt->reactor, timeout);
  }
  px__observe_reactor_wait(rt->head.observe, wait_start, n, timeout != 0);
  if (n < 0) n = 0;
  atomic_store(&rt->parked, 0);
  /* A wait took time: read the clock again. */
  if (timeout != 0) now = px__timer_tick_floor(px__now_ns());
  pthread_mutex_lock(&rt->timer_lock);
  rt->wait_until = 0;
  uint64_t next = rt->timer_ops->next_tick(rt->timer);
  if (next > now) {
    /* Nothing is due, so the timer is left as it is (a later advance
     * passes the same empty slots) and only the runtime's time moves: one
     * lock per park where an advance took a second, and the wheel's walk
     * of its levels (about 300 instructions a park on bench http_min). */
    note_elapsed(rt, now);
    pthread_mutex_unlock(&rt->timer_lock);
    return n;
  }
  pthread_mutex_unlock(&rt->timer_lock);
  /* A due timer after a wait gets a look of its own (the wait timed out;
   * or a stop signal cut it short, as epoll_wait fails with EINTR after
   * SIGSTOP and SIGCONT; or an event ended it before a stall). */
  if (timeout != 0) n += reactor_look(rt);
  return n + (int)advance_timers(rt, now);
}

void px__runtime_unpark(px_runtime *rt) {
  if (atomic_load(&rt->parked)) px__reactor_wakeup(rt->reactor);
}
