/*
 * The pieces every primitive in sync/ is built from (internal):
 *
 *  - px__waitq: a FIFO of px_wait_node, intrusive, guarded by the owner's lock
 *    (a px__spinlock: what it guards is a few pointer moves and a waker
 *    swap, cheaper than a pthread mutex's lock and unlock calls);
 *  - px__wake_list: wakers collected under the lock and woken after it is
 *    released, because waking runs foreign code (a task waker queues the
 *    task and may unpark a thread; a test waker may poll at once) that must
 *    never run, or re-enter this primitive, while we hold its lock;
 *  - px__sem: the semaphore core (permits + FIFO waiters) that the
 *    semaphore, the mutex and the bounded mpsc channel share;
 *  - px__block_on_thread: polls one future on a plain thread, parking it
 *    between polls on the thread waker (wakers/thread_waker.h, the
 *    runtime's one parker) (the *_blocking functions).
 */
#ifndef POLLUX_SYNC_WAITQ_H
#define POLLUX_SYNC_WAITQ_H

#include <stdbool.h>
#include <stddef.h>

#include "api/internal/list.h"
#include "api/internal/px_internal.h"
#include "api/internal/wake_batch.h"
#include "pollux/channel.h"
#include "pollux/errors.h"
#include "pollux/sync.h"

/* Node states (px_wait_node.state). */
enum {
  PX__NODE_IDLE = 0,    /* not waiting: never polled, or served and seen */
  PX__NODE_QUEUED = 1,  /* linked into a wait queue */
  PX__NODE_GRANTED = 2, /* served (permits, lock, notification) but not seen */
  PX__NODE_CLOSED = 3,  /* removed because the primitive closed */
  PX__NODE_TAKEN = 4,   /* the future saw what it was granted: it owns it */
  PX__NODE_GRANTED_ALL = 5 /* notify: woken by notify_waiters (nothing to pass on) */
};

/* ---- wait queue ------------------------------------------------------- */

/* px_wait_node.flags */
#define PX__NODE_LINKED 1u  /* in a wait queue's list */

typedef struct px__waitq {
  px__list nodes; /* px_wait_node.link, oldest first */
} px__waitq;

/* A zeroed queue is not empty but invalid: every owner calls this. */
static inline void px__waitq_init(px__waitq *q) { px__list_init(&q->nodes); }
void px__waitq_push(px__waitq *q, px_wait_node *n);
void px__waitq_remove(px__waitq *q, px_wait_node *n);
px_wait_node *px__waitq_pop(px__waitq *q);
static inline bool px__waitq_empty(const px__waitq *q) {
  return px__list_empty(&q->nodes);
}
/* The oldest waiter, or NULL. */
static inline px_wait_node *px__waitq_first(const px__waitq *q) {
  px__list *l = px__list_first(&q->nodes);
  return l != NULL ? px__container_of(l, px_wait_node, link) : NULL;
}

static inline void px__node_init(px_wait_node *n) {
  n->link.next = n->link.prev = NULL;
  n->waker.vtable = NULL;
  n->waker.data = NULL;
  n->tag = 0;
  n->state = PX__NODE_IDLE;
  n->flags = 0;
}

/*
 * A primitive counts the futures that may still touch it (from their first
 * queueing until they complete or are dropped), so that px_*_free can refuse
 * while any exist. The mark lives in the future's own user state bits, which
 * only the future's owner touches, so drop can read it without the lock and
 * skip locking a primitive it never waited on.
 */
#define PX__FUTURE_WAITING 1u
static inline void px__future_count(px_future *f, size_t *waiting) {
  if (!(f->state & PX__FUTURE_WAITING)) {
    f->state |= PX__FUTURE_WAITING;
    (*waiting)++;
  }
}
static inline void px__future_uncount(px_future *f, size_t *waiting) {
  if (f->state & PX__FUTURE_WAITING) {
    f->state &= ~PX__FUTURE_WAITING;
    (*waiting)--;
  }
}
static inline bool px__future_waiting(const px_future *f) {
  return (f->state & PX__FUTURE_WAITING) != 0;
}

/* ---- wake list -------------------------------------------------------- */

/*
 * Wakers taken out of nodes under `lock`, in the one wake-after-unlock
 * batch (api/internal/wake_batch.h). When the batch is full, taking one
 * more releases the lock, wakes the batch and takes the lock again
 * (tokio's WakeList), so callers must only take at points where their
 * state is consistent. px__wake_list_finish unlocks and wakes the rest.
 */
typedef struct px__wake_list {
  px__spinlock *lock;
  px__wake_batch batch;
} px__wake_list;

static inline void px__wake_list_init(px__wake_list *wl, px__spinlock *lock) {
  wl->lock = lock;
  px__wake_batch_init(&wl->batch);
}
/* Moves the node's waker into the list (the node keeps an empty waker). */
void px__wake_list_take(px__wake_list *wl, px_wait_node *n);
/* Moves a waker slot into the list. */
void px__wake_list_take_waker(px__wake_list *wl, px_waker *slot);
/* Empties a waker slot guarded by `lock` and drops what it held outside
 * the lock: a cancelled receive forgets its registration. */
static inline void px__waker_slot_drop(px__spinlock *lock, px_waker *slot) {
  px__spin_lock(lock);
  px_waker w = px_waker_take(slot);
  px__spin_unlock(lock);
  px_waker_drop(&w);
}

/* Unlocks wl->lock, then wakes everything collected. */
void px__wake_list_finish(px__wake_list *wl);

/* ---- semaphore core (caller holds the owner's lock) -------------------- */

typedef struct px__sem {
  size_t permits;
  px__waitq waiters;
  bool closed;
} px__sem;

/*
 * Polls node `n` wanting `want` permits with waker `w`. Returns 1 when the
 * permits now belong to the caller (node TAKEN), 0 when pending (queued,
 * waker stored), PX_ECLOSED.
 */
int px__sem_poll(px__sem *s, px_wait_node *n, size_t want, const px_waker *w);
/* 0 or PX_EAGAIN / PX_ECLOSED, without queueing. FIFO: fails if others wait. */
int px__sem_try_acquire(px__sem *s, size_t want);
/* Adds permits and serves waiters from the head. */
void px__sem_release(px__sem *s, size_t n, px__wake_list *wl);
/*
 * The waiting future goes away: unlinks a queued node, gives back permits
 * granted but not seen. The node's waker is moved into *drop_me for the
 * caller to drop after unlocking.
 */
void px__sem_cancel(px__sem *s, px_wait_node *n, px__wake_list *wl,
                    px_waker *drop_me);
/* Fails every waiter with PX_ECLOSED, now and later. */
void px__sem_close(px__sem *s, px__wake_list *wl);

/* ---- blocking a plain thread on a future -------------------------------- */

/*
 * Polls `f` on the calling thread until it completes, sleeping between
 * polls until its waker fires, then drops it. Returns its error (or a poll
 * error). The waker is heap-allocated and reference counted, so a wake that
 * arrives after we returned touches no dead stack.
 */
int px__block_on_thread(px_future *f);

#endif
