/*
 * timer_arm_cancel: arms and cancels sleeps, the life of most timeouts
 * (set, then the operation wins and the timer is dropped). In batches of
 * 10,000 so the timer holds a realistic population: arm all of a batch
 * (first poll registers the sleep), then cancel them all (drop). No tasks:
 * a hand-written future does it in one poll, so only the timer is measured.
 *
 *   bazel run -c opt //bench:timer_arm_cancel [-- COUNT]
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench/common.h"

enum { BATCH = 10000 };

typedef struct {
  px_future base;
  long count;
  px_sleep *slots; /* BATCH of them */
  int failed;
} arm_cancel;

static px_poll arm_cancel_poll(px_future *f, px_context *cx) {
  arm_cancel *a = (arm_cancel *)f;
  for (long done = 0; done < a->count;) {
    long batch = a->count - done < BATCH ? a->count - done : BATCH;
    /* Read the clock per batch: on a loaded machine the whole run may take
     * more than a second, and a deadline already past is not pending. */
    px_instant base = px_now() + px_secs(1);
    for (long i = 0; i < batch; i++) {
      px_sleep_until_init(&a->slots[i], base + px_us((uint64_t)i));
      /* A sleep a second away must be pending; anything else is a bug. */
      if (px_future_poll(&a->slots[i].base, cx) != PX_PENDING) a->failed = 1;
    }
    for (long i = 0; i < batch; i++) px_future_drop(&a->slots[i].base);
    done += batch;
  }
  return PX_READY;
}

static const px_future_vtable arm_cancel_vtable = {
    sizeof(arm_cancel), "arm_cancel", arm_cancel_poll, NULL};

int main(int argc, char **argv) {
  long count = bench_arg(argc, argv, 1000000, "timer_arm_cancel [COUNT >= 1]");
  bench_count_allocations();
  px_runtime *rt = bench_runtime_new("timer_arm_cancel");
  arm_cancel a;
  px_future_init(&a.base, &arm_cancel_vtable);
  a.count = count;
  a.failed = 0;
  a.slots = malloc(sizeof(px_sleep) * BATCH);
  if (!a.slots) return 1;
  bench_meter meter;
  bench_meter_start(&meter);
  bench_check(px_runtime_block_on(rt, &a.base), "timer_arm_cancel");
  if (a.failed) {
    fprintf(stderr, "timer_arm_cancel: a sleep was not pending\n");
    return 1;
  }
  char extra[64];
  snprintf(extra, sizeof extra, "sleep_bytes=%zu", sizeof(px_sleep));
  bench_report(&meter, "timer_arm_cancel", (double)count, extra);
  free(a.slots);
  px_runtime_free(rt);
  return 0;
}
