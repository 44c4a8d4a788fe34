/*
 * The runtime's observer: per-worker counter blocks, the worker identity of
 * each thread, the slow-poll warning and px_runtime_metrics.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "observe/observe.h"

_Thread_local px__observe_tls px__obs_tls
    __attribute__((tls_model("initial-exec")));

static void block_init(px__counters *b, px__observe *obs, int worker,
                       bool shared) {
  memset(b, 0, sizeof *b);
  b->obs = obs;
  b->worker = worker;
  b->flags = shared ? PX__OBS_SHARED : 0;
  /* No thread polls with a worker's block until one enters it. */
  b->waiting = !shared;
}

/* Sets obs->flags and every block's copy (before any worker runs, or after
 * they all stopped). */
static void set_flags(px__observe *obs, unsigned flags) {
  obs->flags = flags;
  obs->outside.flags = flags | PX__OBS_SHARED;
  for (uint32_t i = 0; i < obs->nworkers; i++) obs->workers[i].flags = flags;
}

/* Counter blocks sit on their own cache lines (px__counters). */
#define LINE alignof(px__counters)

int px__observe_new(uint32_t workers, uint32_t slow_poll_ms,
                    px__observe **out) {
  px__log_init();
  *out = NULL;
  px__observe *obs = px__calloc_aligned(sizeof *obs, LINE);
  if (obs == NULL) return PX_ENOMEM;
  obs->max_worker = -1;
  obs->start_ns = px__now_ns();
  obs->nworkers = workers;
  obs->workers =
      px__calloc_aligned(obs->nworkers * sizeof *obs->workers, LINE);
  if (obs->workers == NULL) {
    px__free_aligned(obs, sizeof *obs, LINE);
    return PX_ENOMEM;
  }
  block_init(&obs->outside, obs, -1, true);
  for (uint32_t i = 0; i < obs->nworkers; i++)
    block_init(&obs->workers[i], obs, (int)i, false);
  if (slow_poll_ms > 0) {
    obs->slow_poll_ns = (uint64_t)slow_poll_ms * 1000000u;
    set_flags(obs, PX__OBS_SLOW);
    int rc = px__watchdog_watch(obs);
    if (rc < 0) {
      set_flags(obs, 0); /* not watched: nothing to unwatch */
      px__observe_free(obs);
      return rc;
    }
  }
  const char *path = getenv("PX_TRACE");
  if (path != NULL && path[0] != '\0' && px__trace_open(obs, path) == 0)
    set_flags(obs, obs->flags | PX__OBS_TRACE);
  *out = obs;
  return 0;
}

void px__observe_free(px__observe *obs) {
  if (obs == NULL) return;
  if (obs->flags & PX__OBS_SLOW) px__watchdog_unwatch(obs);
  px__trace_close(obs);
  px__free_aligned(obs->workers, obs->nworkers * sizeof *obs->workers, LINE);
  px__free_aligned(obs, sizeof *obs, LINE);
}

/* A worker's block stops or starts polling: parks, and a thread entering
 * or leaving the block. Only a watched block (the warning on) and never
 * the outside one, which the watchdog does not look at. */
static bool watched(const px__counters *b) {
  return (b->flags & (PX__OBS_SLOW | PX__OBS_SHARED)) == PX__OBS_SLOW;
}

static void stop_polling(px__counters *b) {
  __atomic_store_n(&b->waiting, 1, __ATOMIC_RELAXED);
  /* A watchdog that fell asleep while this worker was busy (a second's
   * sleep, as it was not waiting) can now sleep for good: wake it to see
   * that. Unfenced: a missed wake costs only that second. */
  if (__atomic_load_n(&px__watchdog_asleep, __ATOMIC_RELAXED))
    px__watchdog_wake();
}

static void start_polling(px__counters *b) {
  /* Either the watchdog, about to sleep for good, sees waiting = 0, or
   * this load sees its announcement and wakes it: a store and a load in
   * sequentially consistent order on both sides (watchdog.c, all_waiting),
   * which a plain store could pass (a fence TSan does not model). */
  __atomic_store_n(&b->waiting, 0, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&px__watchdog_asleep, __ATOMIC_SEQ_CST))
    px__watchdog_wake();
}

