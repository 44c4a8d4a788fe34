/**
 * @file
 * pollux/waker.h - wakers, after Rust's RawWaker / RawWakerVTable.
 *
 * A waker is how a pending future says "poll me again": whoever holds the
 * waker calls wake when the awaited event happens (a socket became readable,
 * a timer fired, a channel got a message). A waker is two words, a vtable and
 * a data pointer, copied by value. It owns whatever its data pointer refers to
 * (for a task waker, one reference to the task), so it must be cloned with
 * px_waker_clone, never copied with '=' when both copies are kept.
 *
 * Thread safety: the waker implementations pollux ships (task, no-op, thread)
 * may be cloned, woken and dropped from any thread.
 */
#ifndef POLLUX_WAKER_H
#define POLLUX_WAKER_H

/** @addtogroup futures
 * @{
 */

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct px_waker px_waker;

/** What a kind of waker does: clone, wake, wake by reference, drop. */
typedef struct px_waker_vtable {
  /** Returns a new waker for the same target (a task waker bumps a count). */
  px_waker (*clone)(void *data);
  /** Wakes the target and releases this waker's ownership (consumes it). */
  void (*wake)(void *data);
  /** Wakes the target; the waker stays valid. */
  void (*wake_by_ref)(void *data);
  /** Releases this waker's ownership without waking. */
  void (*drop)(void *data);
} px_waker_vtable;

/**
 * A waker. The empty waker (vtable == NULL) is valid everywhere and every
 * operation on it is a no-op, which makes "slot with no waker yet" natural.
 */
struct px_waker {
  const px_waker_vtable *vtable; /**< NULL for the empty waker */
  void *data; /**< the vtable's argument */
};

/** A static initialiser for the empty waker. */
#define PX_WAKER_EMPTY {NULL, NULL}

/** True when the waker holds nothing. */
static inline bool px_waker_is_empty(const px_waker *w) {
  return w == NULL || w->vtable == NULL;
}

/** A new waker owning its own reference to the same target. */
static inline px_waker px_waker_clone(const px_waker *w) {
  if (px_waker_is_empty(w)) {
    px_waker empty = PX_WAKER_EMPTY;
    return empty;
  }
  return w->vtable->clone(w->data);
}

/**
 * Moves the waker out of *slot and leaves the slot empty (Rust's
 * Option::take). The usual use: take a stored waker while holding a lock,
 * then wake or drop it after unlocking, since waking runs foreign code.
 */
static inline px_waker px_waker_take(px_waker *slot) {
  px_waker w = *slot;
  slot->vtable = NULL;
  slot->data = NULL;
  return w;
}

/** Wakes and consumes *w; afterwards *w is empty. */
static inline void px_waker_wake(px_waker *w) {
  if (px_waker_is_empty(w)) return;
  px_waker t = px_waker_take(w);
  t.vtable->wake(t.data);
}

/** Wakes without consuming. */
static inline void px_waker_wake_by_ref(const px_waker *w) {
  if (px_waker_is_empty(w)) return;
  w->vtable->wake_by_ref(w->data);
}

/** Releases *w without waking; afterwards *w is empty. */
static inline void px_waker_drop(px_waker *w) {
  if (px_waker_is_empty(w)) return;
  px_waker t = px_waker_take(w);
  t.vtable->drop(t.data);
}

/**
 * True when both wakers wake the same target, so a future that stored a
 * waker last time can skip the clone (Rust's Waker::will_wake).
 */
static inline bool px_waker_will_wake(const px_waker *a, const px_waker *b) {
  return a != NULL && b != NULL && a->vtable == b->vtable && a->data == b->data;
}

/**
 * Stores a clone of `src` in `*slot`, dropping what the slot held, unless the
 * slot already wakes the same target (then nothing is done).
 */
static inline void px_waker_set(px_waker *slot, const px_waker *src) {
  if (px_waker_will_wake(slot, src)) return;
  px_waker_drop(slot);
  *slot = px_waker_clone(src);
}

/** A waker that does nothing: for polling a future by hand in tests. */
px_waker px_waker_noop(void);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_WAKER_H */
