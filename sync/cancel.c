/*
 * px_cancel_token (tokio-util's CancellationToken).
 *
 * A token is a flag, a FIFO of waiting futures and a list of children,
 * under one small lock. Cancelling sets the flag, wakes the waiters and
 * then cancels each child. The lock is never held across two tokens: a
 * cancel collects its children (each with a reference taken) and cancels
 * them after unlocking, so parent and child locks are never nested and no
 * order between them is needed.
 *
 * A child holds a reference to its parent, so a parent lives as long as any
 * child; a child unlinks itself from its parent when freed. A parent's cancel
 * may meet a child whose last reference is being dropped on another thread:
 * that child waits for the parent's lock to unlink itself, so the cancel
 * only takes a reference if the count is not already zero.
 */
#include <stdatomic.h>

#include "api/internal/list.h"
#include "api/internal/px_internal.h"
#include "sync/waitq.h"

struct px_cancel_token {
  px__spinlock lock;
  atomic_bool cancelled;
  atomic_size_t refs;
  px__waitq waiters;
  px__list children;     /* child tokens' `sibling` nodes */
  px__list sibling;      /* in the parent's `children` */
  px_cancel_token *parent;
};

static int token_alloc(px_cancel_token **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  px_cancel_token *t = px__calloc(sizeof *t);
  if (t == NULL) return PX_ENOMEM;
  atomic_init(&t->lock, 0);
  atomic_init(&t->cancelled, false);
  atomic_init(&t->refs, 1);
  px__waitq_init(&t->waiters);
  px__list_init(&t->children);
  *out = t;
  return 0;
}

int px_cancel_token_new(px_cancel_token **out) { return token_alloc(out); }

int px_cancel_token_child(px_cancel_token *parent, px_cancel_token **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  if (parent == NULL) return PX_EINVAL;
  px_cancel_token *t;
  int rc = token_alloc(&t);
  if (rc < 0) return rc;
  t->parent = px_cancel_token_clone(parent);
  px__spin_lock(&parent->lock);
  bool cancelled = atomic_load(&parent->cancelled);
  if (!cancelled) px__list_insert_tail(&parent->children, &t->sibling);
  px__spin_unlock(&parent->lock);
  /* Checked under the parent's lock: a cancel either saw us in its list or
   * had set the flag before we looked. */
  if (cancelled) atomic_store(&t->cancelled, true);
  *out = t;
  return 0;
}

px_cancel_token *px_cancel_token_clone(px_cancel_token *t) {
  if (t != NULL) atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
  return t;
}

/* A reference, unless the token is already on its way out (count zero). */
static bool try_ref(px_cancel_token *t) {
  size_t n = atomic_load_explicit(&t->refs, memory_order_relaxed);
  do {
    if (n == 0) return false;
  } while (!atomic_compare_exchange_weak_explicit(
      &t->refs, &n, n + 1, memory_order_acquire, memory_order_relaxed));
  return true;
}

void px_cancel_token_drop(px_cancel_token *t) {
  while (t != NULL) {
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
      return;
    px_cancel_token *parent = t->parent;
    if (parent != NULL) {
      px__spin_lock(&parent->lock);
      if (px__list_linked(&t->sibling)) px__list_remove(&t->sibling);
      px__spin_unlock(&parent->lock);
    }
    /* Nobody can wait on a token nobody holds: the queue is empty. */
    px__free(t, sizeof *t);
    t = parent; /* give back the child's reference, without recursion */
  }
}

bool px_cancel_token_is_cancelled(const px_cancel_token *t) {
  return t != NULL && atomic_load_explicit(&((px_cancel_token *)t)->cancelled,
                                           memory_order_acquire);
}

int px_cancel_token_cancel(px_cancel_token *t) {
  if (t == NULL) return PX_EINVAL;
  if (atomic_load_explicit(&t->cancelled, memory_order_acquire)) return 0;
  /* The tree is walked breadth-first through a list of collected tokens,
   * linked by their `sibling` nodes once taken out of their parent, so a
   * deep tree costs no stack. */
  px__list todo;
  px__list_init(&todo);
  px_cancel_token *cur = px_cancel_token_clone(t);
  while (cur != NULL) {
    px__wake_list wl;
    px__wake_list_init(&wl, &cur->lock);
    px__spin_lock(&cur->lock);
    if (!atomic_load(&cur->cancelled)) {
      atomic_store_explicit(&cur->cancelled, true, memory_order_release);
      px_wait_node *w;
      while ((w = px__waitq_pop(&cur->waiters)) != NULL) {
        w->state = PX__NODE_GRANTED_ALL;
        px__wake_list_take(&wl, w);
      }
      px__list *n, *tmp;
      px__list_foreach_safe(n, tmp, &cur->children) {
        px_cancel_token *c = px__container_of(n, px_cancel_token, sibling);
        px__list_remove(n);
        if (try_ref(c)) px__list_insert_tail(&todo, n);
      }
    }
    px__wake_list_finish(&wl);
    px_cancel_token_drop(cur);
    px__list *next = px__list_pop(&todo);
    cur = next != NULL ? px__container_of(next, px_cancel_token, sibling) : NULL;
  }
  return 0;
}

/* ---- px_cancelled ----------------------------------------------------- */

static px_poll cancelled_poll(px_future *self, px_context *cx) {
  px_cancelled *f = (px_cancelled *)self;
  px_cancel_token *t = f->token;
  if (t == NULL) {
    self->error = PX_EINVAL;
    return PX_READY;
  }
  /* A token cancelled long ago answers at once, every time. */
  if (!px__coop_proceed(cx)) return PX_PENDING;
  px_wait_node *w = &f->node;
  px_poll r = PX_READY;
  px__spin_lock(&t->lock);
  if (!atomic_load(&t->cancelled)) {
    if (w->state == PX__NODE_QUEUED) {
      px_waker_set(&w->waker, cx->waker);
    } else {
      w->state = PX__NODE_QUEUED;
      w->waker = px_waker_clone(cx->waker);
      px__waitq_push(&t->waiters, w);
    }
    r = PX_PENDING;
  }
  px__spin_unlock(&t->lock);
  if (r == PX_READY) self->error = 0;
  else px__coop_refund(); /* waiting, not progress */
  return r;
}

static void cancelled_drop(px_future *self) {
  px_cancelled *f = (px_cancelled *)self;
  px_cancel_token *t = f->token;
  if (t == NULL) return;
  px__spin_lock(&t->lock);
  px_waker stale = px_waker_take(&f->node.waker);
  if (f->node.state == PX__NODE_QUEUED) px__waitq_remove(&t->waiters, &f->node);
  f->node.state = PX__NODE_IDLE;
  px__spin_unlock(&t->lock);
  px_waker_drop(&stale);
}

static const px_future_vtable cancelled_vtable = {
    sizeof(px_cancelled), "cancelled", cancelled_poll, cancelled_drop};

px_future *px_cancelled_init(px_cancelled *f, px_cancel_token *t) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &cancelled_vtable);
  f->token = t;
  px__node_init(&f->node);
  return &f->base;
}
