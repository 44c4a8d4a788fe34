/*
 * Tutorial step 1: a future written by hand.
 *
 * A future is a struct whose first member is a px_future, plus a vtable with
 * poll and drop. This one counts down: each poll that is not the last asks to
 * be polled again (wake_by_ref) and returns PENDING.
 */
#include <stdio.h>

#include "pollux.h"

typedef struct {
  px_future base; /* must be first */
  int remaining;
} countdown;

static px_poll countdown_poll(px_future *self, px_context *cx) {
  countdown *c = (countdown *)self;
  if (c->remaining == 0) {
    c->base.output = px_i64(42); /* the result lives in the future */
    return PX_READY;
  }
  printf("countdown: %d\n", c->remaining--);
  /* Not done: make sure somebody polls us again. A real leaf future would
   * hand the waker to a timer or a socket instead of waking itself. */
  px_waker_wake_by_ref(cx->waker);
  return PX_PENDING;
}

static const px_future_vtable countdown_vtable = {
    sizeof(countdown), "countdown", countdown_poll, NULL /* nothing to free */};

int main(void) {
  countdown c;
  px_future_init(&c.base, &countdown_vtable);
  c.remaining = 3;
  int rc = px_run(&c.base); /* a runtime, block_on, free */
  printf("result: %lld (rc=%d)\n", (long long)c.base.output.i64, rc);
  return rc < 0;
}
