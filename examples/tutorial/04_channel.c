/*
 * Tutorial step 5: a channel between tasks.
 *
 * A producer task sends 1..5 through a bounded mpsc channel (room for 2, so
 * it has to wait for the consumer now and then) and drops its sender; the
 * consumer adds them up until the channel reports PX_ECLOSED.
 */
#include <stdio.h>

#include "pollux.h"

typedef struct {
  px_async px;
  px_mpsc_sender *tx;
  px_mpsc_send send;
  int i;
} producer;

static void producer_drop(px_future *f) {
  px_async_drop(f);
  px_mpsc_sender_drop(((producer *)f)->tx); /* closes the channel */
}

PX_ASYNC_FN_WITH_DROP(producer, producer_drop) {
  PX_BEGIN();
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
  int64_t sum;
} consumer;

static void consumer_drop(px_future *f) {
  px_async_drop(f);
  px_mpsc_receiver_drop(((consumer *)f)->rx);
}

PX_ASYNC_FN_WITH_DROP(consumer, consumer_drop) {
  PX_BEGIN();
  for (;;) {
    PX_AWAIT(px_mpsc_recv_init(&self->recv, self->rx));
    if (self->recv.base.error == PX_ECLOSED) break; /* every sender is gone */
    self->sum += self->recv.base.output.i64;
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
