/*
 * Tutorial step 2: the same countdown as an async function.
 *
 * The macros turn the body into the switch-based state machine of step 1
 * (docs/ASYNC.md writes the expansion out). Locals that live across a yield
 * are fields of the frame struct.
 */
#include <stdio.h>

#include "pollux.h"

typedef struct {
  px_async px; /* must be first */
  int remaining;
} countdown;

PX_ASYNC_FN(countdown) {
  PX_BEGIN();
  while (self->remaining > 0) {
    printf("countdown: %d\n", self->remaining--);
    PX_YIELD(); /* returns PENDING once, resumes here on the next poll */
  }
  PX_RETURN(px_i64(42));
  PX_END();
}

int main(void) {
  countdown c = PX_ASYNC_NEW(countdown, .remaining = 3);
  int rc = px_run(PX_FUTURE(&c));
  printf("result: %lld (rc=%d)\n", (long long)c.px.base.output.i64, rc);
  return rc < 0;
}
