/**
 * @file
 * pollux/time.h - durations, sleeps and timeouts.
 *
 * Times are nanoseconds of the monotonic clock. Timers have a resolution of
 * one millisecond and never fire early: a sleep completes at or after its
 * deadline, rounded up to the next millisecond tick.
 */
#ifndef POLLUX_TIME_H
#define POLLUX_TIME_H

/** @addtogroup time
 * @{
 */

#include <stdint.h>

#include "pollux/future.h"
#include "pollux/list.h"
#include "pollux/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t px_duration; /**< nanoseconds */
typedef uint64_t px_instant;  /**< nanoseconds of CLOCK_MONOTONIC */

/** `n` nanoseconds. */
static inline px_duration px_ns(uint64_t n) { return n; }
/** `n` microseconds. */
static inline px_duration px_us(uint64_t n) { return n * 1000u; }
/** `n` milliseconds. */
static inline px_duration px_ms(uint64_t n) { return n * 1000000u; }
/** `n` seconds. */
static inline px_duration px_secs(uint64_t n) { return n * 1000000000u; }

/** The current monotonic time. */
px_instant px_now(void);

/**
 * A timer registration, embedded in whatever waits on a deadline. Its fields
 * belong to the timer backend and the runtime; the size is part of the
 * contract: at most 64 bytes, 40 on 64-bit targets
 * (timers/conformance_test.cc checks it).
 */
typedef struct px_timer_node {
  /**
   * private: where the timer holds the node, all zero while it is not
   * armed (so "armed" is `at.link.next != NULL`: no flag word). On a list
   * (a wheel slot, the wheel's due lists, the heap's deferred list) it is
   * the link; in the heap's array, `heap.mark` (overlaying link.next: the
   * two share their first member) marks it and `heap.index` is its slot.
   */
  union {
    px__list link;
    struct {
      px__list *mark;
      uintptr_t index;
    } heap;
  } at;
  /**
   * private: the deadline, in whole milliseconds of the monotonic clock,
   * rounded up (never early). Written by the node's owner only, under the
   * timer's lock while armed; the one deadline a sleep keeps.
   */
  uint64_t tick;
  px_waker waker; /**< private: woken when the deadline passes */
} px_timer_node;

/**
 * One deadline registration: what px_sleep and px_interval embed (libuv's
 * uv_timer_t, tokio's TimerEntry). It is registered with the runtime's
 * timer on the first poll that must wait, stays registered while pending,
 * and is re-armed in place when the deadline moves or another task polls it;
 * completing or dropping its future releases it. No allocation: the node is
 * the timer's link, and it holds the deadline and the one waker (the owner
 * reads it to ask "armed for this task?"). The runtime whose timer holds it
 * is kept in the owning future's output slot while the future is pending:
 * an output is only valid once READY, so until then the slot is free, and
 * using it saves every sleep a word (tokio keeps the handle in the entry).
 * All fields are private; on 64-bit targets it is 40 bytes
 * (timers/conformance_test.cc checks the layout).
 */
typedef struct px_timer_entry {
  px_timer_node node; /**< private: the link, the deadline and the waker */
} px_timer_entry;

/**
 * Completes with error 0 once `duration` has passed (tokio::time::sleep).
 * "Passed" is the runtime's time: a deadline is passed once the runtime has
 * fired its timers at or after it, never earlier and never before the I/O
 * that arrived before it was dispatched; as in tokio, a sleep of 0 (or a
 * deadline just past) completes at the runtime's next turn of its timers,
 * not necessarily at its first poll.
 */
typedef struct px_sleep {
  px_future base;       /**< the future header (must be first) */
  px_timer_entry entry; /**< private: the deadline and its registration */
} px_sleep;

/** Initialises a sleep of `duration` and returns its future. */
px_future *px_sleep_init(px_sleep *s, px_duration duration);
/** Initialises a sleep until the instant `deadline` and returns its future. */
px_future *px_sleep_until_init(px_sleep *s, px_instant deadline);

