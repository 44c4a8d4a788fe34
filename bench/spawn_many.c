/*
 * spawn_many: tokio's spawn_many_local benchmark. Each round spawns 10,000
 * tasks from inside block_on; each task decrements a shared counter and the
 * last one wakes the waiting main future. Prints tasks per second and the
 * bytes allocated per task (through px_set_allocator).
 *
 *   bazel run -c opt //bench:spawn_many [-- ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pollux.h"

enum { TASKS_PER_ROUND = 10000 };

/* ---- Counting allocator: bytes and calls, single-threaded ---------------- */
static size_t alloc_bytes, alloc_calls;

static void *count_alloc(void *ctx, size_t size) {
  (void)ctx;
  alloc_bytes += size;
  alloc_calls++;
  return malloc(size);
}

static void count_free(void *ctx, void *ptr, size_t size) {
  (void)ctx;
  (void)size;
  free(ptr);
}

/* ---- The shared state of one round --------------------------------------- */
typedef struct round_state {
  int remaining;
  px_waker waiter;
} round_state;

/* The spawned task: decrement, and the last one wakes the waiter. */
typedef struct {
  px_async px;
  round_state *st;
} work;

PX_ASYNC_FN(work) {
  PX_BEGIN();
  if (--self->st->remaining == 0) px_waker_wake(&self->st->waiter);
  PX_END();
}

/* Waits until the round's counter reaches zero. */
typedef struct {
  px_future base;
  round_state *st;
} round_done;

static px_poll round_done_poll(px_future *f, px_context *cx) {
  round_done *r = (round_done *)f;
  if (r->st->remaining == 0) return PX_READY;
  px_waker_set(&r->st->waiter, cx->waker);
  return PX_PENDING;
}

static const px_future_vtable round_done_vtable = {
    sizeof(round_done), "round_done", round_done_poll, NULL};

/* The benchmark's main: `rounds` rounds of spawn + wait. */
typedef struct {
  px_async px;
  int rounds, r, i;
  round_state st;
  round_done wait;
} bench_main;

PX_ASYNC_FN(bench_main) {
  PX_BEGIN();
  for (self->r = 0; self->r < self->rounds; self->r++) {
    self->st.remaining = TASKS_PER_ROUND;
    for (self->i = 0; self->i < TASKS_PER_ROUND; self->i++) {
      work w = PX_ASYNC_NEW(work, .st = &self->st);
      PX_TRY(px_spawn(PX_FUTURE(&w), NULL));
    }
    px_future_init(&self->wait.base, &round_done_vtable);
    self->wait.st = &self->st;
    PX_AWAIT(&self->wait.base);
  }
  PX_END();
}

static double seconds(const struct timespec *a, const struct timespec *b) {
  return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 300;
  if (rounds < 1) {
    fprintf(stderr, "usage: spawn_many [ROUNDS >= 1]\n");
    return 2;
  }
  px_allocator a = {count_alloc, count_free, NULL};
  px_set_allocator(&a);

  px_runtime *rt;
  int rc = px_runtime_new(&rt, NULL);
  if (rc < 0) {
    fprintf(stderr, "spawn_many: %s\n", px_strerror(rc));
    return 1;
  }
  /* One warm-up round so the allocator's free lists are primed. */
  bench_main warm = PX_ASYNC_NEW(bench_main, .rounds = 1);
  px_runtime_block_on(rt, PX_FUTURE(&warm));

  size_t bytes0 = alloc_bytes, calls0 = alloc_calls;
  bench_main m = PX_ASYNC_NEW(bench_main, .rounds = rounds);
  struct timespec t0, t1, c0, c1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  rc = px_runtime_block_on(rt, PX_FUTURE(&m));
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (rc < 0) {
    fprintf(stderr, "spawn_many: %s\n", px_strerror(rc));
    return 1;
  }
  double tasks = (double)rounds * TASKS_PER_ROUND;
  double secs = seconds(&t0, &t1);
  printf("spawn_many %s tasks=%.0f seconds=%.3f tasks/s=%.0f cpu_s=%.3f "
         "bytes/task=%.1f allocs/task=%.2f\n",
         px_build_info(), tasks, secs, tasks / secs, seconds(&c0, &c1),
         (double)(alloc_bytes - bytes0) / tasks,
         (double)(alloc_calls - calls0) / tasks);
  px_runtime_free(rt);
  return 0;
}
