/*
 * The thread waker block_on parks on. block_on polls its future in place,
 * not as a task, so its waker is a flag: waking sets it and, when the
 * runtime thread may be blocked in the reactor, unparks it. The waker does
 * not own anything (the flag lives in the runtime, which outlives every
 * registration that could hold a clone), so clone and drop cost nothing.
 *
 * Two ways to wait for the flag:
 *   - single-threaded executors (fifo) wait in the reactor, because the same
 *     thread also drives I/O and timers; waking calls `unpark`, which the
 *     runtime set to interrupt its reactor wait;
 *   - multi-threaded executors (work_stealing) let worker threads drive I/O,
 *     so block_on's thread only sleeps until its future is woken:
 *     px__thread_waker_park, a futex wait on the flag itself.
 *
 * The futex wake is only paid when the owner really sleeps: the owner
 * announces `sleeping` before its last look at the flag, and the waker sets
 * the flag before looking at `sleeping`. Both use sequentially consistent
 * order, so at least one of them sees the other (a Dekker handshake): either
 * the owner sees the flag and does not sleep, or the waker sees the sleeper
 * and wakes it.
 */
#include "platform/platform.h"
#include "wakers/thread_waker.h"

static const px_waker_vtable thread_vtable;

static px_waker thread_clone(void *data) {
  px_waker w = {&thread_vtable, data};
  return w;
}

void px__thread_waker_wake(px__thread_waker *tw) {
  /* Only the first wake since the last take needs to unpark. */
  if (atomic_exchange_explicit(&tw->notified, 1, memory_order_seq_cst) != 0)
    return;
  if (tw->unpark != NULL) tw->unpark(tw->unpark_arg);
  if (atomic_load_explicit(&tw->sleeping, memory_order_seq_cst) != 0)
    px__futex_wake(&tw->notified, 1);
}

static void thread_wake(void *data) { px__thread_waker_wake(data); }

static void thread_drop(void *data) { (void)data; }

static const px_waker_vtable thread_vtable = {thread_clone, thread_wake,
                                              thread_wake, thread_drop};

px_waker px__thread_waker_make(px__thread_waker *tw) {
  px_waker w = {&thread_vtable, tw};
  return w;
}

bool px__thread_waker_take(px__thread_waker *tw) {
  if (atomic_load_explicit(&tw->notified, memory_order_relaxed) == 0)
    return false;
  return atomic_exchange_explicit(&tw->notified, 0, memory_order_acq_rel) != 0;
}

void px__thread_waker_park(px__thread_waker *tw) {
  atomic_store_explicit(&tw->sleeping, 1, memory_order_seq_cst);
  /* The futex compares the flag with 0 atomically with going to sleep
   * (platform/platform.h), so a wake between our load and the wait makes it
   * return at once. Spurious returns just loop. */
  while (atomic_load_explicit(&tw->notified, memory_order_seq_cst) == 0)
    px__futex_wait(&tw->notified, 0);
  atomic_store_explicit(&tw->sleeping, 0, memory_order_relaxed);
}

bool px__thread_waker_park_ms(px__thread_waker *tw, uint32_t ms) {
  atomic_store_explicit(&tw->sleeping, 1, memory_order_seq_cst);
  if (atomic_load_explicit(&tw->notified, memory_order_seq_cst) == 0)
    px__futex_wait_ms(&tw->notified, 0, ms);
  atomic_store_explicit(&tw->sleeping, 0, memory_order_relaxed);
  return atomic_load_explicit(&tw->notified, memory_order_acquire) != 0;
}
