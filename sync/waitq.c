/*
 * Wait queues, wake lists, the semaphore core and the thread parker that
 * every primitive in sync/ shares.
 */
#include "sync/waitq.h"

#include <stdatomic.h>

#include "api/internal/px_internal.h"
#include "wakers/thread_waker.h"

/* ---- wait queue --------------------------------------------------------- */

void px__waitq_push(px__waitq *q, px_wait_node *n) {
  px__list_insert_tail(&q->nodes, &n->link);
  n->flags |= PX__NODE_LINKED;
}

void px__waitq_remove(px__waitq *q, px_wait_node *n) {
  (void)q; /* the node knows its neighbours */
  if (!(n->flags & PX__NODE_LINKED)) return;
  px__list_remove(&n->link);
  n->flags &= ~PX__NODE_LINKED;
}

px_wait_node *px__waitq_pop(px__waitq *q) {
  px_wait_node *n = px__waitq_first(q);
  if (n != NULL) px__waitq_remove(q, n);
  return n;
}

/* ---- wake list ---------------------------------------------------------- */

void px__wake_list_take_waker(px__wake_list *wl, px_waker *slot) {
  if (px_waker_is_empty(slot)) return;
  if (px__wake_batch_full(&wl->batch)) {
    /* Waking can re-enter this primitive (a task polled inline by a test
     * harness, a waker that locks something): never do it under our lock. */
    px__spin_unlock(wl->lock);
    px__wake_batch_wake(&wl->batch);
    px__spin_lock(wl->lock);
  }
  px__wake_batch_take(&wl->batch, slot);
}

void px__wake_list_take(px__wake_list *wl, px_wait_node *n) {
  px__wake_list_take_waker(wl, &n->waker);
}

void px__wake_list_finish(px__wake_list *wl) {
  px__spin_unlock(wl->lock);
  px__wake_batch_wake(&wl->batch);
}

/* ---- semaphore core ------------------------------------------------------ */

/* Hands permits to waiters from the head while the head's need is covered.
 * Strict FIFO: a large request at the head blocks smaller ones behind it,
 * so it cannot starve. */
static void sem_serve(px__sem *s, px__wake_list *wl) {
  px_wait_node *head;
  while (!s->closed && (head = px__waitq_first(&s->waiters)) != NULL &&
         head->tag <= s->permits) {
    px_wait_node *n = px__waitq_pop(&s->waiters);
    s->permits -= n->tag;
    n->state = PX__NODE_GRANTED;
    px__wake_list_take(wl, n); /* may drop and retake the lock: state is consistent */
  }
}

int px__sem_poll(px__sem *s, px_wait_node *n, size_t want, const px_waker *w) {
  switch (n->state) {
    case PX__NODE_IDLE:
      if (s->closed) {
        n->state = PX__NODE_CLOSED;
        return PX_ECLOSED;
      }
      if (px__waitq_empty(&s->waiters) && s->permits >= want) {
        s->permits -= want;
        n->state = PX__NODE_TAKEN;
        return 1;
      }
      n->tag = want;
      n->state = PX__NODE_QUEUED;
      n->waker = px_waker_clone(w);
      px__waitq_push(&s->waiters, n);
      return 0;
    case PX__NODE_QUEUED:
      px_waker_set(&n->waker, w);
      return 0;
    case PX__NODE_GRANTED:
      n->state = PX__NODE_TAKEN;
      return 1;
    default: /* CLOSED (TAKEN cannot be polled again: the future is done) */
      return PX_ECLOSED;
  }
}

int px__sem_try_acquire(px__sem *s, size_t want) {
  if (s->closed) return PX_ECLOSED;
  if (!px__waitq_empty(&s->waiters) || s->permits < want) return PX_EAGAIN;
  s->permits -= want;
  return 0;
}

void px__sem_release(px__sem *s, size_t n, px__wake_list *wl) {
  s->permits += n;
  sem_serve(s, wl);
}

void px__sem_cancel(px__sem *s, px_wait_node *n, px__wake_list *wl,
                    px_waker *drop_me) {
  *drop_me = px_waker_take(&n->waker);
  if (n->state == PX__NODE_QUEUED) {
    bool was_head = px__waitq_first(&s->waiters) == n;
    px__waitq_remove(&s->waiters, n);
    n->state = PX__NODE_IDLE;
    /* A big request at the head may have been holding back smaller ones
     * that the permits already on hand can serve. */
    if (was_head) sem_serve(s, wl);
  } else if (n->state == PX__NODE_GRANTED) {
    /* Handed permits the future never saw: they go to the next in line. */
    n->state = PX__NODE_IDLE;
    px__sem_release(s, n->tag, wl);
  }
}

void px__sem_close(px__sem *s, px__wake_list *wl) {
  s->closed = true;
  px_wait_node *n;
  while ((n = px__waitq_pop(&s->waiters)) != NULL) {
    n->state = PX__NODE_CLOSED;
    px__wake_list_take(wl, n);
  }
}

/* ---- thread parker --------------------------------------------------------- */

/* The thread waker (wakers/), reference counted: a clone left in a
 * registration may be woken or dropped after px__block_on_thread returned,
 * so the parker lives until the last clone goes. */
typedef struct parker {
  px__thread_waker tw;
  atomic_int refs;
} parker;

static const px_waker_vtable parker_vtable;

static void parker_unref(parker *p) {
  if (atomic_fetch_sub(&p->refs, 1) != 1) return;
  px__free(p, sizeof *p);
}

static px_waker parker_clone(void *data) {
  parker *p = data;
  atomic_fetch_add(&p->refs, 1);
  px_waker w = {&parker_vtable, p};
  return w;
}

static void parker_wake_by_ref(void *data) {
  px__thread_waker_wake(&((parker *)data)->tw);
}

static void parker_wake(void *data) {
  parker_wake_by_ref(data);
  parker_unref(data);
}

static void parker_drop(void *data) { parker_unref(data); }

static const px_waker_vtable parker_vtable = {parker_clone, parker_wake,
                                              parker_wake_by_ref, parker_drop};

int px__block_on_thread(px_future *f) {
  parker *p = px__alloc(sizeof *p);
  if (p == NULL) {
    px_future_drop(f);
    return PX_ENOMEM;
  }
  atomic_init(&p->tw.notified, 0);
  atomic_init(&p->tw.sleeping, 0);
  p->tw.unpark = NULL; /* the owner waits in px__thread_waker_park */
  p->tw.unpark_arg = NULL;
  atomic_init(&p->refs, 1);
  px_waker w = {&parker_vtable, p};
  /* No runtime: sync futures need none, and their cx->runtime is unused. */
  px_context cx = {&w, NULL};
  int r;
  while ((r = px_future_poll(f, &cx)) == PX_PENDING) {
    px__thread_waker_park(&p->tw);
    px__thread_waker_take(&p->tw);
  }
  int err = r < 0 ? r : f->error;
  px_future_drop(f);
  parker_unref(p);
  return err;
}
