/*
 * chained_spawn: tokio's benchmark of the same name. Each round starts a
 * chain of 1,000 tasks in which every task spawns the next one and ends;
 * the last one wakes the main future. Measures spawn + first poll + free
 * with exactly one task alive at a time (the allocator's best case).
 *
 *   bazel run -c opt //bench:chained_spawn [-- ROUNDS]
 */
#include "bench/common.h"

enum { DEPTH = 1000 };

typedef struct chain_link {
  px_async px;
  bench_latch *latch;
  int depth;
} chain_link;

PX_ASYNC_FN(chain_link) {
  PX_BEGIN();
  if (self->depth == 0) {
    bench_latch_count_down(self->latch);
  } else {
    chain_link next = PX_ASYNC_NEW(chain_link, .latch = self->latch,
                             .depth = self->depth - 1);
    PX_TRY(px_spawn(PX_FUTURE(&next), NULL));
  }
  PX_END();
}

/* One round: the first link of a chain DEPTH tasks long; only its last
 * link counts the latch down. */
static int start_round(bench_latch *latch) {
  chain_link first =
      PX_ASYNC_NEW(chain_link, .latch = latch, .depth = DEPTH - 1);
  return px_spawn(PX_FUTURE(&first), NULL);
}

int main(int argc, char **argv) {
  long rounds = bench_arg(argc, argv, 2000, "chained_spawn [ROUNDS >= 1]");
  bench_run_rounds(&(bench_rounds){.name = "chained_spawn",
                                   .rounds = rounds,
                                   .latch_count = 1,
                                   .start = start_round,
                                   .ops_per_round = DEPTH});
  return 0;
}
