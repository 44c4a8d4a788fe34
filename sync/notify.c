/*
 * px_notify (tokio::sync::Notify). State: at most one stored permit, a FIFO
 * of waiters, and a generation counter bumped by every px_notify_waiters,
 * which lets a px_notified created before the call see it even if it was
 * not polled (so not queued) yet.
 */

#include "api/internal/px_internal.h"
#include "sync/waitq.h"

struct px_notify {
  px__spinlock lock;
  px__waitq waiters;
  bool permit;
  px__atomic(uint64_t) gen; /* written under lock, read at px_notified_init */
  size_t waiting;
};

int px_notify_new(px_notify **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  px_notify *n = px__calloc(sizeof *n);
  if (n == NULL) return PX_ENOMEM;
  atomic_init(&n->lock, 0);
  atomic_init(&n->gen, 0);
  px__waitq_init(&n->waiters);
  *out = n;
  return 0;
}

int px_notify_free(px_notify *n) {
  if (n == NULL) return PX_EINVAL;
  px__spin_lock(&n->lock);
  size_t waiting = n->waiting;
  px__spin_unlock(&n->lock);
  if (waiting != 0) return PX_EBUSY;
  px__free(n, sizeof *n);
  return 0;
}

/* Serves one notification under the lock: the head waiter, or the permit. */
static void notify_one_locked(px_notify *n, px__wake_list *wl) {
  px_wait_node *w = px__waitq_pop(&n->waiters);
  if (w == NULL) {
    n->permit = true;
    return;
  }
  w->state = PX__NODE_GRANTED;
  px__wake_list_take(wl, w);
}

int px_notify_one(px_notify *n) {
  if (n == NULL) return PX_EINVAL;
  px__wake_list wl;
  px__wake_list_init(&wl, &n->lock);
  px__spin_lock(&n->lock);
  notify_one_locked(n, &wl);
  px__wake_list_finish(&wl);
  return 0;
}

int px_notify_waiters(px_notify *n) {
  if (n == NULL) return PX_EINVAL;
  px__wake_list wl;
  px__wake_list_init(&wl, &n->lock);
  px__spin_lock(&n->lock);
  uint64_t gen = atomic_load(&n->gen) + 1;
  atomic_store(&n->gen, gen);
  /* Each node's tag is the generation it was queued in. The wake list may
   * drop the lock between batches; futures queued meanwhile carry the new
   * generation, sit behind the older ones, and are not woken by this call. */
  px_wait_node *head;
  while ((head = px__waitq_first(&n->waiters)) != NULL && head->tag < gen) {
    px_wait_node *w = px__waitq_pop(&n->waiters);
    w->state = PX__NODE_GRANTED_ALL;
    px__wake_list_take(&wl, w);
  }
  px__wake_list_finish(&wl);
  return 0;
}

static px_poll notified_poll(px_future *self, px_context *cx) {
  px_notified *f = (px_notified *)self;
  px_notify *n = f->notify;
  if (n == NULL) {
    self->error = PX_EINVAL;
    return PX_READY;
  }
  if (!px__coop_proceed(cx)) return PX_PENDING;
  px_wait_node *w = &f->node;
  px_poll r = PX_READY;
  px__spin_lock(&n->lock);
  switch (w->state) {
    case PX__NODE_IDLE:
      if (atomic_load(&n->gen) != f->gen) break; /* notify_waiters since init */
      if (n->permit) {
        n->permit = false;
        break;
      }
      w->tag = atomic_load(&n->gen);
      w->state = PX__NODE_QUEUED;
      w->waker = px_waker_clone(cx->waker);
      px__waitq_push(&n->waiters, w);
      px__future_count(self, &n->waiting);
      r = PX_PENDING;
      break;
    case PX__NODE_QUEUED:
      px_waker_set(&w->waker, cx->waker);
      r = PX_PENDING;
      break;
    default: /* GRANTED or GRANTED_ALL: notified */
      break;
  }
  if (r == PX_READY) {
    w->state = PX__NODE_TAKEN;
    px__future_uncount(self, &n->waiting);
  }
  px__spin_unlock(&n->lock);
  if (r == PX_READY)
    self->error = 0;
  else
    px__coop_refund();
  return r;
}

static void notified_drop(px_future *self) {
  px_notified *f = (px_notified *)self;
  px_notify *n = f->notify;
  if (n == NULL || !px__future_waiting(self)) return;
  px_wait_node *w = &f->node;
  px__wake_list wl;
  px__wake_list_init(&wl, &n->lock);
  px__spin_lock(&n->lock);
  px_waker stale = px_waker_take(&w->waker);
  if (w->state == PX__NODE_QUEUED) {
    px__waitq_remove(&n->waiters, w);
  } else if (w->state == PX__NODE_GRANTED) {
    /* A notify_one reached us but we never saw it: pass it on, exactly as
     * if it had been sent after we left. */
    notify_one_locked(n, &wl);
  }
  w->state = PX__NODE_IDLE;
  px__future_uncount(self, &n->waiting);
  px__wake_list_finish(&wl);
  px_waker_drop(&stale);
}

static const px_future_vtable notified_vtable = {
    sizeof(px_notified), "notified", notified_poll, notified_drop};

px_future *px_notified_init(px_notified *f, px_notify *n) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &notified_vtable);
  f->notify = n;
  f->gen = n != NULL ? atomic_load(&n->gen) : 0;
  px__node_init(&f->node);
  return &f->base;
}