/**
 * Moves a sleep's deadline (tokio's Sleep::reset), earlier or later. Before
 * the first poll it just changes the deadline. While the sleep is pending
 * its timer entry is re-registered at once, for the same waker, so the
 * awaiting task is woken at the new deadline and not the old one; call it
 * on the runtime's thread (from the task that owns the sleep). A sleep that
 * completed or was dropped becomes a fresh sleep until `new_deadline`, which
 * may be awaited again. Returns 0, or PX_EINVAL for NULL.
 */
int px_sleep_reset(px_sleep *s, px_instant new_deadline);

/**
 * What an interval does when ticks were missed because the task awaiting it
 * was late by more than 5 ms (tokio's MissedTickBehavior and tolerance).
 * With a period of 10 ms, ticks scheduled at 10, 20, 30, ..., and a task
 * that only gets back to the interval at 35, the tick due at 10 completes
 * late, at 35. Then:
 *
 *   PX_MISSED_BURST  the missed ticks fire at once, back to back (20 and 30
 *                    complete immediately), then the schedule resumes at 40:
 *                    the count of ticks over a long run is kept. The default.
 *   PX_MISSED_DELAY  one tick fires now, and the schedule restarts from it:
 *                    the next tick is a full period after the late one (45).
 *   PX_MISSED_SKIP   one tick fires now, and the next is the next one of the
 *                    original schedule still ahead (40): the phase is kept,
 *                    the missed ticks are dropped.
 */
typedef enum px_missed_tick {
  PX_MISSED_BURST = 0,
  PX_MISSED_DELAY = 1,
  PX_MISSED_SKIP = 2
} px_missed_tick;

/**
 * A periodic timer (tokio::time::interval). Each tick is awaited as a
 * future the interval owns and hands out again and again:
 *
 *   px_interval_init(&self->iv, px_ms(10), PX_MISSED_SKIP);
 *   for (;;) {
 *     PX_AWAIT(px_interval_tick(&self->iv));   // output: the tick's instant
 *     ...
 *   }
 *
 * The first tick is due at the instant of init, so it completes at once
 * (at the runtime's next turn of its timers, as a sleep of 0 does), the
 * next ones at init + period, + 2 * period, ..., never early. The tick's output
 * (u64) is the instant it was scheduled for, not when it completed. The
 * interval holds no resources between ticks, so it needs no drop; dropping a
 * pending tick future (as PX_AWAIT does after completion, or a select that
 * lost) releases its timer entry. Like any future, the interval must stay
 * where it is once a tick was polled.
 */
typedef struct px_interval {
  px_future tick;        /**< private: the future px_interval_tick returns */
  px_duration period;    /**< private */
  px_missed_tick policy; /**< private */
  /** private: the next tick's instant, to the nanosecond (its output; the
   * entry keeps it rounded up to the millisecond) */
  px_instant next;
  px_timer_entry entry;  /**< private: armed for `next` */
} px_interval;

/**
 * Starts an interval whose first tick is now. Returns 0, or PX_EINVAL for a
 * NULL interval, a zero period or an unknown policy (a tick of an interval
 * that failed to initialise then completes with PX_EINVAL).
 */
int px_interval_init(px_interval *iv, px_duration period,
                     px_missed_tick policy);

/** Same, with the first tick at `start` (tokio::time::interval_at). */
int px_interval_init_at(px_interval *iv, px_instant start, px_duration period,
                        px_missed_tick policy);

/**
 * The future of the interval's next tick, re-armed: await it once, then
 * call again for the tick after. Calling again while the previous tick is
 * still pending abandons that one (its timer entry is released). Returns
 * NULL for a NULL interval.
 */
px_future *px_interval_tick(px_interval *iv);

/**
 * Runs `inner` with a time limit (tokio::time::timeout). If `inner` finishes
 * first, its output and error become the timeout's. Otherwise `inner` is
 * dropped when the deadline passes and the result is PX_ETIMEDOUT. The
 * timeout owns `inner` from its first poll: dropping the timeout drops it.
 */
typedef struct px_timeout {
  px_future base; /**< the future header (must be first) */
  px_future *inner; /**< private */
  px_sleep sleep;   /**< private */
} px_timeout;

/** Initialises a timeout of `duration` around `inner` and returns its future. */
px_future *px_timeout_init(px_timeout *t, px_future *inner,
                           px_duration duration);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_TIME_H */
