/*
 * yield_many: tokio's benchmark of the same name. Each round spawns 200
 * tasks that each yield 1,000 times, then waits for all of them. Measures
 * the cost of one wake-by-ref + reschedule + poll cycle, without spawning.
 *
 *   bazel run -c opt //bench:yield_many [-- ROUNDS]
 */
#include "bench/common.h"

enum { TASKS = 200, YIELDS = 1000 };

typedef struct {
  px_async px;
  bench_latch *latch;
  int i;
} yielder;

PX_ASYNC_FN(yielder) {
  PX_BEGIN();
  for (self->i = 0; self->i < YIELDS; self->i++) {
    PX_YIELD();
  }
  bench_latch_count_down(self->latch);
  PX_END();
}

typedef struct {
  px_async px;
  long rounds, r, i;
  bench_latch *latch;
  bench_latch_wait wait;
} bench_main;

PX_ASYNC_FN(bench_main) {
  PX_BEGIN();
  for (self->r = 0; self->r < self->rounds; self->r++) {
    bench_latch_reset(self->latch, TASKS);
    for (self->i = 0; self->i < TASKS; self->i++) {
      yielder y = PX_ASYNC_NEW(yielder, .latch = self->latch);
      PX_TRY(px_spawn(PX_FUTURE(&y), NULL));
    }
    PX_AWAIT(bench_latch_wait_init(&self->wait, self->latch));
  }
  PX_END();
}

int main(int argc, char **argv) {
  long rounds = bench_arg(argc, argv, 20, "yield_many [ROUNDS >= 1]");
  bench_count_allocations();
  px_runtime *rt = bench_runtime_new("yield_many");
  bench_latch latch;
  bench_latch_init(&latch, 0);
  bench_main m = PX_ASYNC_NEW(bench_main, .rounds = rounds, .latch = &latch);
  bench_meter meter;
  bench_meter_start(&meter);
  bench_check(px_runtime_block_on(rt, PX_FUTURE(&m)), "yield_many");
  bench_report(&meter, "yield_many", (double)rounds * TASKS * YIELDS, NULL);
  px_runtime_free(rt);
  bench_latch_destroy(&latch);
  return 0;
}
