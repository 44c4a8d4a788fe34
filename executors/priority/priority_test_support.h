/*
 * Test futures for the priority executor's suite. The async macros are C,
 * so the futures live here; tests/support.c cannot be reused because it
 * links //:pollux, whose executor is whatever the flag selects, while this
 * suite always links the priority executor.
 *
 * Every future reports through pointers the test owns: a spawned future is
 * copied into its task, so fields of the test's copy never change.
 */
#ifndef POLLUX_EXECUTORS_PRIORITY_TEST_SUPPORT_H
#define POLLUX_EXECUTORS_PRIORITY_TEST_SUPPORT_H

#include <stdint.h>

#include "api/internal/px_internal.h"
#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- An allocator that counts live blocks and bytes -------------------- */
typedef struct prio_alloc_stats {
  px__atomic(long) live_bytes, live_blocks, total_allocs;
} prio_alloc_stats;
extern prio_alloc_stats prio_alloc;
void prio_allocator_install(void);
void prio_allocator_remove(void);

/*
 * ---- A log of polls, in order --------------------------------------------
 * ids[i] and levels[i]: which future wrote entry i and the priority of the
 * task it ran in. Written on the runtime thread only; `len` is atomic so the
 * test thread can read it afterwards without a race report.
 */
#define PRIO_LOG_MAX 256
typedef struct prio_log {
  int ids[PRIO_LOG_MAX];
  int levels[PRIO_LOG_MAX];
  px__atomic(int) len;
} prio_log;

/*
 * A countdown on the runtime thread: prio_done_signal decrements it and, at
 * zero, wakes whoever awaits prio_wait. Lets a test wait for many tasks
 * without holding their join handles and without spinning.
 */
typedef struct prio_done {
  px__atomic(int) remaining;
  px_waker waiter;
} prio_done;
void prio_done_signal(prio_done *d);

/* Completes when d->remaining reaches 0. */
typedef struct {
  px_future base;
  prio_done *done;
} prio_wait;
px_future *prio_wait_new(prio_wait *f, prio_done *done);

/* Logs (id, own priority) `steps` times, yielding between entries; then
 * signals `done` if not NULL. Output: id. */
typedef struct {
  px_async px;
  int id, steps, i;
  prio_log *log;
  prio_done *done;
} prio_logger;
px_future *prio_logger_new(prio_logger *f, int id, int steps, prio_log *log,
                           prio_done *done);

/* Spawns logger 1 with the inherited priority, then logger 2 at
 * `child_level`, joins both. Output: its own priority. */
typedef struct {
  px_async px;
  int child_level;
  prio_log *log;
  px_join_handle a, b;
} prio_family;
px_future *prio_family_new(prio_family *f, int child_level, prio_log *log);

/* Logs (depth, own priority), then spawns itself one level shallower with
 * the inherited priority and joins it, down to depth 0. Output: 0. */
typedef struct {
  px_async px;
  int depth;
  prio_log *log;
  px_join_handle child;
} prio_chain;
px_future *prio_chain_new(prio_chain *f, int depth, prio_log *log);

/*
 * ---- Always-ready tasks and the starvation watch ----------------------
 * A spinner counts its polls and yields until *stop is set. Every poll of
 * every spinner first advances the shared `clock`, so the clock numbers task
 * polls. A spinner with `watch` set also records the largest distance in
 * clock ticks between two of its polls (the first measured from clock 0),
 * and sets *stop after `rounds` polls.
 */
typedef struct prio_spin_stats {
  uint64_t polls;
  uint64_t last, max_gap;
} prio_spin_stats;
typedef struct {
  px_future base;
  uint64_t *clock;
  int *stop;
  prio_spin_stats *stats;
  int watch;
  uint64_t rounds;
} prio_spinner;
px_future *prio_spinner_new(prio_spinner *f, uint64_t *clock, int *stop,
                            prio_spin_stats *stats, int watch, uint64_t rounds);

/*
 * Spawns n detached tasks, task i at level i % PX_PRIORITY_LEVELS; each
 * counts itself in per_level[level], appends its level to `finish_order`
 * when it is the last of its level to finish, and signals `done`. Then
 * awaits `done`. Output: n. Runs as the main future of block_on.
 */
typedef struct {
  px_async px;
  int n, i;
  int *per_level;
  int *finish_order; /* PX_PRIORITY_LEVELS entries */
  int *finished_levels;
  prio_done *done;
  prio_wait wait;
} prio_spawn_many;
px_future *prio_spawn_many_new(prio_spawn_many *f, int n, int *per_level,
                               int *finish_order, int *finished_levels,
                               prio_done *done);

/* Sleeps `delay`, then returns `value`. */
typedef struct {
  px_async px;
  px_duration delay;
  int64_t value;
  px_sleep sleep;
} prio_sleeper;
px_future *prio_sleeper_new(prio_sleeper *f, px_duration delay, int64_t value);

#ifdef __cplusplus
}
#endif

#endif
