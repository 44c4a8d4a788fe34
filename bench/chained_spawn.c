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

typedef struct {
  px_async px;
  long rounds, r;
  bench_latch *latch;
  bench_latch_wait wait;
} bench_main;

PX_ASYNC_FN(bench_main) {
  PX_BEGIN();
  for (self->r = 0; self->r < self->rounds; self->r++) {
    bench_latch_reset(self->latch, 1);
    chain_link first =
        PX_ASYNC_NEW(chain_link, .latch = self->latch, .depth = DEPTH - 1);
    PX_TRY(px_spawn(PX_FUTURE(&first), NULL));
    PX_AWAIT(bench_latch_wait_init(&self->wait, self->latch));
  }
  PX_END();
}

int main(int argc, char **argv) {
  long rounds = bench_arg(argc, argv, 2000, "chained_spawn [ROUNDS >= 1]");
  bench_count_allocations();
  px_runtime *rt = bench_runtime_new("chained_spawn");
  bench_latch latch;
  bench_latch_init(&latch, 0);
  bench_main m = PX_ASYNC_NEW(bench_main, .rounds = rounds, .latch = &latch);
  bench_meter meter;
  bench_meter_start(&meter);
  bench_check(px_runtime_block_on(rt, PX_FUTURE(&m)), "chained_spawn");
  bench_report(&meter, "chained_spawn", (double)rounds * DEPTH, NULL);
  px_runtime_free(rt);
  bench_latch_destroy(&latch);
  return 0;
}
