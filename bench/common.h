/*
 * bench/common.h - what every pollux benchmark shares: a counting
 * allocator, wall and CPU clocks, peak RSS, a countdown latch, the
 * rounds-of-tasks scaffolding of the spawn benchmarks, and the one result
 * line tools/bench parses:
 *
 *   name=spawn_many config="executor=fifo reactor=epoll timer=wheel" ops=N
 *   seconds=S ops_per_s=X cpu_s=C peak_rss_kb=K ops_per_cpu_s=Y
 *   bytes_per_op=B allocs_per_op=A [extra fields]
 *
 * The tokio peer (bench/peers/tokio) and the libuv peers print the same.
 */
#ifndef POLLUX_BENCH_COMMON_H
#define POLLUX_BENCH_COMMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "pollux.h"

/*
 * Routes every pollux allocation through a counter (thread-safe: a
 * multi-threaded executor allocates on its workers), so a benchmark can
 * report bytes and allocations per operation. Call before px_runtime_new.
 */
void bench_count_allocations(void);

/*
 * Creates the benchmark's runtime: the default configuration, except that
 * multi-threaded executors get 2 workers (PX_BENCH_WORKERS overrides), the
 * same as the tokio peer's multi_thread runtime, so the two compare on any
 * machine. Exits with a message on failure.
 */
px_runtime *bench_runtime_new(const char *name);

/* A snapshot of both clocks and the allocation counters. */
typedef struct bench_meter {
  struct timespec wall, cpu;
  size_t bytes, calls;
} bench_meter;

void bench_meter_start(bench_meter *m);

/*
 * Prints the result line for `ops` operations since bench_meter_start.
 * `extra` (may be NULL or "") is appended as more key=value fields.
 */
void bench_report(const bench_meter *m, const char *name, double ops,
                  const char *extra);

/* The peak resident set of this process (VmHWM), in KiB, or -1. */
long bench_peak_rss_kb(void);

/* Parses argv[1] as a count >= 1, or returns `fallback` when absent; exits
 * with a usage message when it is not a number. */
long bench_arg(int argc, char **argv, long fallback, const char *usage);

/* Exits with a message when a pollux call failed. */
void bench_check(int rc, const char *what);

/*
 * A countdown shared by many tasks, possibly on several worker threads: the
 * task that brings it to zero wakes the one future waiting for it. The
 * mutex is taken only by the waiter and by the last count_down, so it costs
 * nothing per task.
 */
typedef struct bench_latch {
  atomic_long remaining;
  pthread_mutex_t mu;
  px_waker waiter; /* guarded by mu */
} bench_latch;

void bench_latch_init(bench_latch *l, long count);
void bench_latch_reset(bench_latch *l, long count);
void bench_latch_count_down(bench_latch *l);
void bench_latch_destroy(bench_latch *l);

/* A future that completes once the latch reaches zero. */
typedef struct bench_latch_wait {
  px_future base;
  bench_latch *latch;
} bench_latch_wait;

px_future *bench_latch_wait_init(bench_latch_wait *w, bench_latch *l);

/*
 * Starts one round's tasks, with the latch already reset to the round's
 * count; the tasks count it down as they finish. Called from inside
 * block_on (spawn with px_spawn), or, with bench_rounds.outside, from the
 * thread that calls block_on, before it does (spawn with px_runtime_spawn
 * onto bench_rounds_runtime()). Returns 0, or the first negative PX_E*
 * code, which ends the benchmark.
 */
typedef int (*bench_round_start)(bench_latch *latch);

/* What bench_run_rounds runs; see there. */
typedef struct bench_rounds {
  const char *name;        /* the result line's name and the error prefix */
  long rounds;             /* measured rounds */
  long warmup_rounds;      /* unmeasured rounds first (0 for none) */
  long latch_count;        /* what each round's tasks count down from */
  bench_round_start start; /* spawns one round's tasks */
  double ops_per_round;    /* ops = rounds * ops_per_round */
  /* Spawn site: 0, from inside block_on's future (tokio's spawn_many,
   * chained_spawn); 1, from outside the runtime, then block_on the latch
   * (tokio's yield_many: rt.spawn on the benchmark's thread). */
  int outside;
} bench_rounds;

/* The runtime bench_run_rounds made (for px_runtime_spawn when outside). */
px_runtime *bench_rounds_runtime(void);

/*
 * The whole of a benchmark shaped like tokio's spawn_many, yield_many,
 * chained_spawn and ping_pong: a runtime, then a main future that, round
 * after round, resets a latch, starts the round's tasks and awaits the
 * latch (with `outside`: round after round, the benchmark's thread resets
 * the latch, starts the tasks, then blocks on the latch in block_on). The warm-up rounds run in a block_on of their own before the
 * meter starts, so only the measured rounds are timed and counted. Prints
 * the result line; exits with a message on failure.
 */
void bench_run_rounds(const bench_rounds *b);

#endif /* POLLUX_BENCH_COMMON_H */
