/*
 * million_timers: libuv's benchmark-million-timers, in pollux's idiom.
 * 1,000,000 sleeps with distinct deadlines (1 us apart, starting 1 ms from
 * now, so they fire over about one second), each awaited by its own task,
 * as tokio code would write it. Measures arming and firing them all (the
 * wall time includes the one second the deadlines span: compare cpu_s), the
 * bytes per armed timer (task included) and the peak RSS.
 *
 *   bazel run -c opt //bench:million_timers [-- COUNT]
 */
#include <stdio.h>

#include "bench/common.h"

/* The sleep is initialised with its deadline before the spawn (px_spawn
 * copies the frame; nothing is registered before the first poll), so the
 * frame holds the deadline once, in the sleep: what tokio's async block
 * does when it moves `deadline` into its Sleep. The tasks count down one
 * global latch, as libuv's program counts its fired timers in a global
 * (and the tokio peer's tasks share a leaked &'static latch): a sleeping
 * task carries no field of the program's own, only the runtime's. */
static bench_latch latch;

typedef struct {
  px_async px;
  px_sleep sleep;
} sleeper;

PX_ASYNC_FN(sleeper) {
  PX_BEGIN();
  PX_TRY_AWAIT(&self->sleep.base);
  bench_latch_count_down(&latch);
  PX_END();
}

typedef struct {
  px_async px;
  long count, i;
  px_instant base;
  bench_latch_wait wait;
} bench_main;

PX_ASYNC_FN(bench_main) {
  PX_BEGIN();
  self->base = px_now() + px_ms(1);
  for (self->i = 0; self->i < self->count; self->i++) {
    sleeper s = PX_ASYNC_NEW(sleeper);
    px_sleep_until_init(&s.sleep, self->base + px_us((uint64_t)self->i));
    PX_TRY(px_spawn(PX_FUTURE(&s), NULL));
  }
  PX_AWAIT(bench_latch_wait_init(&self->wait, &latch));
  PX_END();
}

int main(int argc, char **argv) {
  long count = bench_arg(argc, argv, 1000000, "million_timers [COUNT >= 1]");
  bench_count_allocations();
  px_runtime *rt = bench_runtime_new("million_timers");
  bench_latch_init(&latch, count);
  bench_main m = PX_ASYNC_NEW(bench_main, .count = count);
  bench_meter meter;
  bench_meter_start(&meter);
  bench_check(px_runtime_block_on(rt, PX_FUTURE(&m)), "million_timers");
  /* What a sleeping task is made of, for the report's bytes-per-sleeping-
   * task table: the task's frame and, inside it, the sleep, its timer
   * entry and the entry's node. bytes_per_op (counted by the allocator)
   * minus the frame is the task header and what the timer allocated. */
  char extra[256];
  snprintf(extra, sizeof extra,
           "task_future_bytes=%zu async_header_bytes=%zu sleep_bytes=%zu "
           "future_header_bytes=%zu timer_entry_bytes=%zu "
           "timer_node_bytes=%zu",
           sizeof(sleeper), sizeof(px_async), sizeof(px_sleep),
           sizeof(px_future), sizeof(px_timer_entry), sizeof(px_timer_node));
  bench_report(&meter, "million_timers", (double)count, extra);
  px_runtime_free(rt);
  bench_latch_destroy(&latch);
  return 0;
}
