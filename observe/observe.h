/*
 * Observability internals: log sites, per-worker counters and trace events
 * (internal, C only). docs/OBSERVABILITY.md describes what users see.
 *
 * A leaf over api/ and platform/: the runtime and its executors push into
 * an observer (px__observe) they hold; nothing here knows a runtime or a
 * task, only the numbers and names they hand over.
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
#include "platform/platform.h"
#include "pollux/future.h"
#include "pollux/observe.h"

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
 * The function that names the task running on the calling thread (0: none)
 * for the t= field of log lines; px_runtime_new installs px_task_current_id.
 * Until then lines show "t=-".
 */
void px__log_set_task_source(uint64_t (*current_task_id)(void));

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
  alignas(PX__CACHE_LINE) uint64_t spawned;
  uint64_t completed;
  uint64_t polls;
  uint64_t block_on_polls;
  uint64_t wakes_local, wakes_remote;
  uint64_t steals, parks, lifo_hits;
  uint64_t busy_ns, idle_ns;
  uint64_t local_depth; /* a gauge: stored, not added */
  uint64_t reactor_polls, reactor_events;
  uint64_t timers_armed, timers_fired, timers_cancelled;
  /* A worker's task polls, twice: the owner adds one as a poll begins and
   * one as it ends, so the count is odd while a poll runs and polls is
   * epoch / 2 (the outside block counts in `polls` instead). The slow-poll
   * watchdog (watchdog.c) reads it to see a poll that runs long. */
  uint64_t epoch;
  /* Written by the watchdog: the epoch of a poll it saw run slow_poll_ms or
   * longer (0: none), stored after slow_since, the px__now_ns it first saw
   * that poll running. The owner compares as the poll ends. */
  uint64_t slow_epoch, slow_since;
  /* The watchdog's own: the epoch at its last look, and since when. */
  uint64_t wd_epoch, wd_since;
  /* Nonzero while the owner waits for work (parks): written by the owner
   * around each park when the warning is on, read by the watchdog, which
   * sleeps without a timeout while every watched worker waits. */
  int waiting;
  /* Owner only: when the worker last stopped parking (busy time). */
  uint64_t busy_since;
  struct px__observe *obs;
  struct px__trace_ring *ring; /* trace events not yet written (owner only) */
  int worker;                  /* its id, -1 for the outside block */
  /* obs->flags, plus PX__OBS_SHARED in the outside block: what the per-poll
   * and per-wake hooks test, in one load of the line they write anyway. */
  unsigned flags;
} px__counters;

/* Flags in px__observe.flags and px__counters.flags: what the per-poll
 * hooks must do. */
#define PX__OBS_SLOW 1u   /* time polls for the slow-poll warning */
#define PX__OBS_TRACE 2u  /* record trace events */
#define PX__OBS_SHARED 4u /* px__counters.flags only: the outside block */
/* The hooks' common case is a worker's block without tracing; anything
 * else takes their rare path. */
#define PX__OBS_RARE (PX__OBS_TRACE | PX__OBS_SHARED)

/* Whether b is the outside block, which any thread updates (atomically). */
static inline bool px__obs_shared(const px__counters *b) {
  return (b->flags & PX__OBS_SHARED) != 0;
}

typedef struct px__observe {
  unsigned flags;
  uint64_t slow_poll_ns;
  struct px__observe *wd_next; /* the watchdog's list (watchdog.c) */
  uint64_t start_ns;               /* trace time 0 */
  struct px__trace *trace;         /* NULL when PX_TRACE is unset */
  uint32_t nworkers;               /* blocks in `workers` */
  int max_worker;                  /* highest id entered (atomic) */
  /* A gauge (atomic), stored on every injection push and pop: on a line of
   * its own, or that traffic would keep invalidating the line of `flags`,
   * which every worker reads on every poll (bench/scaling.md). */
  alignas(PX__CACHE_LINE) uint64_t injection_depth;
  px__counters outside;
  px__counters *workers;
} px__observe;

/* What the calling thread is, for the observer of the runtime it runs. */
typedef struct px__observe_tls {
  px__observe *obs;     /* the observer this thread is a worker of */
  px__counters *block;  /* its block in that observer */
} px__observe_tls;
/*
 * initial-exec: pollux is linked into the program, never dlopen'ed, so the
 * variable sits at a fixed offset from the thread pointer and reading it is
 * one load. The default model for -fPIC code calls __tls_get_addr on every
 * access, which costs more than the counting itself.
 */
extern _Thread_local px__observe_tls px__obs_tls
    __attribute__((tls_model("initial-exec")));

