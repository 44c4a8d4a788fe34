/*
 * spawn_many: tokio's spawn_many_local benchmark. Each round spawns 10,000
 * tasks from inside block_on; each task counts down a shared latch and the
 * last one wakes the waiting main future. Reports tasks per second and the
 * bytes allocated per task (through px_set_allocator).
 *
 *   bazel run -c opt //bench:spawn_many [-- ROUNDS]
 */
#include "bench/common.h"

enum { TASKS_PER_ROUND = 10000 };

/* The spawned task: one count down, nothing else. */
typedef struct {
  px_async px;
  bench_latch *latch;
} work;

PX_ASYNC_FN(work) {
  PX_BEGIN();
  bench_latch_count_down(self->latch);
  PX_END();
}

/* The benchmark's main: `rounds` rounds of spawn + wait. */
typedef struct {
  px_async px;
  long rounds, r, i;
  bench_latch *latch;
  bench_latch_wait wait;
} bench_main;

PX_ASYNC_FN(bench_main) {
  PX_BEGIN();
  for (self->r = 0; self->r < self->rounds; self->r++) {
    bench_latch_reset(self->latch, TASKS_PER_ROUND);
    for (self->i = 0; self->i < TASKS_PER_ROUND; self->i++) {
      work w = PX_ASYNC_NEW(work, .latch = self->latch);
      PX_TRY(px_spawn(PX_FUTURE(&w), NULL));
    }
    PX_AWAIT(bench_latch_wait_init(&self->wait, self->latch));
  }
  PX_END();
}

int main(int argc, char **argv) {
  long rounds = bench_arg(argc, argv, 300, "spawn_many [ROUNDS >= 1]");
  bench_count_allocations();
  px_runtime *rt = bench_runtime_new("spawn_many");
  bench_latch latch;
  bench_latch_init(&latch, 0);

  /* One warm-up round so the allocator's free lists are primed. */
  bench_main warm = PX_ASYNC_NEW(bench_main, .rounds = 1, .latch = &latch);
  bench_check(px_runtime_block_on(rt, PX_FUTURE(&warm)), "spawn_many");

  bench_main m = PX_ASYNC_NEW(bench_main, .rounds = rounds, .latch = &latch);
  bench_meter meter;
  bench_meter_start(&meter);
  bench_check(px_runtime_block_on(rt, PX_FUTURE(&m)), "spawn_many");
  bench_report(&meter, "spawn_many", (double)rounds * TASKS_PER_ROUND, NULL);
  px_runtime_free(rt);
  bench_latch_destroy(&latch);
  return 0;
}
