/*
 * Async test futures for tests/sync_test.cc, written with the async macros
 * (which are C): channel consumers and producers, lockers, acquirers.
 */
#ifndef POLLUX_TESTS_SYNC_SUPPORT_H
#define POLLUX_TESTS_SYNC_SUPPORT_H

#include <stdint.h>

#include "api/internal/px_internal.h"
#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Receives until PX_ECLOSED; sums the values. Output: the count. If `log`
 * is set, appends every value to it. */
typedef struct {
  px_async px;
  px_mpsc_receiver *rx;
  int64_t sum, count;
  int64_t *log;
  px_mpsc_recv recv;
} mpsc_summer;
px_future *mpsc_summer_new(mpsc_summer *f, px_mpsc_receiver *rx, int64_t *log);

/* Sends first, first+1, ..., first+n-1 with the send future, yielding after
 * each, then drops its sender. Output: the number sent. */
typedef struct {
  px_async px;
  px_mpsc_sender *tx;
  int64_t first, n, i;
  px_mpsc_send send;
} mpsc_producer;
px_future *mpsc_producer_new(mpsc_producer *f, px_mpsc_sender *tx,
                             int64_t first, int64_t n);

/* Locks, appends id to log, checks nobody else is inside (counts overlaps
 * in *overlaps), yields `steps` times, unlocks. */
typedef struct {
  px_async px;
  px_mutex *m;
  int id, steps, i;
  int *log;
  px__atomic(int) *len;
  px__atomic(int) *inside;
  px__atomic(int) *overlaps;
  px_mutex_lock lock;
} locker;
px_future *locker_new(locker *f, px_mutex *m, int id, int steps, int *log,
                      px__atomic(int) *len, px__atomic(int) *inside,
                      px__atomic(int) *overlaps);

/* `rounds` times: lock, read *counter, yield, write it back plus one (not
 * atomic: only the mutex keeps increments from being lost), unlock.
 * Output: rounds. */
typedef struct {
  px_async px;
  px_mutex *m;
  int rounds, i;
  long *counter;
  long before; /* read before the yield, kept in the frame across it */
  px_mutex_lock lock;
} mutex_counter;
px_future *mutex_counter_new(mutex_counter *f, px_mutex *m, int rounds,
                             long *counter);

/* Acquires n permits, appends id to log, yields once, releases them. */
typedef struct {
  px_async px;
  px_semaphore *s;
  size_t n;
  int id;
  int *log;
  px__atomic(int) *len;
  px_semaphore_acquire acq;
} acquirer;
px_future *acquirer_new(acquirer *f, px_semaphore *s, size_t n, int id,
                        int *log, px__atomic(int) *len);

/* Awaits changed() until PX_ECLOSED; records the values it saw in log.
 * Output: how many changes it saw. */
typedef struct {
  px_async px;
  px_watch_receiver *rx;
  int64_t seen;
  int64_t *log;
  px_watch_changed changed;
} watcher;
px_future *watcher_new(watcher *f, px_watch_receiver *rx, int64_t *log);

/* Waits for the oneshot and returns its value (or fails with its error). */
typedef struct {
  px_async px;
  px_oneshot_receiver *rx;
  px_oneshot_recv recv;
} oneshot_waiter;
px_future *oneshot_waiter_new(oneshot_waiter *f, px_oneshot_receiver *rx);

/* Sleeps `delay`, then sends `value` on the oneshot and drops the sender. */
typedef struct {
  px_async px;
  px_oneshot_sender *tx;
  px_duration delay;
  int64_t value;
  px_sleep sleep;
} oneshot_sender_task;
px_future *oneshot_sender_task_new(oneshot_sender_task *f,
                                   px_oneshot_sender *tx, px_duration delay,
                                   int64_t value);

/* Waits for a notification, appends id to log. */
typedef struct {
  px_async px;
  px_notify *n;
  int id;
  int *log;
  px__atomic(int) *len;
  px_notified notified;
} notify_waiter;
px_future *notify_waiter_new(notify_waiter *f, px_notify *n, int id, int *log,
                             px__atomic(int) *len);

#ifdef __cplusplus
}
#endif

#endif
