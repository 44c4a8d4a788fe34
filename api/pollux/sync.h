/**
 * @file
 * pollux/sync.h - awaitable synchronization: semaphore, mutex, notify.
 *
 * The shapes are tokio::sync's, written in C:
 *
 *   px_semaphore   counted permits, acquired in FIFO order (Semaphore)
 *   px_mutex       an async lock with fair FIFO hand-off (Mutex)
 *   px_notify      wake one or all waiters, with a stored permit (Notify)
 *
 * Each primitive is one allocation (px_*_new / px_*_free) guarded by a small
 * lock, so it may be used from any thread: futures may be polled, and wakers
 * woken, on different threads. Wakers are always woken after that lock is
 * released, never under it.
 *
 * Waiting needs no allocation: every waiting future embeds a px_wait_node,
 * an intrusive list node that joins the primitive's wait queue. Dropping a
 * waiting future (px_future_drop, e.g. the loser of a px_select or a
 * px_timeout that expired) takes its node out of the queue. If ownership was
 * already handed to it (a permit, the lock, a notification) and it never saw
 * it, the drop passes it on to the next waiter, so nothing is ever lost.
 *
 * Like every future, a waiting future must not move after its first poll:
 * the queue points into it. A primitive must outlive the futures waiting on
 * it; px_*_free refuses (PX_EBUSY) while any future waits.
 */
#ifndef POLLUX_SYNC_H
#define POLLUX_SYNC_H

/** @addtogroup sync
 * @{
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pollux/future.h"
#include "pollux/list.h"
#include "pollux/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A wait-queue node, embedded in a waiting future. All fields are private
 * and guarded by the lock of the primitive the node waits on.
 */
typedef struct px_wait_node {
  px__list link;             /**< private: in the primitive's wait queue */
  px_waker waker;            /**< private: woken when the node is served */
  uint64_t tag;              /**< private: permits wanted, generation, ... */
  uint32_t state;            /**< private: idle, queued, granted, ... */
  uint32_t flags;            /**< private: linked */
} px_wait_node;

/** The most permits a semaphore can hold (tokio's figure, usize::MAX >> 3). */
#define PX_SEMAPHORE_MAX_PERMITS (SIZE_MAX >> 3)

/* ---- Semaphore ------------------------------------------------------- */

/** A counting semaphore (opaque). */
typedef struct px_semaphore px_semaphore;

/** Creates a semaphore holding `permits` permits (at most the max). */
int px_semaphore_new(px_semaphore **out, size_t permits);

/** Frees it. PX_EBUSY (and nothing freed) while futures wait on it. */
int px_semaphore_free(px_semaphore *s);

/**
 * Acquires `n` permits (tokio's acquire_many). Waiters are served strictly
 * first come, first served: a waiter needing many permits is not overtaken
 * by later, smaller requests. Completes with error 0 once the permits are
 * the caller's (give them back with px_semaphore_release), PX_ECLOSED if
 * the semaphore is closed, PX_EINVAL for a NULL semaphore or n above the
 * maximum. Dropping the future before it completes gives back any permits
 * it was handed.
 */
typedef struct px_semaphore_acquire {
  px_future base; /**< the future header (must be first) */
  px_semaphore *sem; /**< private */
  size_t n;          /**< private */
  px_wait_node node; /**< private */
} px_semaphore_acquire;
/** Initialises an acquire of `n` permits of `s` and returns its future. */
px_future *px_semaphore_acquire_init(px_semaphore_acquire *f, px_semaphore *s,
                                     size_t n);

/**
 * Takes `n` permits now, or fails with PX_EAGAIN when there are not enough
 * or other futures are already waiting (they come first), PX_ECLOSED when
 * closed, PX_EINVAL for bad arguments.
 */
int px_semaphore_try_acquire(px_semaphore *s, size_t n);

/**
 * Adds `n` permits, handing them straight to the waiters at the head of the
 * queue. PX_EINVAL for NULL or when the total would pass the maximum.
 */
int px_semaphore_release(px_semaphore *s, size_t n);

/** Permits available right now (0 for NULL). */
size_t px_semaphore_available(const px_semaphore *s);

/** Closes: pending and future acquires fail with PX_ECLOSED. */
int px_semaphore_close(px_semaphore *s);

/* ---- Mutex ------------------------------------------------------------ */

/**
 * An async mutex. It guards no data of its own: it is the lock you hold
 * across awaits around data you keep elsewhere. Unlocking hands ownership
 * directly to the longest waiting future, so nobody can barge in between.
 */
typedef struct px_mutex px_mutex;

