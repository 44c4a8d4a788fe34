/*
 * px_semaphore and px_mutex. A mutex is a semaphore with one permit (as in
 * tokio): FIFO permit hand-off gives the mutex its fair ownership hand-off
 * for free, because unlocking releases the permit straight to the first
 * waiter instead of making it available for anyone to grab.
 */

#include "api/internal/px_internal.h"
#include "sync/waitq.h"

struct px_semaphore {
  px__spinlock lock;
  px__sem sem;
  size_t waiting; /* futures between first poll and drop (for free) */
};

/* The mutex shares the semaphore's layout and code. */
struct px_mutex {
  struct px_semaphore s;
};

static int sem_create(struct px_semaphore **out, size_t permits) {
  struct px_semaphore *s = px__calloc(sizeof *s);
  if (s == NULL) return PX_ENOMEM;
  atomic_init(&s->lock, 0);
  s->sem.permits = permits;
  px__waitq_init(&s->sem.waiters);
  *out = s;
  return 0;
}

static int sem_destroy(struct px_semaphore *s) {
  px__spin_lock(&s->lock);
  size_t waiting = s->waiting;
  px__spin_unlock(&s->lock);
  if (waiting != 0) return PX_EBUSY;
  px__free(s, sizeof *s);
  return 0;
}

int px_semaphore_new(px_semaphore **out, size_t permits) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  if (permits > PX_SEMAPHORE_MAX_PERMITS) return PX_EINVAL;
  return sem_create(out, permits);
}

int px_semaphore_free(px_semaphore *s) {
  if (s == NULL) return PX_EINVAL;
  return sem_destroy(s);
}

/* ---- the acquire future, shared by semaphore and mutex ------------------- */

/* Polls node `n` of a future wanting `want` permits of `s`. */
static px_poll acquire_poll(px_future *base, struct px_semaphore *s,
                            px_wait_node *n, size_t want, px_context *cx) {
  if (s == NULL || want > PX_SEMAPHORE_MAX_PERMITS) {
    base->error = PX_EINVAL;
    return PX_READY;
  }
  /* A lock nobody else wants would otherwise let a lock/unlock loop run
   * forever inside one poll. */
  if (!px__coop_proceed(cx)) return PX_PENDING;
  px__spin_lock(&s->lock);
  int r = px__sem_poll(&s->sem, n, want, cx->waker);
  /* Counted from its first queueing until it is done, so px_semaphore_free
   * can refuse to pull the queue from under it. */
  if (r == 0)
    px__future_count(base, &s->waiting);
  else
    px__future_uncount(base, &s->waiting);
  px__spin_unlock(&s->lock);
  if (r == 0) {
    px__coop_refund();
    return PX_PENDING;
  }
  base->error = r < 0 ? r : 0;
  base->output = px_u64(r < 0 ? 0 : want);
  return PX_READY;
}

static void acquire_drop(px_future *base, struct px_semaphore *s,
                         px_wait_node *n) {
  if (s == NULL || !px__future_waiting(base)) return;
  px_waker stale = PX_WAKER_EMPTY;
  px__wake_list wl;
  px__wake_list_init(&wl, &s->lock);
  px__spin_lock(&s->lock);
  px__future_uncount(base, &s->waiting);
  px__sem_cancel(&s->sem, n, &wl, &stale);
  px__wake_list_finish(&wl);
  px_waker_drop(&stale);
}

static px_poll semaphore_acquire_poll(px_future *self, px_context *cx) {
  px_semaphore_acquire *f = (px_semaphore_acquire *)self;
  return acquire_poll(self, f->sem, &f->node, f->n, cx);
}

static void semaphore_acquire_drop(px_future *self) {
  px_semaphore_acquire *f = (px_semaphore_acquire *)self;
  acquire_drop(self, f->sem, &f->node);
}

static const px_future_vtable semaphore_acquire_vtable = {
    sizeof(px_semaphore_acquire), "semaphore_acquire", semaphore_acquire_poll,
    semaphore_acquire_drop};

