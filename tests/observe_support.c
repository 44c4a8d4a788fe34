/*
 * Async test futures for observe_test.cc.
 */
#include "tests/observe_support.h"

#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "observe/observe.h"

void obs_log_parse(const char *value) { px__log_parse(value); }
void obs_env_reset(void) { px__observe_env_reset(); }
int obs_watchdog_asleep(void) {
  return __atomic_load_n(&px__watchdog_asleep, __ATOMIC_RELAXED);
}

uint64_t obs_watchdog_looks(void) {
  return __atomic_load_n(&px__watchdog_looks, __ATOMIC_RELAXED);
}
int obs_run_idle(px_runtime *rt, int ms) {
  px_sleep s;
  return px_runtime_block_on(rt, px_sleep_init(&s, px_ms(ms)));
}

/* ---- N tasks that yield K times ------------------------------------------ */

typedef struct {
  px_async px;
  int k, i;
} obs_yielder;

PX_ASYNC_FN(obs_yielder) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->k; self->i++) {
    PX_YIELD();
  }
  PX_END();
}

enum { MAX_TASKS = 256 };

typedef struct {
  px_async px;
  int n, k, i;
  px_join_handle jh[MAX_TASKS];
} obs_spawner;

static void spawner_cleanup(px_future *f) {
  obs_spawner *self = (obs_spawner *)f;
  px_async_drop(f);
  for (int i = 0; i < self->n; i++) px_future_drop(&self->jh[i].base);
}

PX_ASYNC_FN_WITH_DROP(obs_spawner, spawner_cleanup) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->n; self->i++) {
    obs_yielder y = PX_ASYNC_NEW(obs_yielder, .k = self->k);
    PX_TRY(px_spawn(PX_FUTURE(&y), &self->jh[self->i]));
  }
  for (self->i = 0; self->i < self->n; self->i++) {
    PX_TRY_AWAIT(&self->jh[self->i].base);
  }
  PX_END();
}

int obs_run_yielders(px_runtime *rt, int n, int k) {
  if (n > MAX_TASKS) return PX_EINVAL;
  obs_spawner m = PX_ASYNC_NEW(obs_spawner, .n = n, .k = k);
  return px_runtime_block_on(rt, PX_FUTURE(&m));
}

/* ---- Timers --------------------------------------------------------------- */

typedef struct {
  px_async px;
  px_sleep first, fast, slow;
  px_future *both[2];
  px_select sel;
} obs_timers;

PX_ASYNC_FN(obs_timers) {
  PX_BEGIN();
  PX_AWAIT(px_sleep_init(&self->first, px_ms(20)));
  /* The long one first, so the select polls (arms) it before the short one
   * can complete; 20 ms leaves room for slow runs (valgrind). */
  self->both[0] = px_sleep_init(&self->slow, px_secs(10));
  self->both[1] = px_sleep_init(&self->fast, px_ms(20));
  PX_AWAIT(px_select_init(&self->sel, self->both, 2));
  PX_END();
}

int obs_run_timers(px_runtime *rt) {
  obs_timers m = PX_ASYNC_NEW(obs_timers);
  return px_runtime_block_on(rt, PX_FUTURE(&m));
}

/* ---- A socket round trip --------------------------------------------------- */

typedef struct {
  px_async px;
  px_stream *s;
  char buf[16];
  px_tcp_io io;
} obs_echo;

PX_ASYNC_FN(obs_echo) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_tcp_read_init(&self->io, self->s, self->buf, sizeof self->buf));
  PX_TRY_AWAIT(px_tcp_write_all_init(&self->io, self->s, self->buf,
                                     self->io.base.output.u64));
  PX_END();
}

typedef struct {
  px_async px;
  px_stream *a, *b;
  char buf[16];
  px_tcp_io io;
  px_sleep pause;
  px_join_handle jh;
} obs_round_trip;

static void round_trip_cleanup(px_future *f) {
  obs_round_trip *self = (obs_round_trip *)f;
  px_async_drop(f);
  px_future_drop(&self->jh.base);
}

PX_ASYNC_FN_WITH_DROP(obs_round_trip, round_trip_cleanup) {
  PX_BEGIN();
  {
    obs_echo e = PX_ASYNC_NEW(obs_echo, .s = self->b);
    PX_TRY(px_spawn(PX_FUTURE(&e), &self->jh));
  }
  /* Let the echo task find its socket empty first, so that the message
   * reaches it through the reactor (on any executor). */
  PX_AWAIT(px_sleep_init(&self->pause, px_ms(10)));
  PX_TRY_AWAIT(px_tcp_write_all_init(&self->io, self->a, "ping", 4));
  PX_TRY_AWAIT(px_tcp_read_init(&self->io, self->a, self->buf, sizeof self->buf));
  if (self->io.base.output.u64 != 4 || memcmp(self->buf, "ping", 4) != 0)
    PX_FAIL(PX_EINVAL);
  PX_TRY_AWAIT(&self->jh.base);
  PX_END();
}

