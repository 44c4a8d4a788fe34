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

/* One round: TASKS_PER_ROUND tasks spawned from inside block_on. */
static int start_round(bench_latch *latch) {
  for (int i = 0; i < TASKS_PER_ROUND; i++) {
    work w = PX_ASYNC_NEW(work, .latch = latch);
    int rc = px_spawn(PX_FUTURE(&w), NULL);
    if (rc < 0) return rc;
  }
  return 0;
}

int main(int argc, char **argv) {
  long rounds = bench_arg(argc, argv, 300, "spawn_many [ROUNDS >= 1]");
  /* One warm-up round so the allocator's free lists are primed. */
  bench_run_rounds(&(bench_rounds){.name = "spawn_many",
                                   .rounds = rounds,
                                   .warmup_rounds = 1,
                                   .latch_count = TASKS_PER_ROUND,
                                   .start = start_round,
                                   .ops_per_round = TASKS_PER_ROUND});
  return 0;
}