/*
 * Sums every block into `out` (all of it but the blocking pool's gauges,
 * which the runtime adds: px_runtime_metrics is in executors/runtime.c).
 */
void px__observe_metrics(const px__observe *obs, px_metrics *out);

/*
 * Creates and frees a runtime's observer (px_runtime_new / _free): one
 * counter block for each of `workers` workers, the slow-poll warning when
 * slow_poll_ms > 0, the trace file when PX_TRACE names one.
 */
int px__observe_new(uint32_t workers, uint32_t slow_poll_ms,
                    px__observe **out);
void px__observe_free(px__observe *obs);

/*
 * Makes the calling thread worker `id` of `obs` (its counters, its trace
 * track, its log id) until px__observe_worker_leave. An id beyond the
 * observer's worker count shares the outside block.
 */
void px__observe_worker_enter(px__observe *obs, int id);
void px__observe_worker_leave(void);

/*
 * The calling worker is about to park (a wait for work that can block),
 * then parked from `start` to `end` (px__now_ns). px__observe_parked counts
 * a park, idle time and the busy time since its last park, and records the
 * trace's park (and, for a wait in the reactor, a reactor_wait span). Busy
 * time is measured between parks so that no clock is read per task.
 *
 * The pair also marks the worker's block as waiting, which lets the
 * slow-poll watchdog sleep without a timeout while every watched worker
 * waits; px__observe_parked is the ordered half of that handshake
 * (watchdog.c), paid per park, never per poll (nothing for the outside
 * block or without the warning).
 */
void px__observe_parking(px__observe *obs);
void px__observe_parked(px__observe *obs, uint64_t start, uint64_t end,
                        bool reactor);

/*
 * The runtime's park waited in the reactor from `start` (px__now_ns) until
 * now and handled `events` (negative: an error). `could_block`: it was a
 * park, not a look with timeout 0; only a park counts as one and as idle
 * time. Either way the next poll times itself.
 */
void px__observe_reactor_wait(px__observe *obs, uint64_t start, int events,
                              bool could_block);

/* The block the calling thread counts into for `obs`. */
static inline px__counters *px__obs_block(px__observe *obs) {
  if (px__likely(px__obs_tls.obs == obs)) return px__obs_tls.block;
  return &obs->outside;
}

/* Adds n to a counter of a block the calling thread owns (a worker's). */
static inline void px__obs_add_owned(uint64_t *c, uint64_t n) {
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n,
                   __ATOMIC_RELAXED);
}

