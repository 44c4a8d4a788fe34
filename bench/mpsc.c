/*
 * mpsc: tokio's sync_mpsc benchmarks, built twice (see BUILD.bazel).
 *
 *   mpsc_contended    5 producer tasks x 1,000 values through a channel
 *                     bounded at 100 (tokio's contention_bounded_full),
 *                     received by the main future: senders keep waiting
 *                     for room, so every send and recv may wake someone.
 *   mpsc_uncontended  one future sends 5,000 values into a channel with
 *                     room for all (bounded at 1,000,000, as tokio's),
 *                     then receives them (tokio's uncontented_bounded):
 *                     the channel's own cost.
 *
 * One op is one value sent and received.
 *
 *   bazel run -c opt //bench:mpsc_contended [-- ROUNDS]
 */
#include <stdio.h>

#include "bench/common.h"

#ifndef MPSC_CONTENDED
#error "build with MPSC_CONTENDED=0 or 1"
#endif

enum { PRODUCERS = 5, PER_PRODUCER = 1000, VALUES = PRODUCERS * PER_PRODUCER };

#if MPSC_CONTENDED
#define NAME "mpsc_contended"
#define CAPACITY 100
#else
#define NAME "mpsc_uncontended"
/* tokio's uncontented_bounded: a bound far above the 5,000 queued. */
#define CAPACITY 1000000
#endif

#if MPSC_CONTENDED
typedef struct {
  px_async px;
  px_mpsc_sender *tx;
  int i;
  px_mpsc_send send;
} producer;

static void producer_cleanup(px_future *f) {
  producer *self = (producer *)f;
  px_async_drop(f); /* the pending send first: it uses tx */
  px_mpsc_sender_drop(self->tx);
  self->tx = NULL;
}

PX_ASYNC_FN_WITH_DROP(producer, producer_cleanup) {
  PX_BEGIN();
  for (self->i = 0; self->i < PER_PRODUCER; self->i++) {
    PX_TRY_AWAIT(px_mpsc_send_init(&self->send, self->tx,
                                   px_u64((uint64_t)self->i)));
  }
  PX_END();
}
#endif

typedef struct {
  px_async px;
  long rounds, r, i;
  uint64_t sum;
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  px_mpsc_send send;
  px_mpsc_recv recv;
} bench_main;

static void bench_main_cleanup(px_future *f) {
  bench_main *self = (bench_main *)f;
  px_async_drop(f);
  px_mpsc_sender_drop(self->tx);
  px_mpsc_receiver_drop(self->rx);
  self->tx = NULL;
  self->rx = NULL;
}

PX_ASYNC_FN_WITH_DROP(bench_main, bench_main_cleanup) {
  PX_BEGIN();
  for (self->r = 0; self->r < self->rounds; self->r++) {
    PX_TRY(px_mpsc_channel(CAPACITY, &self->tx, &self->rx));
#if MPSC_CONTENDED
    for (self->i = 0; self->i < PRODUCERS; self->i++) {
      producer p = PX_ASYNC_NEW(producer);
      PX_TRY(px_mpsc_sender_clone(self->tx, &p.tx));
      int rc = px_spawn(PX_FUTURE(&p), NULL);
      if (rc < 0) {
        px_mpsc_sender_drop(p.tx);
        PX_FAIL(rc);
      }
    }
#else
    for (self->i = 0; self->i < VALUES; self->i++) {
      PX_TRY_AWAIT(px_mpsc_send_init(&self->send, self->tx,
                                     px_u64((uint64_t)self->i)));
    }
#endif
    px_mpsc_sender_drop(self->tx);
    self->tx = NULL;
    for (self->i = 0; self->i < VALUES; self->i++) {
      PX_TRY_AWAIT(px_mpsc_recv_init(&self->recv, self->rx));
      self->sum += self->recv.base.output.u64;
    }
    px_mpsc_receiver_drop(self->rx);
    self->rx = NULL;
  }
  PX_END();
}

int main(int argc, char **argv) {
  long rounds = bench_arg(argc, argv, 200, NAME " [ROUNDS >= 1]");
  bench_count_allocations();
  px_runtime *rt = bench_runtime_new(NAME);
  bench_main m = PX_ASYNC_NEW(bench_main, .rounds = rounds);
  bench_meter meter;
  bench_meter_start(&meter);
  bench_check(px_runtime_block_on(rt, PX_FUTURE(&m)), NAME);
  /* Every value arrived exactly once: the sum proves it. */
#if MPSC_CONTENDED
  uint64_t per_round =
      PRODUCERS * (uint64_t)PER_PRODUCER * (PER_PRODUCER - 1) / 2;
#else
  uint64_t per_round = (uint64_t)VALUES * (VALUES - 1) / 2;
#endif
  if (m.sum != per_round * (uint64_t)rounds) {
    fprintf(stderr, NAME ": values lost or duplicated\n");
    return 1;
  }
  bench_report(&meter, NAME, (double)rounds * VALUES, NULL);
  px_runtime_free(rt);
  return 0;
}
