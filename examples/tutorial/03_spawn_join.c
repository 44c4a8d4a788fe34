/*
 * Tutorial step 3: spawn tasks, sleep, and join them.
 *
 * Three tasks sleep for different times concurrently and say when they
 * finish; main waits for all three with px_join3 (tokio's join!), then
 * reads what each returned, in spawn order.
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
  printf("task %d finished\n", self->id);
  PX_RETURN(px_i64(self->id * 10));
  PX_END();
}

typedef struct {
  px_async px;
  px_join_handle h[3];
  px_join join;
} async_main;

PX_ASYNC_FN(async_main) {
  PX_BEGIN();
  for (int i = 0; i < 3; i++) {
    /* Worker i sleeps (3 - i) * 100 ms, so they finish in reverse order
     * (gaps wide enough that a loaded machine does not reorder them). */
    worker w = PX_ASYNC_NEW(worker, .id = i, .nap = px_ms(100 * (3 - i)));
    PX_TRY(px_spawn(PX_FUTURE(&w), &self->h[i]));
  }
  PX_AWAIT(px_join3_init(&self->join, &self->h[0].base, &self->h[1].base,
                         &self->h[2].base));
  for (int i = 0; i < 3; i++)
    printf("task %d returned %lld\n", i, (long long)self->h[i].base.output.i64);
  PX_END();
}

int main(void) {
  async_main m = PX_ASYNC_NEW(async_main);
  return px_run(PX_FUTURE(&m)) < 0;
}
