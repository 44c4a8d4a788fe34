/*
 * timer_arm_cancel on libuv: batches of 10,000 timers armed (uv_timer_start)
 * and then cancelled (uv_timer_stop), 1 s away with distinct deadlines, as
 * in bench/timer_arm_cancel.c.
 *
 *   timer_arm_cancel_uv [COUNT]
 */
#include "bench/peers/libuv/common.h"

enum { BATCH = 10000 };

static void on_timer(uv_timer_t *t) { (void)t; }
static void on_close(uv_handle_t *h) { (void)h; }

int main(int argc, char **argv) {
  long count = uvb_arg(argc, argv, 1000000, "timer_arm_cancel_uv [COUNT]");
  static uv_timer_t timers[BATCH];
  uv_loop_t *loop = uv_default_loop();
  for (int i = 0; i < BATCH; i++) uv_timer_init(loop, &timers[i]);
  uvb_meter m;
  uvb_start(&m);
  for (long done = 0; done < count;) {
    long batch = count - done < BATCH ? count - done : BATCH;
    /* libuv timeouts are whole milliseconds: 10 share each one here. */
    for (long i = 0; i < batch; i++)
      uv_timer_start(&timers[i], on_timer, (uint64_t)(1000 + i / 10), 0);
    for (long i = 0; i < batch; i++) uv_timer_stop(&timers[i]);
    done += batch;
  }
  char extra[64];
  snprintf(extra, sizeof extra, "sleep_bytes=%zu", sizeof(uv_timer_t));
  uvb_report(&m, "timer_arm_cancel", (double)count, 0.0, extra);
  for (int i = 0; i < BATCH; i++) uv_close((uv_handle_t *)&timers[i], on_close);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
