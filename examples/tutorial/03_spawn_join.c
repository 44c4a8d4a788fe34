/*
 * Tutorial step 3: spawn tasks, sleep, and join them.
 *
 * Three tasks sleep for different times concurrently; main joins them in
 * spawn order (px_join keeps argument order) and also learns the order in
 * which they finished.
 */
#include <stdio.h>

#include "pollux.h"

typedef struct {
  px_async px;
  int id;
  px_duration nap;
  px_sleep sleep;
} worker;

PX_ASYNC_FN(worker) {
  PX_BEGIN();
  PX_AWAIT(px_sleep_init(&self->sleep, self->nap));
  PX_RETURN(px_i64(self->id * 10));
  PX_END();
}

typedef struct {
  px_async px;
  px_join_handle handles[3];
  px_future *futures[3];
  size_t order[3];
  px_join join;
} async_main;

PX_ASYNC_FN(async_main) {
  PX_BEGIN();
  for (int i = 0; i < 3; i++) {
    /* Worker i sleeps (3 - i) * 100 ms, so they finish in reverse order
     * (gaps wide enough that a loaded machine does not reorder them). */
    worker w = PX_ASYNC_NEW(worker, .id = i, .nap = px_ms(100 * (3 - i)));
    PX_TRY(px_spawn(PX_FUTURE(&w), &self->handles[i]));
    self->futures[i] = &self->handles[i].base;
  }
  PX_AWAIT(px_join_init(&self->join, self->futures, 3, self->order));
  for (int i = 0; i < 3; i++)
    printf("task %d returned %lld\n", i,
           (long long)self->handles[i].base.output.i64);
  printf("finished in order: %zu %zu %zu\n", self->order[0], self->order[1],
         self->order[2]);
  PX_END();
}

int main(void) {
  async_main m = PX_ASYNC_NEW(async_main);
  return px_run(PX_FUTURE(&m)) < 0;
}