px_future *px_semaphore_acquire_init(px_semaphore_acquire *f, px_semaphore *s,
                                     size_t n) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &semaphore_acquire_vtable);
  f->sem = s;
  f->n = n;
  px__node_init(&f->node);
  return &f->base;
}

int px_semaphore_try_acquire(px_semaphore *s, size_t n) {
  if (s == NULL || n > PX_SEMAPHORE_MAX_PERMITS) return PX_EINVAL;
  px__spin_lock(&s->lock);
  int r = px__sem_try_acquire(&s->sem, n);
  px__spin_unlock(&s->lock);
  return r;
}

int px_semaphore_release(px_semaphore *s, size_t n) {
  if (s == NULL) return PX_EINVAL;
  px__wake_list wl;
  px__wake_list_init(&wl, &s->lock);
  px__spin_lock(&s->lock);
  if (n > PX_SEMAPHORE_MAX_PERMITS - s->sem.permits) {
    px__spin_unlock(&s->lock);
    return PX_EINVAL;
  }
  px__sem_release(&s->sem, n, &wl);
  px__wake_list_finish(&wl);
  return 0;
}

size_t px_semaphore_available(const px_semaphore *s) {
  if (s == NULL) return 0;
  struct px_semaphore *m = (struct px_semaphore *)s;
  px__spin_lock(&m->lock);
  size_t n = m->sem.permits;
  px__spin_unlock(&m->lock);
  return n;
}

int px_semaphore_close(px_semaphore *s) {
  if (s == NULL) return PX_EINVAL;
  px__wake_list wl;
  px__wake_list_init(&wl, &s->lock);
  px__spin_lock(&s->lock);
  px__sem_close(&s->sem, &wl);
  px__wake_list_finish(&wl);
  return 0;
}

/* ---- mutex --------------------------------------------------------------- */

int px_mutex_new(px_mutex **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  struct px_semaphore *s;
  int rc = sem_create(&s, 1);
  if (rc == 0) *out = (px_mutex *)s;
  return rc;
}

int px_mutex_free(px_mutex *m) {
  if (m == NULL) return PX_EINVAL;
  return sem_destroy(&m->s);
}

static px_poll mutex_lock_poll(px_future *self, px_context *cx) {
  px_mutex_lock *f = (px_mutex_lock *)self;
  return acquire_poll(self, f->mutex ? &f->mutex->s : NULL, &f->node, 1, cx);
}

static void mutex_lock_drop(px_future *self) {
  px_mutex_lock *f = (px_mutex_lock *)self;
  acquire_drop(self, f->mutex ? &f->mutex->s : NULL, &f->node);
}

static const px_future_vtable mutex_lock_vtable = {
    sizeof(px_mutex_lock), "mutex_lock", mutex_lock_poll, mutex_lock_drop};

px_future *px_mutex_lock_init(px_mutex_lock *f, px_mutex *m) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &mutex_lock_vtable);
  f->mutex = m;
  px__node_init(&f->node);
  return &f->base;
}

int px_mutex_try_lock(px_mutex *m) {
  if (m == NULL) return PX_EINVAL;
  int r = px_semaphore_try_acquire(&m->s, 1);
  return r == PX_EAGAIN ? PX_EBUSY : r;
}

int px_mutex_unlock(px_mutex *m) {
  if (m == NULL) return PX_EINVAL;
  struct px_semaphore *s = &m->s;
  px__wake_list wl;
  px__wake_list_init(&wl, &s->lock);
  px__spin_lock(&s->lock);
  /* A free permit means nobody holds the lock: unlocking is a bug, and
   * releasing anyway would let two holders in. */
  if (s->sem.permits != 0) {
    px__spin_unlock(&s->lock);
    return PX_EINVAL;
  }
  px__sem_release(&s->sem, 1, &wl);
  px__wake_list_finish(&wl);
  return 0;
}