static inline void px__obs_add(px__counters *b, uint64_t *c, uint64_t n) {
  if (px__likely(!px__obs_shared(b)))
    px__obs_add_owned(c, n);
  else
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* Adds n to a counter of the calling thread's block in `obs`. */
#define PX__COUNT(obs, field, n)                          \
  do {                                                    \
    px__counters *px__b_ = px__obs_block(obs);            \
    px__obs_add(px__b_, &px__b_->field, (uint64_t)(n));   \
  } while (0)

/* Stores a gauge (the outside block's gauges are never read). */
#define PX__GAUGE(obs, field, v)                                         \
  do {                                                                   \
    px__counters *px__b_ = px__obs_block(obs);                           \
    if (!px__obs_shared(px__b_))                                         \
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
static inline void px__trace_instant(px__observe *obs, px__trace_kind kind,
                                     uint64_t id) {
  px__counters *b = px__obs_block(obs);
  if (px__unlikely(b->flags & PX__OBS_TRACE))
    px__trace_emit(b, kind, NULL, id, px__now_ns(), 0);
}

/* The executors' queue of tasks woken from outside holds `depth` tasks. */
static inline void px__observe_injection_depth(px__observe *obs,
                                               uint64_t depth) {
  __atomic_store_n(&obs->injection_depth, depth, __ATOMIC_RELAXED);
}

/*
 * Task `id` was woken (it became NOTIFIED): a local wake when the waking
 * thread is one of the runtime's workers, remote otherwise, and a trace
 * instant when tracing.
 */
void px__observe_wake_rare(px__counters *b, uint64_t id);
static inline void px__observe_wake(px__observe *obs, uint64_t id) {
  px__counters *b = px__obs_block(obs);
  if (px__likely(!(b->flags & PX__OBS_RARE)))
    px__obs_add_owned(&b->wakes_local, 1);
  else
    px__observe_wake_rare(b, id);
}

/* ---- Per-poll hooks (executors/task.c, the executors) ------------------- */

/*
 * The slow-poll watchdog (watchdog.c): one thread per process that looks at
 * the epochs of the workers of every runtime with slow_poll_ms > 0, so that
 * no poll reads a clock. px__observe_new and _free add and remove a runtime.
 */
int px__watchdog_watch(px__observe *obs);
void px__watchdog_unwatch(px__observe *obs);
/* Nonzero while the watchdog sleeps until a poll wakes it: it saw no worker
 * poll for two looks. Written only as it falls asleep or wakes; every poll
 * of a watched runtime reads it. */
extern int px__watchdog_asleep;
extern uint64_t px__watchdog_looks; /* its looks so far (tests) */
void px__watchdog_wake(void);

/* Steps a worker's epoch (owner only: a plain increment, atomic for the
 * watchdog's reads) and returns its value before the step. */
static inline uint64_t px__obs_epoch_step(px__counters *b) {
  uint64_t e = __atomic_load_n(&b->epoch, __ATOMIC_RELAXED);
  __atomic_store_n(&b->epoch, e + 1, __ATOMIC_RELAXED);
  return e;
}

/* What poll_begin measured, for poll_end. */
typedef struct px__poll_probe {
  px__counters *b;
  unsigned flags;
  /* The outside block only (a thread that is not a worker, which the
   * watchdog does not watch): px__clock_coarse_ns at the start, then the
   * poll's duration. */
  uint64_t coarse0;
  uint64_t t0; /* px__now_ns at the start (tracing) */
  bool slow;   /* poll_end: the poll took slow_poll_ms or more */
} px__poll_probe;

/*
 * Before a task poll. A worker marks the poll begun in its epoch (odd) and
 * reads no clock: the watchdog times polls from outside. The outside block,
 * shared by threads that are not workers, times its polls with two coarse
 * clock reads instead.
 */
/* A worker's part of a poll's begin and end, traced or not: the epoch
 * step, waking a sleeping watchdog, and the watchdog's mark at the end. */
static inline void px__obs_worker_begin(px__counters *b, unsigned flags) {
  px__obs_epoch_step(b);
  if (px__unlikely(__atomic_load_n(&px__watchdog_asleep, __ATOMIC_RELAXED)) &&
      (flags & PX__OBS_SLOW))
    px__watchdog_wake();
}
static inline bool px__obs_worker_end(px__counters *b) {
  uint64_t e = px__obs_epoch_step(b);
  /* The watchdog marks a poll's (odd) epoch; 0 and even epochs never match
   * an odd one. */
  return __atomic_load_n(&b->slow_epoch, __ATOMIC_RELAXED) == e;
}

void px__observe_poll_begin_rare(px__poll_probe *p);
static inline void px__observe_poll_begin(px__observe *obs,
                                          px__poll_probe *p) {
  px__counters *b = px__obs_block(obs);
  unsigned flags = b->flags;
  p->b = b;
  p->flags = flags;
  if (px__unlikely(flags & PX__OBS_RARE))
    px__observe_poll_begin_rare(p);
  else
    px__obs_worker_begin(b, flags);
}

/*
 * After a task poll: counts it and tells whether it was slow. Returns true
 * when the rare part must follow (a slow poll, or tracing): the caller then
 * calls px__observe_poll_report with the task's id and future, which it
 * looks up only then.
 */
bool px__observe_poll_end_rare(px__poll_probe *p);
static inline bool px__observe_poll_end(px__poll_probe *p) {
  if (px__unlikely(p->flags & PX__OBS_RARE))
    return px__observe_poll_end_rare(p);
  p->slow = px__obs_worker_end(p->b);
  return px__unlikely(p->slow);
}

/* Before a poll of block_on's own future (the executors), which is not a
 * task poll: only tracing times it. */
static inline void px__observe_block_on_begin(px__observe *obs,
                                              px__poll_probe *p) {
  p->b = px__obs_block(obs);
  p->flags = p->b->flags;
  if (px__unlikely(p->flags & PX__OBS_TRACE)) p->t0 = px__now_ns();
}

/*
 * The rare part of a task poll's end: the trace's poll span of task
 * `task_id` (future `f`, not yet dropped) and the slow-poll warning.
 * `warned`: the warning was already given for this task (the caller keeps
 * that per task). Returns true when this call gave it, so that a task warns
 * once however many of its polls are slow.
 */
bool px__observe_poll_report(px__poll_probe *p, uint64_t task_id,
                             const px_future *f, bool warned);

/* After a poll of block_on's own future, begun with block_on_begin. */
void px__observe_block_on_end(const px_future *main, px__poll_probe *p);

#endif /* POLLUX_OBSERVE_OBSERVE_H */
