#include "tests/combinators_support.h"

/* ---- failer ---- */
static void failer_drop(px_future *f) {
  px_async_drop(f);
  failer *s = (failer *)f;
  if (s->drops) atomic_fetch_add(s->drops, 1);
}
PX_ASYNC_FN_WITH_DROP(failer, failer_drop) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_sleep_init(&self->sleep, self->delay));
  if (self->err < 0) PX_FAIL(self->err);
  PX_RETURN(px_i64(self->value));
  PX_END();
}
px_future *failer_new(failer *f, px_duration delay, int err, int64_t value,
                      atomic_int *drops) {
  *f = PX_ASYNC_NEW(failer, .delay = delay, .err = err, .value = value,
                    .drops = drops);
  return PX_FUTURE(f);
}
