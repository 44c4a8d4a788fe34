/*
 * The thread waker block_on parks on. block_on polls its future in place,
 * not as a task, so its waker is a flag: waking sets it and, when the
 * runtime thread may be blocked in the reactor, unparks it. The waker does
 * not own anything (the flag lives in the runtime, which outlives every
 * registration that could hold a clone), so clone and drop cost nothing.
 */
#include "executors/executor.h"

static const px_waker_vtable thread_vtable;

static px_waker thread_clone(void *data) {
  px_waker w = {&thread_vtable, data};
  return w;
}

static void thread_wake(void *data) {
  px__thread_waker *tw = data;
  /* Only the first wake since the last take needs to unpark. */
  if (atomic_exchange_explicit(&tw->notified, 1, memory_order_seq_cst) == 0 &&
      tw->runtime != NULL)
    px__runtime_unpark(tw->runtime);
}

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
