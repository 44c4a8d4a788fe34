/**
 * @file
 * pollux/context.h - what a future is polled with (Rust's Context<'_>).
 */
#ifndef POLLUX_CONTEXT_H
#define POLLUX_CONTEXT_H

/** @addtogroup futures
 * @{
 */

#include "pollux/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A runtime (opaque): an executor, a reactor, a timer and a blocking pool (runtime.h). */
typedef struct px_runtime px_runtime;

/** What a future is polled with: the waker of the polling task and its runtime (Rust's Context). */
typedef struct px_context {
  /**
   * The waker of the task being polled. It is borrowed for the duration of
   * the poll: a future that must be woken later stores px_waker_clone(waker).
   */
  const px_waker *waker;
  /**
   * The runtime polling the future, or NULL when a future is polled by hand
   * outside any runtime. Leaf futures (sleeps, sockets) find the timer and
   * the reactor through it; with no runtime they fail with PX_ENORUNTIME.
   */
  px_runtime *runtime;
} px_context;

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_CONTEXT_H */
