/*
 * million_timers on libuv: libuv's own benchmark-million-timers, with the
 * deadlines of the pollux version (1 us apart from 1 ms on; libuv timers
 * have millisecond resolution, so 1,000 share each millisecond). libuv
 * needs no task per timer: the caller's uv_timer_t is the whole cost.
 *
 *   million_timers_uv [COUNT]
 */
#include "bench/peers/libuv/common.h"

static long fired;

static void on_timer(uv_timer_t *t) {
  (void)t;
  fired++;
}

static void on_close(uv_handle_t *h) { (void)h; }

int main(int argc, char **argv) {
  long count = uvb_arg(argc, argv, 1000000, "million_timers_uv [COUNT]");
  uv_timer_t *timers = malloc(sizeof(uv_timer_t) * (size_t)count);
  if (!timers) return 1;
  uv_loop_t *loop = uv_default_loop();
  uvb_meter m;
  uvb_start(&m);
  for (long i = 0; i < count; i++) {
    uv_timer_init(loop, &timers[i]);
    uv_timer_start(&timers[i], on_timer, (uint64_t)(1 + i / 1000), 0);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  if (fired != count) {
    fprintf(stderr, "million_timers_uv: %ld of %ld fired\n", fired, count);
    return 1;
  }
  char extra[64];
  snprintf(extra, sizeof extra, "task_future_bytes=%zu", sizeof(uv_timer_t));
  uvb_report(&m, "million_timers", (double)count, (double)sizeof(uv_timer_t),
             extra);
  for (long i = 0; i < count; i++) uv_close((uv_handle_t *)&timers[i], on_close);
  uv_run(loop, UV_RUN_DEFAULT);
  free(timers);
  return 0;
}
