/*
 * The watch channel: one value and a version counter bumped by every send.
 * Each receiver (a small allocation of its own) remembers the version it
 * last saw; px_watch_changed waits until the channel's version differs.
 * Waiting receivers sit in one FIFO queue, and a send wakes all of them.
 */

#include "api/internal/px_internal.h"
#include "sync/waitq.h"

typedef struct watch {
  px__spinlock lock;
  px_value value;
  uint64_t version;
  bool tx_alive;    /* the sender handle exists */
  bool closed;      /* the sender is gone or going: no change will come */
  size_t receivers; /* live receiver handles */
  size_t waiting;   /* changed futures queued (they pin the channel too) */
  px__waitq waiters;
} watch;

struct px_watch_receiver {
  watch *ch;
  uint64_t seen; /* guarded by ch->lock */
};

static watch *of_tx(const px_watch_sender *tx) { return (watch *)tx; }

/* Frees the channel once nothing refers to it; always unlocks. */
static void release_locked(watch *c) {
  bool last = !c->tx_alive && c->receivers == 0 && c->waiting == 0;
  px__spin_unlock(&c->lock);
  if (!last) return;
  px__free(c, sizeof *c);
}

int px_watch_new(px_value initial, px_watch_sender **tx,
                 px_watch_receiver **rx) {
  if (tx == NULL || rx == NULL) return PX_EINVAL;
  *tx = NULL;
  *rx = NULL;
  watch *c = px__calloc(sizeof *c);
  px_watch_receiver *r = px__calloc(sizeof *r);
  if (c == NULL || r == NULL) {
    px__free(c, sizeof *c);
    px__free(r, sizeof *r);
    return PX_ENOMEM;
  }
  atomic_init(&c->lock, 0);
  px__waitq_init(&c->waiters);
  c->value = initial;
  c->tx_alive = true;
  c->receivers = 1;
  r->ch = c;
  r->seen = 0;
  *tx = (px_watch_sender *)c;
  *rx = r;
  return 0;
}

/* Wakes every queued receiver; lock held (the wake list may cycle it).
 * Once closed nobody queues any more; before that, receivers that queue
 * while the lock is released have seen the current version (their tag) and
 * rightly stay queued. */
static void wake_all_locked(watch *c, px__wake_list *wl) {
  px_wait_node *head;
  while ((head = px__waitq_first(&c->waiters)) != NULL &&
         (c->closed || head->tag < c->version)) {
    px_wait_node *n = px__waitq_pop(&c->waiters);
    n->state = PX__NODE_GRANTED;
    px__wake_list_take(wl, n);
  }
}

int px_watch_send(px_watch_sender *tx, px_value value) {
  watch *c = of_tx(tx);
  if (c == NULL) return PX_EINVAL;
  px__wake_list wl;
  px__wake_list_init(&wl, &c->lock);
  px__spin_lock(&c->lock);
  if (c->receivers == 0) {
    px__spin_unlock(&c->lock);
    return PX_ECLOSED;
  }
  c->value = value;
  c->version++;
  wake_all_locked(c, &wl);
  px__wake_list_finish(&wl);
  return 0;
}

size_t px_watch_receiver_count(const px_watch_sender *tx) {
  watch *c = of_tx(tx);
  if (c == NULL) return 0;
  px__spin_lock(&c->lock);
  size_t n = c->receivers;
  px__spin_unlock(&c->lock);
  return n;
}

void px_watch_sender_drop(px_watch_sender *tx) {
  watch *c = of_tx(tx);
  if (c == NULL) return;
  px__wake_list wl;
  px__wake_list_init(&wl, &c->lock);
  px__spin_lock(&c->lock);
  /* Everyone waiting must learn that no change will ever come. */
  c->closed = true;
  wake_all_locked(c, &wl);
  px__wake_list_finish(&wl);
  /* tx_alive goes false only now, so a receiver drop cannot free the
   * channel while the lock was released to wake. */
  px__spin_lock(&c->lock);
  c->tx_alive = false;
  release_locked(c);
}

