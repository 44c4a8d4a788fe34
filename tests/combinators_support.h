/*
 * Helper futures for tests/combinators_test.cc and tests/timers_test.cc,
 * written with the async macros (which are C).
 */
#ifndef POLLUX_TESTS_COMBINATORS_SUPPORT_H
#define POLLUX_TESTS_COMBINATORS_SUPPORT_H

#include "api/internal/px_internal.h"
#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sleeps `delay`, then fails with `err` (0: succeeds with `value`).
 * Counts its drops in *drops (if not NULL). */
typedef struct {
  px_async px;
  px_duration delay;
  int err;
  int64_t value;
  px__atomic(int) *drops;
  px_sleep sleep;
} failer;
px_future *failer_new(failer *f, px_duration delay, int err, int64_t value,
                      px__atomic(int) *drops);

#ifdef __cplusplus
}
#endif

#endif
