/*
 * The thread waker (internal): a waker that is a flag, for a thread that
 * polls one future in place rather than as a task: block_on, and the
 * *_blocking functions of sync/ (px__block_on_thread). It is pollux's one
 * thread parker: the owner sleeps in px__thread_waker_park, on the
 * platform's futex (platform/platform.h). See wakers/thread.c.
 */
#ifndef POLLUX_WAKERS_THREAD_WAKER_H
#define POLLUX_WAKERS_THREAD_WAKER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "pollux/waker.h"

/*
 * The one block_on uses lives in the runtime, not on block_on's stack, so a
 * clone left behind in some registration after block_on returned can still
 * be woken harmlessly for as long as the runtime exists.
 */
typedef struct px__thread_waker {
  atomic_int notified;
  atomic_int sleeping; /* the owner blocks in px__thread_waker_park */
  /*
   * Called by the first wake since the last take, for an owner that waits
   * somewhere else (the runtime's reactor) rather than in
   * px__thread_waker_park; NULL when it waits there.
   */
  void (*unpark)(void *arg);
  void *unpark_arg;
} px__thread_waker;

px_waker px__thread_waker_make(px__thread_waker *tw);

/* What the waker's wake does: sets the flag, then unparks the owner. */
void px__thread_waker_wake(px__thread_waker *tw);

/*
 * Blocks the calling thread (the waker's owner) until the waker fired.
 * Returns at once if it already fired; does not reset it
 * (px__thread_waker_take does).
 */
void px__thread_waker_park(px__thread_waker *tw);

/* The same, for at most about `ms` milliseconds (a spurious return may come
 * sooner); returns whether the waker fired. */
bool px__thread_waker_park_ms(px__thread_waker *tw, uint32_t ms);

/* Returns whether the waker fired since the last call, and resets it. */
bool px__thread_waker_take(px__thread_waker *tw);

#endif /* POLLUX_WAKERS_THREAD_WAKER_H */
