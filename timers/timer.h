/*
 * The timer interface every timer backend implements (internal).
 *
 * A timer instance orders px_timer_node entries by deadline, measured in
 * ticks of one millisecond of the monotonic clock (px__timer_tick). It does
 * no locking and knows nothing of clocks or wakers: the runtime converts
 * times to ticks, and `advance` hands expired nodes to a callback that
 * wakes them.
 */
#ifndef POLLUX_TIMERS_TIMER_H
#define POLLUX_TIMERS_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pollux/time.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Nanoseconds per tick. */
#define PX__TIMER_TICK_NS UINT64_C(1000000)

/*
 * The tick a deadline (ns) falls due at: its millisecond, rounded up, so
 * a timer fires late but never early. Ticks count from the clock's zero,
 * not from a runtime's start, so a sleep keeps its deadline as a tick
 * before it knows its runtime (px_timer_node.tick is the only copy).
 */
static inline uint64_t px__timer_tick(uint64_t deadline_ns) {
  return deadline_ns / PX__TIMER_TICK_NS +
         (deadline_ns % PX__TIMER_TICK_NS != 0);
}

/* The tick an instant (ns) lies in, rounded down: "now" for a timer, and
 * how far a runtime's time has reached; with deadlines rounded up, the
 * pair never fires or completes anything early. */
static inline uint64_t px__timer_tick_floor(uint64_t ns) {
  return ns / PX__TIMER_TICK_NS;
}

/* Whether a timer instance holds the node: both backends keep at.link.next
 * (or the heap's mark over it) non-NULL exactly while it is armed. */
static inline bool px__timer_armed(const px_timer_node *node) {
  return node->at.link.next != NULL;
}

/* No deadline: next_tick's answer for an empty timer. */
#define PX__TICK_NONE UINT64_MAX

typedef void (*px__timer_fire_fn)(px_timer_node *node, void *arg);

typedef struct px__timer_ops {
  const char *name;
  /* Bytes of one instance; the runtime allocates it. */
  size_t size;
  /* Starts an empty instance whose current tick is `now`. */
  void (*init)(void *timer, uint64_t now);
  /*
   * Arms `node` (not armed) to fire at its `tick`, which the caller set
   * and leaves alone while the node is armed. A tick at or before the
   * current one fires on the next advance. Returns 0, or PX_ENOMEM when a
   * backend that grows storage (the heap) cannot: the node is then left
   * unarmed. The node must not be armed already: the runtime always
   * cancels first (the heap reports PX_EINVAL, the wheel asserts). O(1)
   * for the wheel, O(log n) for the heap.
   */
  int (*insert)(void *timer, px_timer_node *node);
  /*
   * Disarms an armed node (a node that is not armed is left alone). O(1)
   * for the wheel, O(log n) for the heap. Never allocates.
   */
  void (*cancel)(void *timer, px_timer_node *node);
  /*
   * The earliest tick at which advance has work to do, or PX__TICK_NONE.
   * It may be earlier than any deadline (a wheel must cascade), never later,
   * and may be at or before the current tick (overdue nodes): the runtime
   * treats that as "advance now".
   */
  uint64_t (*next_tick)(void *timer);
  /*
   * Moves the current tick to `now` (never backwards) and calls `fire` for
   * every node whose tick is <= now, in deadline order, equal deadlines in
   * insertion order, but for at most `max` nodes (max >= 1). Each node is
   * disarmed before its callback runs, so the callback may re-insert it.
   * Returns the number fired.
   *
   * Inside a callback the current tick is the one being fired: a node
   * inserted for that tick or earlier fires on the next advance (so a timer
   * that re-arms for "now" cannot loop forever), a later one within `now`
   * fires in this same advance. Calling advance from a callback is not
   * supported.
   *
   * A call that fired `max` may have left due nodes: the current tick
   * stays the one being fired, and the next call fires those left first,
   * in order, then goes on. So the caller can fire a burst a batch at a
   * time, waking each batch with no lock held and no memory to grow (the
   * runtime: executors/runtime.c advance_timers). Between two such calls
   * nodes may be inserted and cancelled as inside a callback; one inserted
   * for the tick being fired or earlier fires in a later call.
   */
  size_t (*advance)(void *timer, uint64_t now, size_t max,
                    px__timer_fire_fn fire, void *arg);
  /*
   * Releases the instance's own resources. Nodes still armed are not
   * touched: the runtime drops every sleep (cancelling its node) first.
   */
  void (*destroy)(void *timer);
} px__timer_ops;

/* The backend chosen by --//timers:timer (defined by its *_default target). */
extern const px__timer_ops *const px__timer_default;

#ifdef __cplusplus
}
#endif

#endif
