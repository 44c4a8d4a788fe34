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
 * PX__WAKE_BATCH wakers fit inline. When the batch is full its user either
 * drops its lock, wakes and retakes it (sync/'s wake lists, at points where
 * their state is consistent), or grows the batch (the runtime firing
 * timers, which cannot release the lock in the middle of an advance).
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
  px_waker *w; /* `inline_w` until px__wake_batch_grow */
  size_t n, cap;
  px_waker inline_w[PX__WAKE_BATCH];
} px__wake_batch;

static inline void px__wake_batch_init(px__wake_batch *b) {
  b->w = b->inline_w;
  b->n = 0;
  b->cap = PX__WAKE_BATCH;
}

static inline bool px__wake_batch_full(const px__wake_batch *b) {
  return b->n == b->cap;
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

/* Doubles the room. False when memory ran out (the batch is unchanged). */
bool px__wake_batch_grow(px__wake_batch *b);

/* Wakes every waker collected, in order, and empties the batch (the room
 * stays). Called with no lock held. */
static inline void px__wake_batch_wake(px__wake_batch *b) {
  for (size_t i = 0; i < b->n; i++) px_waker_wake(&b->w[i]);
  b->n = 0;
}

/* Gives back the room px__wake_batch_grow took (after the last wake). */
void px__wake_batch_release(px__wake_batch *b);

#ifdef __cplusplus
}
#endif

#endif /* POLLUX_API_INTERNAL_WAKE_BATCH_H */