void px__observe_worker_enter(px__observe *obs, int id) {
  px__counters *b = &obs->outside;
  if (id >= 0 && (uint32_t)id < obs->nworkers) {
    b = &obs->workers[id];
    int seen = __atomic_load_n(&obs->max_worker, __ATOMIC_RELAXED);
    while (seen < id &&
           !__atomic_compare_exchange_n(&obs->max_worker, &seen, id, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
  }
  px__obs_tls.obs = obs;
  px__obs_tls.block = b;
  if (!px__obs_shared(b)) b->busy_since = px__now_ns();
  if (watched(b)) start_polling(b);
  px__observe_set_worker(id);
}

void px__observe_worker_leave(void) {
  /* A worker's trace events go to the file before it stops being one, so
   * the ring is never written by two threads. */
  px__counters *b = px__obs_tls.block;
  if (b != NULL && watched(b)) stop_polling(b);
  if (b != NULL && !px__obs_shared(b)) {
    if (b->busy_since != 0)
      px__obs_add(b, &b->busy_ns, px__now_ns() - b->busy_since);
    b->busy_since = 0;
    px__trace_flush(b);
  }
  px__obs_tls.obs = NULL;
  px__obs_tls.block = NULL;
  px__observe_set_worker(-1);
}

void px__observe_parked(px__observe *obs, uint64_t start, uint64_t end,
                        bool reactor) {
  px__counters *b = px__obs_block(obs);
  /* Only after px__observe_parking: a park a notification cut short
   * before it began (the work-stealing spin) never stopped polling. */
  if (watched(b) && __atomic_load_n(&b->waiting, __ATOMIC_RELAXED))
    start_polling(b);
  px__obs_add(b, &b->parks, 1);
  px__obs_add(b, &b->idle_ns, end - start);
  if (!px__obs_shared(b)) {
    if (b->busy_since != 0 && start > b->busy_since)
      px__obs_add(b, &b->busy_ns, start - b->busy_since);
    b->busy_since = end;
  }
  if (px__unlikely(b->flags & PX__OBS_TRACE)) {
    px__trace_emit(b, PX__TRACE_PARK, NULL, 0, start, 0);
    if (reactor)
      px__trace_emit(b, PX__TRACE_REACTOR_WAIT, NULL, 0, start, end - start);
  }
}

void px__observe_parking(px__observe *obs) {
  px__counters *b = px__obs_block(obs);
  if (watched(b)) stop_polling(b);
}

void px__observe_reactor_wait(px__observe *obs, uint64_t start, int events,
                              bool could_block) {
  px__counters *b = px__obs_block(obs);
  px__obs_add(b, &b->reactor_polls, 1);
  if (events > 0) px__obs_add(b, &b->reactor_events, (uint64_t)events);
  if (!could_block) return; /* a look, not a park */
  uint64_t end = px__now_ns();
  px__observe_parked(obs, start, end, true);
  PX__LOG(PX__LOG_TRACE, "parked %llu us, %d events",
          (unsigned long long)((end - start) / 1000u), events);
}

/* ---- PX_SLOW_POLL_MS ------------------------------------------------------ */

static atomic_bool env_warned;

uint32_t px__observe_env_slow_poll_ms(uint32_t fallback) {
  const char *v = getenv("PX_SLOW_POLL_MS");
  if (v == NULL || v[0] == '\0') return fallback;
  char *end;
  errno = 0;
  unsigned long ms = strtoul(v, &end, 10);
  /* strtoul accepts a sign and leading blanks; a threshold is digits only. */
  if (v[0] >= '0' && v[0] <= '9' && *end == '\0' && errno == 0 &&
      ms <= 3600000ul)
    return (uint32_t)ms;
  if (!atomic_exchange(&env_warned, true))
    PX__LOG(PX__LOG_WARN,
            "PX_SLOW_POLL_MS=%s is not a number of milliseconds in "
            "0..3600000; using %u",
            v, (unsigned)fallback);
  return fallback;
}

void px__observe_env_reset(void) { atomic_store(&env_warned, false); }

/* ---- Per poll ------------------------------------------------------------ */

/* The hooks' rare paths (observe.h): the outside block, shared by threads
 * that are not workers, times its polls with two coarse clock reads (the
 * watchdog watches workers only); tracing reads the clock too. */
void px__observe_wake_rare(px__counters *b, uint64_t id) {
  if (!px__obs_shared(b))
    px__obs_add(b, &b->wakes_local, 1);
  else
    px__obs_add(b, &b->wakes_remote, 1);
  if (b->flags & PX__OBS_TRACE)
    px__trace_emit(b, PX__TRACE_WAKE, NULL, id, px__now_ns(), 0);
}

void px__observe_poll_begin_rare(px__poll_probe *p) {
  px__counters *b = p->b;
  if (!px__obs_shared(b)) {
    px__obs_worker_begin(b, p->flags);
  } else if (p->flags & PX__OBS_SLOW) {
    p->coarse0 = px__clock_coarse_ns();
  }
  if (p->flags & PX__OBS_TRACE) p->t0 = px__now_ns();
}

bool px__observe_poll_end_rare(px__poll_probe *p) {
  px__counters *b = p->b;
  p->slow = false;
  if (!px__obs_shared(b)) {
    p->slow = px__obs_worker_end(b);
  } else {
    __atomic_fetch_add(&b->polls, 1, __ATOMIC_RELAXED);
    if (p->flags & PX__OBS_SLOW) {
      p->coarse0 = px__clock_coarse_ns() - p->coarse0; /* the duration */
      p->slow = p->coarse0 >= b->obs->slow_poll_ns;
    }
  }
  return p->slow || (p->flags & PX__OBS_TRACE);
}

bool px__observe_poll_report(px__poll_probe *p, uint64_t task_id,
                             const px_future *f, bool warned) {
  px__observe *obs = p->b->obs;
  const char *name = f->vtable != NULL ? f->vtable->name : NULL;
  if (p->flags & PX__OBS_TRACE) {
    uint64_t end = px__now_ns();
    px__trace_emit(p->b, PX__TRACE_POLL, name, task_id, p->t0, end - p->t0);
  }
  if (!p->slow || warned) return false;
  uint64_t took = p->coarse0; /* the outside block's: see poll_end */
  if (!px__obs_shared(p->b)) {
    /* The watchdog stored slow_since before the mark poll_end saw (with a
     * relaxed load; this one acquires it). The poll began before the
     * watchdog first saw it: a lower bound. */
    (void)__atomic_load_n(&p->b->slow_epoch, __ATOMIC_ACQUIRE);
    took = px__now_ns() - __atomic_load_n(&p->b->slow_since, __ATOMIC_RELAXED);
  }
  PX__LOG(PX__LOG_WARN,
          "slow poll: task %llu (%s) ran %llu ms in one poll "
          "(slow_poll_ms = %llu); a future must not block",
          (unsigned long long)task_id, name != NULL ? name : "?",
          (unsigned long long)(took / 1000000u),
          (unsigned long long)(obs->slow_poll_ns / 1000000u));
  return true;
}

void px__observe_block_on_end(const px_future *main, px__poll_probe *p) {
  px__obs_add(p->b, &p->b->block_on_polls, 1);
  if (px__unlikely(p->flags & PX__OBS_TRACE)) {
    uint64_t end = px__now_ns();
    px__trace_emit(p->b, PX__TRACE_BLOCK_ON,
                   main->vtable != NULL ? main->vtable->name : NULL, 0, p->t0,
                   end - p->t0);
  }
}

/* ---- px_runtime_metrics -------------------------------------------------- */

static uint64_t rd(const uint64_t *c) {
  return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Adds block b's counters to the totals. */
static void sum_block(px_metrics *m, const px__counters *b) {
  m->tasks_spawned += rd(&b->spawned);
  m->tasks_completed += rd(&b->completed);
  m->polls += rd(&b->polls) + rd(&b->epoch) / 2;
  m->block_on_polls += rd(&b->block_on_polls);
  m->wakes_local += rd(&b->wakes_local);
  m->wakes_remote += rd(&b->wakes_remote);
  m->reactor_polls += rd(&b->reactor_polls);
  m->reactor_events += rd(&b->reactor_events);
  m->timers_armed += rd(&b->timers_armed);
  m->timers_fired += rd(&b->timers_fired);
  m->timers_cancelled += rd(&b->timers_cancelled);
}

void px__observe_metrics(const px__observe *obs, px_metrics *out) {
  memset(out, 0, sizeof *out);
  sum_block(out, &obs->outside);
  int max = __atomic_load_n(&obs->max_worker, __ATOMIC_RELAXED);
  out->workers = (uint32_t)(max + 1);
  out->workers_reported = out->workers < PX_METRICS_MAX_WORKERS
                              ? out->workers
                              : PX_METRICS_MAX_WORKERS;
  for (uint32_t i = 0; i < out->workers; i++) {
    const px__counters *b = &obs->workers[i];
    sum_block(out, b);
    if (i < out->workers_reported) {
      px_worker_metrics *w = &out->worker[i];
      w->polls = rd(&b->epoch) / 2;
      w->steals = rd(&b->steals);
      w->parks = rd(&b->parks);
      w->lifo_hits = rd(&b->lifo_hits);
      w->busy_ns = rd(&b->busy_ns);
      w->idle_ns = rd(&b->idle_ns);
      w->local_queue_depth = rd(&b->local_depth);
    }
  }
  /* Blocks are read one after the other while tasks come and go, so the
   * difference is clamped rather than trusted to be positive. */
  out->tasks_alive = out->tasks_spawned > out->tasks_completed
                         ? out->tasks_spawned - out->tasks_completed
                         : 0;
  out->injection_queue_depth =
      __atomic_load_n(&obs->injection_depth, __ATOMIC_RELAXED);
}
