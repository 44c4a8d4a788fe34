/*
 * yield_many: tokio's benchmark of the same name. Each round spawns 200
 * tasks that each yield 1,000 times, from outside the runtime as tokio's
 * does (rt.spawn on the benchmark's thread, not from inside block_on),
 * then waits in block_on for all of them. Measures
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

/* One round: TASKS yielders at once, spawned from outside the runtime. */
static int start_round(bench_latch *latch) {
  for (int i = 0; i < TASKS; i++) {
    yielder y = PX_ASYNC_NEW(yielder, .latch = latch);
    int rc = px_runtime_spawn(bench_rounds_runtime(), PX_FUTURE(&y), NULL);
    if (rc < 0) return rc;
  }
  return 0;
}

int main(int argc, char **argv) {
  long rounds = bench_arg(argc, argv, 20, "yield_many [ROUNDS >= 1]");
  bench_run_rounds(&(bench_rounds){.name = "yield_many",
                                   .rounds = rounds,
                                   .latch_count = TASKS,
                                   .start = start_round,
                                   .ops_per_round = (double)TASKS * YIELDS,
                                   .outside = 1});
  return 0;
}