int obs_run_socket_round_trip(px_runtime *rt) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) return PX_EINVAL;
  px_stream *a, *b;
  int rc = px_fd_wrap(fds[0], &a);
  if (rc < 0) return rc;
  rc = px_fd_wrap(fds[1], &b);
  if (rc < 0) return rc;
  obs_round_trip m = PX_ASYNC_NEW(obs_round_trip, .a = a, .b = b);
  rc = px_runtime_block_on(rt, PX_FUTURE(&m));
  px_tcp_close(a);
  px_tcp_close(b);
  return rc;
}

/* ---- A slow poll ------------------------------------------------------------ */

typedef struct {
  px_async px;
  int block_ms;
} obs_blocker;

/* Blocks the thread, which a future must never do: the point of the test. */
PX_ASYNC_FN(obs_blocker) {
  PX_BEGIN();
  {
    struct timespec ts = {self->block_ms / 1000,
                          (long)(self->block_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  PX_YIELD();
  PX_END();
}

typedef struct {
  px_async px;
  int block_ms, fast, i;
  px_join_handle slow;
  px_join_handle jh[MAX_TASKS];
} obs_slow_main;

static void slow_main_cleanup(px_future *f) {
  obs_slow_main *self = (obs_slow_main *)f;
  px_async_drop(f);
  px_future_drop(&self->slow.base);
  for (int i = 0; i < self->fast; i++) px_future_drop(&self->jh[i].base);
}

PX_ASYNC_FN_WITH_DROP(obs_slow_main, slow_main_cleanup) {
  PX_BEGIN();
  {
    obs_blocker b = PX_ASYNC_NEW(obs_blocker, .block_ms = self->block_ms);
    PX_TRY(px_spawn(PX_FUTURE(&b), &self->slow));
  }
  for (self->i = 0; self->i < self->fast; self->i++) {
    obs_yielder y = PX_ASYNC_NEW(obs_yielder, .k = 1);
    PX_TRY(px_spawn(PX_FUTURE(&y), &self->jh[self->i]));
  }
  PX_TRY_AWAIT(&self->slow.base);
  for (self->i = 0; self->i < self->fast; self->i++) {
    PX_TRY_AWAIT(&self->jh[self->i].base);
  }
  PX_END();
}

int obs_run_slow(px_runtime *rt, int block_ms, int fast) {
  if (fast > MAX_TASKS) return PX_EINVAL;
  obs_slow_main m =
      PX_ASYNC_NEW(obs_slow_main, .block_ms = block_ms, .fast = fast);
  return px_runtime_block_on(rt, PX_FUTURE(&m));
}

/* ---- The blocking pool ------------------------------------------------------ */

static int sleep_100ms(void *arg, px_value *out) {
  (void)arg;
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
  out->u64 = 1;
  return 0;
}

typedef struct {
  px_async px;
  px_blocking job;
} obs_blocking_task;

PX_ASYNC_FN(obs_blocking_task) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_spawn_blocking_init(&self->job, sleep_100ms, NULL));
  PX_END();
}

typedef struct {
  px_async px;
  int i;
  px_metrics *mid;
  px_sleep s;
  px_join_handle jh[3];
} obs_blocking_main;

static void blocking_main_cleanup(px_future *f) {
  obs_blocking_main *self = (obs_blocking_main *)f;
  px_async_drop(f);
  for (int i = 0; i < 3; i++) px_future_drop(&self->jh[i].base);
}

PX_ASYNC_FN_WITH_DROP(obs_blocking_main, blocking_main_cleanup) {
  PX_BEGIN();
  for (self->i = 0; self->i < 3; self->i++) {
    obs_blocking_task t = PX_ASYNC_NEW(obs_blocking_task);
    PX_TRY(px_spawn(PX_FUTURE(&t), &self->jh[self->i]));
  }
  PX_AWAIT(px_sleep_init(&self->s, px_ms(30)));
  PX_TRY(px_runtime_metrics(px_runtime_current(), self->mid));
  for (self->i = 0; self->i < 3; self->i++) {
    PX_TRY_AWAIT(&self->jh[self->i].base);
  }
  PX_END();
}

int obs_run_blocking(px_runtime *rt, px_metrics *mid) {
  obs_blocking_main m = PX_ASYNC_NEW(obs_blocking_main, .mid = mid);
  return px_runtime_block_on(rt, PX_FUTURE(&m));
}
