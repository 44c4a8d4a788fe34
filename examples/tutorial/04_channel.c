/*
 * Tutorial step 5: a channel between tasks.
 *
 * A producer task sends 1..5 through a bounded mpsc channel (room for 2, so
 * it has to wait for the consumer now and then) and drops its sender; the
 * consumer adds them up until the channel reports PX_ECLOSED.
 */
#include <stdio.h>

#include "pollux.h"

static void drop_tx(void *tx) { px_mpsc_sender_drop(tx); }
static void drop_rx(void *rx) { px_mpsc_receiver_drop(rx); }

typedef struct {
  px_async px;
  px_mpsc_sender *tx;
  px_mpsc_send send;
  int i;
} producer;

PX_ASYNC_FN(producer) {
  PX_BEGIN();
  PX_DEFER(drop_tx, self->tx); /* however the task ends: closes the channel */
  for (self->i = 1; self->i <= 5; self->i++) {
    PX_TRY_AWAIT(px_mpsc_send_init(&self->send, self->tx, px_i64(self->i)));
    printf("sent %d\n", self->i);
  }
  PX_END();
}

typedef struct {
  px_async px;
  px_mpsc_receiver *rx;
  px_mpsc_recv recv;
  int64_t v, sum;
  int err;
} consumer;

PX_ASYNC_FN(consumer) {
  PX_BEGIN();
  PX_DEFER(drop_rx, self->rx);
  for (;;) {
    PX_AWAIT_INTO(self->v, self->err, px_mpsc_recv_init(&self->recv, self->rx));
    if (self->err == PX_ECLOSED) break; /* every sender is gone */
    self->sum += self->v;
  }
  printf("sum %lld\n", (long long)self->sum);
  PX_RETURN(px_i64(self->sum));
  PX_END();
}

typedef struct {
  px_async px;
  px_join_handle prod;
  consumer cons;
} async_main;

PX_ASYNC_FN(async_main) {
  PX_BEGIN();
  {
    px_mpsc_sender *tx;
    px_mpsc_receiver *rx;
    PX_TRY(px_mpsc_channel(2, &tx, &rx));
    producer p = PX_ASYNC_NEW(producer, .tx = tx);
    PX_TRY(px_spawn(PX_FUTURE(&p), &self->prod));
    self->cons = PX_ASYNC_NEW(consumer, .rx = rx);
  }
  PX_AWAIT(PX_FUTURE(&self->cons)); /* consume here, in main */
  PX_AWAIT(&self->prod.base);
  PX_END();
}

int main(void) {
  async_main m = PX_ASYNC_NEW(async_main);
  return px_run(PX_FUTURE(&m)) < 0;
}
