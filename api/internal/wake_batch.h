/*
 * The one wake-after-unlock batch (internal; tokio's WakeList). Wakers are
 * moved out of the structure they were registered in while its lock is
 * held, and woken after the lock is released, because a wake runs foreign
 * code (a task waker queues the task, may unpark a thread or free the task;
 * a test waker may poll at once) that must never run under that lock or
 * re-enter the structure. The batch holds the wakers themselves, never
 * where they were: once the lock is released their owner may re-arm or
 * free the slot on another thread.
 *
 * It holds PX__WAKE_BATCH wakers, inline: it never allocates. When it is
 * full its user drops its lock, wakes and retakes it, at a point where its
 * state is consistent (sync/'s wake lists; the runtime firing timers asks
 * the timer for no more than a batch, executors/runtime.c).
 */
#ifndef POLLUX_API_INTERNAL_WAKE_BATCH_H
#define POLLUX_API_INTERNAL_WAKE_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "pollux/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PX__WAKE_BATCH 32

typedef struct px__wake_batch {
  size_t n;
  px_waker w[PX__WAKE_BATCH];
} px__wake_batch;

static inline void px__wake_batch_init(px__wake_batch *b) { b->n = 0; }

static inline bool px__wake_batch_full(const px__wake_batch *b) {
  return b->n == PX__WAKE_BATCH;
}

/* Adds a waker the batch now owns (an empty one adds nothing). The batch
 * must not be full. */
static inline void px__wake_batch_push(px__wake_batch *b, px_waker w) {
  if (!px_waker_is_empty(&w)) b->w[b->n++] = w;
}

/* Moves the waker out of *slot into the batch, leaving the slot empty. */
static inline void px__wake_batch_take(px__wake_batch *b, px_waker *slot) {
  px__wake_batch_push(b, px_waker_take(slot));
}

/* Wakes every waker collected, in order, and empties the batch. Called
 * with no lock held. */
static inline void px__wake_batch_wake(px__wake_batch *b) {
  for (size_t i = 0; i < b->n; i++) px_waker_wake(&b->w[i]);
  b->n = 0;
}

#ifdef __cplusplus
}
#endif

#endif /* POLLUX_API_INTERNAL_WAKE_BATCH_H */