int px_watch_receiver_clone(px_watch_receiver *rx, px_watch_receiver **out) {
  if (rx == NULL || out == NULL) return PX_EINVAL;
  px_watch_receiver *r = px__calloc(sizeof *r);
  if (r == NULL) return PX_ENOMEM;
  watch *c = rx->ch;
  px__spin_lock(&c->lock);
  c->receivers++;
  r->ch = c;
  r->seen = rx->seen;
  px__spin_unlock(&c->lock);
  *out = r;
  return 0;
}

int px_watch_borrow(const px_watch_receiver *rx, px_value *out) {
  if (rx == NULL || out == NULL) return PX_EINVAL;
  px__spin_lock(&rx->ch->lock);
  *out = rx->ch->value;
  px__spin_unlock(&rx->ch->lock);
  return 0;
}

int px_watch_borrow_and_update(px_watch_receiver *rx, px_value *out) {
  if (rx == NULL || out == NULL) return PX_EINVAL;
  px__spin_lock(&rx->ch->lock);
  *out = rx->ch->value;
  rx->seen = rx->ch->version;
  px__spin_unlock(&rx->ch->lock);
  return 0;
}

int px_watch_has_changed(const px_watch_receiver *rx) {
  if (rx == NULL) return PX_EINVAL;
  watch *c = rx->ch;
  px__spin_lock(&c->lock);
  int r = rx->seen != c->version ? 1 : c->closed ? PX_ECLOSED : 0;
  px__spin_unlock(&c->lock);
  return r;
}

static px_poll changed_poll(px_future *self, px_context *cx) {
  px_watch_changed *f = (px_watch_changed *)self;
  if (f->rx == NULL) {
    self->error = PX_EINVAL;
    return PX_READY;
  }
  if (!px__coop_proceed(cx)) return PX_PENDING;
  watch *c = f->rx->ch;
  px_wait_node *n = &f->node;
  px__spin_lock(&c->lock);
  /* Whatever woke us (or not), the version decides: a send, the sender
   * going away, or a spurious poll. */
  int r = f->rx->seen != c->version ? 0 : c->closed ? PX_ECLOSED : 1;
  if (r == 1) {
    n->tag = f->rx->seen;
    if (n->state != PX__NODE_QUEUED) {
      n->state = PX__NODE_QUEUED;
      px__waitq_push(&c->waiters, n);
      px__future_count(self, &c->waiting);
    }
    px_waker_set(&n->waker, cx->waker);
    px__spin_unlock(&c->lock);
    px__coop_refund();
    return PX_PENDING;
  }
  px__waitq_remove(&c->waiters, n);
  n->state = PX__NODE_IDLE;
  px_waker stale = px_waker_take(&n->waker);
  if (r == 0) {
    f->rx->seen = c->version;
    self->output = c->value;
  }
  self->error = r;
  /* Uncount while still holding the lock: the receiver handle keeps the
   * channel alive while its future is being polled. */
  px__future_uncount(self, &c->waiting);
  px__spin_unlock(&c->lock);
  px_waker_drop(&stale);
  return PX_READY;
}

static void changed_drop(px_future *self) {
  px_watch_changed *f = (px_watch_changed *)self;
  if (f->rx == NULL || !px__future_waiting(self)) return;
  watch *c = f->rx->ch;
  px_wait_node *n = &f->node;
  px__spin_lock(&c->lock);
  px__waitq_remove(&c->waiters, n);
  n->state = PX__NODE_IDLE;
  px_waker stale = px_waker_take(&n->waker);
  px__future_uncount(self, &c->waiting);
  release_locked(c);
  px_waker_drop(&stale);
}

static const px_future_vtable changed_vtable = {
    sizeof(px_watch_changed), "watch_changed", changed_poll, changed_drop};

px_future *px_watch_changed_init(px_watch_changed *f, px_watch_receiver *rx) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &changed_vtable);
  f->rx = rx;
  px__node_init(&f->node);
  return &f->base;
}

void px_watch_receiver_drop(px_watch_receiver *rx) {
  if (rx == NULL) return;
  watch *c = rx->ch;
  px__free(rx, sizeof *rx);
  px__spin_lock(&c->lock);
  c->receivers--;
  release_locked(c);
}
