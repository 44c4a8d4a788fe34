#include "tests/sync_support.h"

/* ---- mpsc_summer ---- */
PX_ASYNC_FN(mpsc_summer) {
  PX_BEGIN();
  for (;;) {
    PX_AWAIT(px_mpsc_recv_init(&self->recv, self->rx));
    if (self->recv.base.error == PX_ECLOSED) break;
    if (self->recv.base.error < 0) PX_FAIL(self->recv.base.error);
    if (self->log != NULL) self->log[self->count] = self->recv.base.output.i64;
    self->sum += self->recv.base.output.i64;
    self->count++;
  }
  PX_RETURN(px_i64(self->count));
  PX_END();
}
px_future *mpsc_summer_new(mpsc_summer *f, px_mpsc_receiver *rx, int64_t *log) {
  *f = PX_ASYNC_NEW(mpsc_summer, .rx = rx, .log = log);
  return PX_FUTURE(f);
}

/* ---- mpsc_producer ---- */
static void mpsc_producer_drop(px_future *f) {
  px_async_drop(f);
  mpsc_producer *p = (mpsc_producer *)f;
  px_mpsc_sender_drop(p->tx);
}
PX_ASYNC_FN_WITH_DROP(mpsc_producer, mpsc_producer_drop) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->n; self->i++) {
    PX_TRY_AWAIT(px_mpsc_send_init(&self->send, self->tx,
                                   px_i64(self->first + self->i)));
    PX_YIELD();
  }
  PX_RETURN(px_i64(self->n));
  PX_END();
}
px_future *mpsc_producer_new(mpsc_producer *f, px_mpsc_sender *tx,
                             int64_t first, int64_t n) {
  *f = PX_ASYNC_NEW(mpsc_producer, .tx = tx, .first = first, .n = n);
  return PX_FUTURE(f);
}

/* ---- locker ---- */
PX_ASYNC_FN(locker) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_mutex_lock_init(&self->lock, self->m));
  if (atomic_fetch_add(self->inside, 1) != 0) atomic_fetch_add(self->overlaps, 1);
  self->log[atomic_fetch_add(self->len, 1)] = self->id;
  for (self->i = 0; self->i < self->steps; self->i++) PX_YIELD();
  atomic_fetch_sub(self->inside, 1);
  PX_TRY(px_mutex_unlock(self->m));
  PX_RETURN(px_i64(self->id));
  PX_END();
}
px_future *locker_new(locker *f, px_mutex *m, int id, int steps, int *log,
                      atomic_int *len, atomic_int *inside,
                      atomic_int *overlaps) {
  *f = PX_ASYNC_NEW(locker, .m = m, .id = id, .steps = steps, .log = log,
                    .len = len, .inside = inside, .overlaps = overlaps);
  return PX_FUTURE(f);
}

/* ---- mutex_counter ---- */
PX_ASYNC_FN(mutex_counter) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->rounds; self->i++) {
    PX_TRY_AWAIT(px_mutex_lock_init(&self->lock, self->m));
    self->before = *self->counter;
    PX_YIELD(); /* hold the lock across an await: others must queue */
    *self->counter = self->before + 1;
    PX_TRY(px_mutex_unlock(self->m));
  }
  PX_RETURN(px_i64(self->rounds));
  PX_END();
}
px_future *mutex_counter_new(mutex_counter *f, px_mutex *m, int rounds,
                             long *counter) {
  *f = PX_ASYNC_NEW(mutex_counter, .m = m, .rounds = rounds, .counter = counter);
  return PX_FUTURE(f);
}

/* ---- acquirer ---- */
PX_ASYNC_FN(acquirer) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_semaphore_acquire_init(&self->acq, self->s, self->n));
  self->log[atomic_fetch_add(self->len, 1)] = self->id;
  PX_YIELD();
  PX_TRY(px_semaphore_release(self->s, self->n));
  PX_RETURN(px_i64(self->id));
  PX_END();
}
px_future *acquirer_new(acquirer *f, px_semaphore *s, size_t n, int id,
                        int *log, atomic_int *len) {
  *f = PX_ASYNC_NEW(acquirer, .s = s, .n = n, .id = id, .log = log, .len = len);
  return PX_FUTURE(f);
}

/* ---- watcher ---- */
PX_ASYNC_FN(watcher) {
  PX_BEGIN();
  for (;;) {
    PX_AWAIT(px_watch_changed_init(&self->changed, self->rx));
    if (self->changed.base.error == PX_ECLOSED) break;
    if (self->changed.base.error < 0) PX_FAIL(self->changed.base.error);
    if (self->log != NULL) self->log[self->seen] = self->changed.base.output.i64;
    self->seen++;
  }
  PX_RETURN(px_i64(self->seen));
  PX_END();
}
px_future *watcher_new(watcher *f, px_watch_receiver *rx, int64_t *log) {
  *f = PX_ASYNC_NEW(watcher, .rx = rx, .log = log);
  return PX_FUTURE(f);
}

/* ---- oneshot_waiter ---- */
PX_ASYNC_FN(oneshot_waiter) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_oneshot_recv_init(&self->recv, self->rx));
  PX_RETURN(self->recv.base.output);
  PX_END();
}
px_future *oneshot_waiter_new(oneshot_waiter *f, px_oneshot_receiver *rx) {
  *f = PX_ASYNC_NEW(oneshot_waiter, .rx = rx);
  return PX_FUTURE(f);
}

/* ---- oneshot_sender_task ---- */
static void oneshot_sender_task_drop(px_future *f) {
  px_async_drop(f);
  px_oneshot_sender_drop(((oneshot_sender_task *)f)->tx);
}
PX_ASYNC_FN_WITH_DROP(oneshot_sender_task, oneshot_sender_task_drop) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_sleep_init(&self->sleep, self->delay));
  PX_TRY(px_oneshot_send(self->tx, px_i64(self->value)));
  PX_END();
}
px_future *oneshot_sender_task_new(oneshot_sender_task *f,
                                   px_oneshot_sender *tx, px_duration delay,
                                   int64_t value) {
  *f = PX_ASYNC_NEW(oneshot_sender_task, .tx = tx, .delay = delay,
                    .value = value);
  return PX_FUTURE(f);
}

/* ---- notify_waiter ---- */
PX_ASYNC_FN(notify_waiter) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_notified_init(&self->notified, self->n));
  self->log[atomic_fetch_add(self->len, 1)] = self->id;
  PX_RETURN(px_i64(self->id));
  PX_END();
}
px_future *notify_waiter_new(notify_waiter *f, px_notify *n, int id, int *log,
                             atomic_int *len) {
  *f = PX_ASYNC_NEW(notify_waiter, .n = n, .id = id, .log = log, .len = len);
  return PX_FUTURE(f);
}
