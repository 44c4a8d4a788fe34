/*
 * pollux/time.h - durations, sleeps and timeouts.
 *
 * Times are nanoseconds of the monotonic clock. Timers have a resolution of
 * one millisecond and never fire early: a sleep completes at or after its
 * deadline, rounded up to the next millisecond tick.
 */
#ifndef POLLUX_TIME_H
#define POLLUX_TIME_H

#include <stdint.h>

#include "pollux/future.h"
#include "pollux/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t px_duration; /* nanoseconds */
typedef uint64_t px_instant;  /* nanoseconds of CLOCK_MONOTONIC */

static inline px_duration px_ns(uint64_t n) { return n; }
static inline px_duration px_us(uint64_t n) { return n * 1000u; }
static inline px_duration px_ms(uint64_t n) { return n * 1000000u; }
static inline px_duration px_secs(uint64_t n) { return n * 1000000000u; }

/* The current monotonic time. */
px_instant px_now(void);

/*
 * A timer registration, embedded in whatever waits on a deadline. Its fields
 * belong to the timer backend (a wheel slot list or a heap index); the size
 * is part of the contract: at most 64 bytes (tests/timer checks it).
 */
typedef struct px_timer_node {
  struct px_timer_node *next; /* private */
  struct px_timer_node *prev; /* private */
  uint64_t tick;              /* private: deadline in timer ticks (ms) */
  px_waker waker;             /* private: woken when the deadline passes */
  uint32_t where;             /* private: backend slot or heap index */
  uint32_t flags;             /* private: armed */
} px_timer_node;

/* Completes with error 0 once `duration` has passed (tokio::time::sleep). */
typedef struct px_sleep {
  px_future base;
  px_instant deadline;    /* private */
  void *timer;            /* private: the runtime whose timer holds node */
  px_timer_node node;     /* private */
} px_sleep;

px_future *px_sleep_init(px_sleep *s, px_duration duration);
px_future *px_sleep_until_init(px_sleep *s, px_instant deadline);

/*
 * Runs `inner` with a time limit (tokio::time::timeout). If `inner` finishes
 * first, its output and error become the timeout's. Otherwise `inner` is
 * dropped when the deadline passes and the result is PX_ETIMEDOUT. The
 * timeout owns `inner` from its first poll: dropping the timeout drops it.
 */
typedef struct px_timeout {
  px_future base;
  px_future *inner; /* private */
  px_sleep sleep;   /* private */
} px_timeout;

px_future *px_timeout_init(px_timeout *t, px_future *inner,
                           px_duration duration);

#ifdef __cplusplus
}
#endif

#endif /* POLLUX_TIME_H */