/** Creates an unlocked mutex. Returns 0, PX_EINVAL (NULL) or PX_ENOMEM. */
int px_mutex_new(px_mutex **out);
/** PX_EBUSY (and nothing freed) while futures wait on it. */
int px_mutex_free(px_mutex *m);

/** Completes with error 0 once the caller holds the lock. */
typedef struct px_mutex_lock {
  px_future base; /**< the future header (must be first) */
  px_mutex *mutex;   /**< private */
  px_wait_node node; /**< private */
} px_mutex_lock;
/** Initialises a lock of `m` and returns its future. */
px_future *px_mutex_lock_init(px_mutex_lock *f, px_mutex *m);

/** 0 when the lock was taken, PX_EBUSY when it is held, PX_EINVAL for NULL. */
int px_mutex_try_lock(px_mutex *m);

/** Releases the lock (to the first waiter, if any). PX_EINVAL if not locked. */
int px_mutex_unlock(px_mutex *m);

/* ---- Notify ----------------------------------------------------------- */

/**
 * Notify (tokio::sync::Notify): a future waits with px_notified; another
 * party calls px_notify_one or px_notify_waiters. px_notify_one with nobody
 * waiting stores one permit, which the next px_notified consumes at once,
 * so a notification sent just before someone starts waiting is not lost.
 */
typedef struct px_notify px_notify;

/** Creates a notify with no stored permit. Returns 0, PX_EINVAL (NULL) or PX_ENOMEM. */
int px_notify_new(px_notify **out);
/** PX_EBUSY (and nothing freed) while futures wait on it. */
int px_notify_free(px_notify *n);

/**
 * Completes with error 0 when notified. It also sees every
 * px_notify_waiters call made after it was initialised, even before its
 * first poll (tokio's guarantee).
 */
typedef struct px_notified {
  px_future base; /**< the future header (must be first) */
  px_notify *notify; /**< private */
  uint64_t gen;      /**< private: px_notify_waiters calls seen at init */
  px_wait_node node; /**< private */
} px_notified;
/** Initialises a wait for a notification of `n` and returns its future. */
px_future *px_notified_init(px_notified *f, px_notify *n);

/** Wakes the longest waiting future, or stores a permit if none waits. */
int px_notify_one(px_notify *n);

/** Wakes every future waiting now; stores no permit. */
int px_notify_waiters(px_notify *n);

/* ---- Cancellation token ---------------------------------------------- */

/**
 * A cancellation token (tokio-util's CancellationToken): one party cancels,
 * every task holding the token sees it, through px_cancel_token_is_cancelled
 * or by awaiting px_cancelled. Tokens form a tree: cancelling a token
 * cancels its children (and theirs), never its parent. The shape of a
 * graceful shutdown: the accept loop selects on px_cancelled, connection
 * tasks check the token between requests, a signal task cancels the root.
 *
 * Reference counted and safe from any thread: every holder owns one
 * reference (px_cancel_token_new and px_cancel_token_child give the first,
 * px_cancel_token_clone adds one) and gives it back with
 * px_cancel_token_drop; the last one frees the token.
 */
typedef struct px_cancel_token px_cancel_token;

/** A new, uncancelled root token. Returns 0, PX_EINVAL (NULL) or PX_ENOMEM. */
int px_cancel_token_new(px_cancel_token **out);

/**
 * A new token cancelled whenever `parent` is (already cancelled if the
 * parent is); cancelling the child leaves the parent alone. The child keeps
 * the parent alive. Returns 0, PX_EINVAL (NULL) or PX_ENOMEM.
 */
int px_cancel_token_child(px_cancel_token *parent, px_cancel_token **out);

/** Another reference to the same token (NULL for NULL). */
px_cancel_token *px_cancel_token_clone(px_cancel_token *t);

/** Gives back one reference; the last one frees the token. NULL is ignored. */
void px_cancel_token_drop(px_cancel_token *t);

/**
 * Cancels the token and, recursively, its children, waking every future
 * waiting on any of them. Idempotent; returns 0, or PX_EINVAL for NULL.
 */
int px_cancel_token_cancel(px_cancel_token *t);

/** True once the token (or an ancestor) was cancelled; false for NULL. */
bool px_cancel_token_is_cancelled(const px_cancel_token *t);

/**
 * Completes with error 0 once the token is cancelled (at once if it already
 * is); PX_EINVAL for a NULL token. The token must outlive the future (hold
 * a reference). Dropping it while it waits is always safe.
 */
typedef struct px_cancelled {
  px_future base;         /**< the future header (must be first) */
  px_cancel_token *token; /**< private */
  px_wait_node node;      /**< private */
} px_cancelled;

/** Initialises a wait for the cancellation of `t` and returns its future. */
px_future *px_cancelled_init(px_cancelled *f, px_cancel_token *t);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_SYNC_H */
