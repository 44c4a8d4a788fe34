/*
 * spawn_many_remote_idle: tokio's benchmark of the same name. Each round,
 * the main thread (outside the runtime, so a remote spawner) spawns 10,000
 * empty tasks with px_runtime_spawn and keeps their join handles, then
 * enters block_on to join them all. Measures the remote spawn path (the
 * inject queue and its wake-ups) plus join handles.
 *
 *   bazel run -c opt //bench:spawn_many_remote_idle [-- ROUNDS]
 */
#include <stdio.h>

#include "bench/common.h"

enum { TASKS_PER_ROUND = 10000 };

typedef struct {
  px_async px;
} empty_task;

PX_ASYNC_FN(empty_task) {
  PX_BEGIN();
  PX_END();
}

/* Awaits every join handle in order, as tokio's version does. */
typedef struct {
  px_async px;
  px_join_handle *handles;
  long i;
} join_all;

PX_ASYNC_FN(join_all) {
  PX_BEGIN();
  for (self->i = 0; self->i < TASKS_PER_ROUND; self->i++) {
    PX_TRY_AWAIT(&self->handles[self->i].base);
  }
  PX_END();
}

int main(int argc, char **argv) {
  long rounds = bench_arg(argc, argv, 100, "spawn_many_remote_idle [ROUNDS >= 1]");
  bench_count_allocations();
  px_runtime *rt = bench_runtime_new("spawn_many_remote_idle");
  static px_join_handle handles[TASKS_PER_ROUND];

  bench_meter meter;
  bench_meter_start(&meter);
  for (long r = 0; r < rounds; r++) {
    for (int i = 0; i < TASKS_PER_ROUND; i++) {
      empty_task t = PX_ASYNC_NEW(empty_task);
      bench_check(px_runtime_spawn(rt, PX_FUTURE(&t), &handles[i]),
                  "spawn_many_remote_idle: spawn");
    }
    join_all j = PX_ASYNC_NEW(join_all, .handles = handles);
    bench_check(px_runtime_block_on(rt, PX_FUTURE(&j)),
                "spawn_many_remote_idle: join");
  }
  bench_report(&meter, "spawn_many_remote_idle",
               (double)rounds * TASKS_PER_ROUND, NULL);
  px_runtime_free(rt);
  return 0;
}
