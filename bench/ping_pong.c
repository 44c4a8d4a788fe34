/*
 * ping_pong: tokio's benchmark of the same name. Each round spawns a task
 * that spawns 1,000 pings at once; a ping spawns a helper task, sends it a
 * oneshot, and awaits the helper's answer on a second oneshot. One op is one ping:
 * two spawns, two oneshot channels, two cross-task wake-ups.
 *
 *   bazel run -c opt //bench:ping_pong [-- ROUNDS]
 */
#include "bench/common.h"

enum { PINGS = 1000 };

/* ---- The helper: wait for the ping, answer it -------------------------- */
typedef struct {
  px_async px;
  px_oneshot_receiver *rx;
  px_oneshot_sender *tx;
  px_oneshot_recv recv;
} helper;

/* The helper owns both ends; if it is dropped half-way (at shutdown) they
 * must still be released, after the awaited recv that uses rx. */
static void helper_cleanup(px_future *f) {
  helper *self = (helper *)f;
  px_async_drop(f);
  px_oneshot_receiver_drop(self->rx);
  px_oneshot_sender_drop(self->tx);
  self->rx = NULL;
  self->tx = NULL;
}

PX_ASYNC_FN_WITH_DROP(helper, helper_cleanup) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_oneshot_recv_init(&self->recv, self->rx));
  PX_TRY(px_oneshot_send(self->tx, self->recv.base.output));
  PX_END();
}

/* ---- One ping ------------------------------------------------------------- */
typedef struct {
  px_async px;
  bench_latch *latch;
  px_oneshot_sender *tx;   /* to the helper */
  px_oneshot_receiver *rx; /* from the helper */
  px_oneshot_recv recv;
} ping;

static void ping_cleanup(px_future *f) {
  ping *self = (ping *)f;
  px_async_drop(f);
  px_oneshot_sender_drop(self->tx);
  px_oneshot_receiver_drop(self->rx);
  self->tx = NULL;
  self->rx = NULL;
}

PX_ASYNC_FN_WITH_DROP(ping, ping_cleanup) {
  PX_BEGIN();
  {
    px_oneshot_sender *to_ping;
    px_oneshot_receiver *from_ping;
    PX_TRY(px_oneshot_new(&self->tx, &from_ping));
    if (px_oneshot_new(&to_ping, &self->rx) < 0) {
      px_oneshot_receiver_drop(from_ping);
      PX_FAIL(PX_ENOMEM);
    }
    helper h = PX_ASYNC_NEW(helper, .rx = from_ping, .tx = to_ping);
    int rc = px_spawn(PX_FUTURE(&h), NULL);
    if (rc < 0) {
      px_oneshot_receiver_drop(from_ping);
      px_oneshot_sender_drop(to_ping);
      PX_FAIL(rc);
    }
  }
  PX_TRY(px_oneshot_send(self->tx, px_u64(1)));
  PX_TRY_AWAIT(px_oneshot_recv_init(&self->recv, self->rx));
  bench_latch_count_down(self->latch);
  PX_END();
}

/* ---- One round: a spawner task starts PINGS pings ---------------------- */
/* tokio's ping_pong spawns one task from block_on, and that task spawns the
 * pings: they are spawned from a task (on a worker, for work stealing),
 * not from block_on's future. */
typedef struct {
  px_async px;
  bench_latch *latch;
} spawner;

PX_ASYNC_FN(spawner) {
  PX_BEGIN();
  for (int i = 0; i < PINGS; i++) {
    ping p = PX_ASYNC_NEW(ping, .latch = self->latch);
    /* A failed spawn would leave the latch above zero: exit instead. */
    bench_check(px_spawn(PX_FUTURE(&p), NULL), "ping_pong: spawn");
  }
  PX_END();
}

static int start_round(bench_latch *latch) {
  spawner s = PX_ASYNC_NEW(spawner, .latch = latch);
  return px_spawn(PX_FUTURE(&s), NULL);
}

int main(int argc, char **argv) {
  long rounds = bench_arg(argc, argv, 300, "ping_pong [ROUNDS >= 1]");
  bench_run_rounds(&(bench_rounds){.name = "ping_pong",
                                   .rounds = rounds,
                                   .latch_count = PINGS,
                                   .start = start_round,
                                   .ops_per_round = PINGS});
  return 0;
}
