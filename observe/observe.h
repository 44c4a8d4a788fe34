/*
 * Observability internals: log sites, per-worker counters and trace events
 * (internal, C only). docs/OBSERVABILITY.md describes what users see.
 *
 * Cost when everything is off is the point of this header: a log site is one
 * predictable branch on a global, a counter is a relaxed load and store into
 * a cache line only the calling worker writes, and a trace site is one
 * branch on a flag the runtime set at creation.
 */
#ifndef POLLUX_OBSERVE_OBSERVE_H
#define POLLUX_OBSERVE_OBSERVE_H

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "api/internal/px_internal.h"
#include "executors/executor.h"
#include "platform/platform.h"
#include "pollux/observe.h"
#include "pollux/runtime.h"

/* ---- Logging ------------------------------------------------------------ */

#define PX__LOG_ERROR 1
#define PX__LOG_WARN 2
#define PX__LOG_INFO 3
#define PX__LOG_DEBUG 4
#define PX__LOG_TRACE 5

/*
 * The active level. It starts above every level so that the first log site
 * reaches px__log, which reads PX_LOG and then filters: parsing is lazy
 * without a second branch at each site. Read with a relaxed atomic load,
 * which compiles to a plain load but keeps the thread sanitizer informed.
 */
extern int px__log_level;

/* Writes one line to stderr if `level` is enabled (parses PX_LOG first). */
void px__log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads PX_LOG once per process (px_runtime_new calls it). */
void px__log_init(void);

/*
 * Sets the level from a PX_LOG value (NULL or "" means warn); an unknown
 * value logs one warning and falls back to warn. Tests call it to re-parse.
 */
void px__log_parse(const char *value);

#ifndef PX_NO_LOG_SITES
#define PX__LOG(level, ...)                                              \
  do {                                                                   \
    if (px__unlikely((level) <=                                          \
                     __atomic_load_n(&px__log_level, __ATOMIC_RELAXED))) \
      px__log((level), __VA_ARGS__);                                     \
  } while (0)
#else
/* Sites compiled out: only tools/bench builds this, as the baseline that
 * shows what a site costs while its level is off. `if (0)` keeps the
 * arguments type-checked and counted as used. */
#define PX__LOG(level, ...)                      \
  do {                                           \
    if (0) px__log((level), __VA_ARGS__);        \
  } while (0)
#endif

/*
 * The slow-poll threshold PX_SLOW_POLL_MS asks for (milliseconds,
 * 0..3600000, 0 = off), or `fallback` when it is unset. A value that is not
 * such a number gives one warning per process and `fallback`.
 */
uint32_t px__observe_env_slow_poll_ms(uint32_t fallback);

/* Tests: forget that the bad-value warning was given. */
void px__observe_env_reset(void);

/* The worker id log lines show for this thread (-1: not a worker, "-"). */
void px__observe_set_worker(int id);
int px__observe_worker(void);

/* ---- Counters ----------------------------------------------------------- */

struct px__trace_ring;
struct px__observe;

/*
 * One block of counters. Each worker owns one and is its only writer, so an
 * increment is a relaxed load and a relaxed store (no locked instruction);
 * `shared` marks the runtime's "outside" block, which any thread that is not
 * a worker updates with fetch_add. Aligned to a cache line so two workers
 * never write the same line.
 */
typedef struct px__counters {
  alignas(64) uint64_t spawned;
  uint64_t completed;
  uint64_t polls;
  uint64_t block_on_polls;
  uint64_t wakes_local, wakes_remote;
  uint64_t steals, parks, lifo_hits;
  uint64_t busy_ns, idle_ns;
  uint64_t local_depth; /* a gauge: stored, not added */
  uint64_t reactor_polls, reactor_events;
  uint64_t timers_armed, timers_fired, timers_cancelled;
  /* Owner only: the coarse time the last task poll ended, which is when the
   * next one starts if nothing else ran between (0: unknown). See
   * px__observe_poll_begin. */
  uint64_t mark;
  /* Owner only: when the worker last stopped parking (busy time). */
  uint64_t busy_since;
  struct px__observe *obs;
  struct px__trace_ring *ring; /* trace events not yet written (owner only) */
  int worker;                  /* its id, -1 for the outside block */
  bool shared;
} px__counters;

/* Flags in px__observe.flags: what the per-poll hooks must do. */
#define PX__OBS_SLOW 1u  /* time polls for the slow-poll warning */
#define PX__OBS_TRACE 2u /* record trace events */

typedef struct px__observe {
  px_runtime *rt;
  unsigned flags;
  uint64_t slow_poll_ns;
  uint64_t start_ns;               /* trace time 0 */
  struct px__trace *trace;         /* NULL when PX_TRACE is unset */
  uint32_t nworkers;               /* blocks in `workers` */
  int max_worker;                  /* highest id entered (atomic) */
  uint64_t injection_depth;        /* a gauge (atomic) */
  void *raw, *workers_raw;         /* what px__calloc returned */
  px__counters outside;
  px__counters *workers;
} px__observe;

/* What the calling thread is, for the runtime it runs (if any). */
typedef struct px__observe_tls {
  px_runtime *rt;       /* the runtime this thread is a worker of */
  px__counters *block;  /* its block in that runtime */
} px__observe_tls;
/*
 * initial-exec: pollux is linked into the program, never dlopen'ed, so the
 * variable sits at a fixed offset from the thread pointer and reading it is
 * one load. The default model for -fPIC code calls __tls_get_addr on every
 * access, which costs more than the counting itself.
 */
extern _Thread_local px__observe_tls px__obs_tls
    __attribute__((tls_model("initial-exec")));

/* The runtime's observer (executors/runtime.c). */
px__observe *px__runtime_observe(px_runtime *rt);

/*
 * Sums every block into `out` (all of it but the blocking pool's gauges,
 * which the runtime adds: px_runtime_metrics is in executors/runtime.c).
 */
void px__observe_metrics(const px__observe *obs, px_metrics *out);

/* Creates and frees the observer of `rt` (px_runtime_new / _free). */
int px__observe_new(px_runtime *rt, const px_config *cfg, px__observe **out);
void px__observe_free(px__observe *obs);

/*
 * Makes the calling thread worker `id` of `rt` (its counters, its trace
 * track, its log id) until px__observe_worker_leave. An id beyond the
 * runtime's worker count shares the outside block.
 */
void px__observe_worker_enter(px_runtime *rt, int id);
void px__observe_worker_leave(void);

/*
 * The calling worker parked from `start` to `end` (px__now_ns): counts a
 * park, idle time and the busy time since its last park, and records the
 * trace's park (and, for a wait in the reactor, a reactor_wait span). Busy
 * time is measured between parks so that no clock is read per task.
 */
void px__observe_parked(px_runtime *rt, uint64_t start, uint64_t end,
                        bool reactor);

/* The block the calling thread counts into for `rt`. */
static inline px__counters *px__obs_block(px_runtime *rt) {
  if (px__likely(px__obs_tls.rt == rt)) return px__obs_tls.block;
  return &px__runtime_observe(rt)->outside;
}

static inline void px__obs_add(px__counters *b, uint64_t *c, uint64_t n) {
  if (px__likely(!b->shared))
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n,
                     __ATOMIC_RELAXED);
  else
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* Adds n to a counter of the calling thread's block in `rt`. */
#define PX__COUNT(rt, field, n)                           \
  do {                                                    \
    px__counters *px__b_ = px__obs_block(rt);             \
    px__obs_add(px__b_, &px__b_->field, (uint64_t)(n));   \
  } while (0)

/* Stores a gauge (the outside block's gauges are never read). */
#define PX__GAUGE(rt, field, v)                                          \
  do {                                                                   \
    px__counters *px__b_ = px__obs_block(rt);                            \
    if (!px__b_->shared)                                                 \
      __atomic_store_n(&px__b_->field, (uint64_t)(v), __ATOMIC_RELAXED); \
  } while (0)

/* ---- Trace events ------------------------------------------------------- */

typedef enum px__trace_kind {
  PX__TRACE_POLL,         /* a complete span: one task poll */
  PX__TRACE_BLOCK_ON,     /* a complete span: one poll of block_on's future */
  PX__TRACE_REACTOR_WAIT, /* a complete span: a blocking reactor poll */
  PX__TRACE_WAKE,         /* instant */
  PX__TRACE_STEAL,        /* instant */
  PX__TRACE_PARK          /* instant */
} px__trace_kind;

/* Records one event (only when obs->flags has PX__OBS_TRACE). */
void px__trace_emit(px__counters *b, px__trace_kind kind, const char *name,
                    uint64_t id, uint64_t start_ns, uint64_t dur_ns);

/* Writes a worker's buffered events (its owner, or anyone once it stopped). */
void px__trace_flush(px__counters *b);

/* Writes every buffered event and closes the file (px__observe_free). */
void px__trace_close(px__observe *obs);
int px__trace_open(px__observe *obs, const char *path);

/* An instant event at the calling thread's block, if tracing. */
static inline void px__trace_instant(px_runtime *rt, px__trace_kind kind,
                                     uint64_t id) {
  px__counters *b = px__obs_block(rt);
  if (px__unlikely(b->obs->flags & PX__OBS_TRACE))
    px__trace_emit(b, kind, NULL, id, px__now_ns(), 0);
}

/* ---- Per-poll hooks (task.c, executors) --------------------------------- */

/* What poll_begin measured, for poll_end. */
typedef struct px__poll_probe {
  px__counters *b;
  unsigned flags;
  /* px__clock_coarse_ns at the start (slow polls: a clock read of a few
   * nanoseconds, whose 1 to 4 ms resolution is plenty for a threshold of
   * 100 ms); poll_end turns it into the poll's duration. */
  uint64_t coarse0;
  uint64_t t0;      /* px__now_ns at the start (tracing) */
} px__poll_probe;

/*
 * Timing every poll for the slow-poll warning costs one clock read per poll,
 * not two: a worker polls tasks back to back, so the end of one poll is the
 * start of the next. `mark` carries that time from poll to poll; whatever
 * else takes time on a worker (parking, block_on's own future) clears it
 * with px__observe_mark_reset, and the next poll reads the clock itself.
 * Clock reads are what this costs: a few nanoseconds on bare metal, tens
 * under nested virtualisation.
 */
static inline void px__observe_poll_begin(px_runtime *rt, px__poll_probe *p) {
  px__counters *b = px__obs_block(rt);
  p->b = b;
  p->flags = b->obs->flags;
  if (p->flags & PX__OBS_SLOW) {
    uint64_t mark = b->shared ? 0 : b->mark;
    p->coarse0 = mark != 0 ? mark : px__clock_coarse_ns();
  }
  if (px__unlikely(p->flags & PX__OBS_TRACE)) p->t0 = px__now_ns();
}

/* The calling worker did something other than poll tasks (parked, polled
 * block_on's future): the next poll must read its own start time. */
static inline void px__observe_mark_reset(px_runtime *rt) {
  px__counters *b = px__obs_block(rt);
  if (!b->shared) b->mark = 0;
}

/* The rare part of poll_end: a slow poll, or tracing. */
void px__observe_poll_end_slow(px_task *t, const px_future *f,
                               px__poll_probe *p, bool slow);

/* After a task poll; `f` is the task's future (not yet dropped). */
static inline void px__observe_poll_end(px_task *t, const px_future *f,
                                        px__poll_probe *p) {
  px__counters *b = p->b;
  px__obs_add(b, &b->polls, 1);
  if (p->flags) {
    bool slow = false;
    if (p->flags & PX__OBS_SLOW) {
      uint64_t now = px__clock_coarse_ns();
      if (!b->shared) b->mark = now;
      slow = now - p->coarse0 >= b->obs->slow_poll_ns;
      p->coarse0 = now - p->coarse0; /* the poll's duration, for the report */
    }
    if (px__unlikely(slow) || px__unlikely(p->flags & PX__OBS_TRACE))
      px__observe_poll_end_slow(t, f, p, slow);
  }
}

/* After a poll of block_on's own future, begun with poll_begin (executors). */
void px__observe_block_on_end(const px_future *main, px__poll_probe *p);

#endif /* POLLUX_OBSERVE_OBSERVE_H */
