/**
 * @file
 * pollux/async.h - async functions as straight-line C.
 *
 * These macros turn a function body into a stackless coroutine: a
 * switch-based state machine whose locals live in a frame struct (the
 * future), not on the C stack. docs/ASYNC.md writes out what each macro
 * expands to. In short:
 *
 *   typedef struct {
 *     px_async px;            // must be first: future header + await slot
 *     uint64_t ms;            // arguments and locals live here
 *     px_sleep sleep;
 *   } nap;
 *
 *   PX_ASYNC_FN(nap) {        // `self` (nap *) and `cx` are in scope
 *     PX_BEGIN();
 *     PX_AWAIT(px_sleep_init(&self->sleep, px_ms(self->ms)));
 *     PX_RETURN(px_u64(self->ms));
 *     PX_END();
 *   }
 *
 *   nap n = PX_ASYNC_NEW(nap, .ms = 10);   // a future, not yet started
 *
 * Rules (the price of stackless coroutines, the same as Rust's async fn):
 *  - A C local variable does not survive an await; keep state in `self`.
 *  - At most one PX_AWAIT / PX_YIELD per source line (each uses __LINE__).
 *  - No PX_AWAIT inside another switch statement in the same body.
 *  - The macros are C; C++ code builds futures by hand with a vtable.
 */
#ifndef POLLUX_ASYNC_H
#define POLLUX_ASYNC_H

/** @addtogroup futures
 * @{
 */

#include "pollux/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The header of every async frame. The resume point lives in the low bits of
 * base.state; `awaiting` is the sub-future currently awaited, which the
 * frame's drop drops, so cancelling an async function cancels what it waits
 * on (a pending sleep leaves the timer, a pending read leaves the reactor).
 */
typedef struct px_async {
  px_future base; /**< the future header (must be first) */
  px_future *awaiting; /**< the sub-future being awaited, or NULL */
} px_async;

/** The drop every async frame gets: drops the sub-future being awaited. */
void px_async_drop(px_future *self);

#if defined(__GNUC__) || defined(__clang__)
#define PX__FALLTHROUGH __attribute__((fallthrough))
#else
#define PX__FALLTHROUGH ((void)0)
#endif

#define PX__ASYNC_FN(type, dropfn)                                             \
  static px_poll type##__body(type *self, px_context *cx);                   \
  static px_poll type##__poll(px_future *f, px_context *cx) {                 \
    return type##__body((type *)f, cx);                                       \
  }                                                                           \
  static const px_future_vtable type##_vtable = {sizeof(type), #type,         \
                                                 type##__poll, dropfn};       \
  static px_poll type##__body(type *self, px_context *cx)

/** Defines the vtable `type##_vtable` and opens the body of an async function. */
#define PX_ASYNC_FN(type) PX__ASYNC_FN(type, px_async_drop)

/**
 * Same, with a cleanup of your own: `void cleanup(px_future *self)` must call
 * px_async_drop(self) and then release what the frame owns (for example join
 * handles it has not awaited yet).
 */
#define PX_ASYNC_FN_WITH_DROP(type, cleanup) PX__ASYNC_FN(type, cleanup)

/** A new, not yet polled frame of `type`, with designated initialisers. */
#define PX_ASYNC_NEW(type, ...)                                               \
  ((type){.px = {PX_FUTURE_INIT(&type##_vtable), NULL}, __VA_ARGS__})

/** The frame's future header, to hand to px_spawn / block_on / combinators. */
#define PX_FUTURE(frame) (&(frame)->px.base)

#define PX__SET_RESUME(line)                                                  \
  (self->px.base.state =                                                      \
       (self->px.base.state & ~PX_FUTURE_USER_MASK) | (uint32_t)(line))

/** Opens the body of an async function: the first statement of every PX_ASYNC_FN. */
#define PX_BEGIN()                                                            \
  (void)cx;                                                                   \
  switch (self->px.base.state & PX_FUTURE_USER_MASK) {                        \
    case 0:

/** Closes the body of an async function: the last statement of every PX_ASYNC_FN. */
#define PX_END()                                                              \
  }                                                                           \
  self->px.base.error = 0;                                                    \
  return PX_READY

/** Finishes with an output value (a px_value: px_ptr, px_i64, px_u64). */
#define PX_RETURN(value)                                                      \
  do {                                                                        \
    self->px.base.output = (value);                                           \
    self->px.base.error = 0;                                                  \
    return PX_READY;                                                          \
  } while (0)

/** Finishes with a negative PX_E* error code. */
#define PX_FAIL(err)                                                          \
  do {                                                                        \
    self->px.base.output.u64 = 0;                                             \
    self->px.base.error = (int32_t)(err);                                     \
    return PX_READY;                                                          \
  } while (0)

/** Evaluates a synchronous call; a negative result fails the async function. */
#define PX_TRY(expr)                                                          \
  do {                                                                        \
    int px__e = (expr);                                                       \
    if (px__e < 0) PX_FAIL(px__e);                                            \
  } while (0)

#define PX__AWAIT(expr, try_)                                                 \
  do {                                                                        \
    self->px.awaiting = (expr);                                               \
    PX__SET_RESUME(__LINE__);                                                 \
    PX__FALLTHROUGH;                                                          \
    case __LINE__: {                                                          \
      int px__r = px_future_poll(self->px.awaiting, cx);                      \
      if (px__r == PX_PENDING) return PX_PENDING;                             \
      int px__err = px__r < 0 ? px__r : (int)self->px.awaiting->error;        \
      px_future_drop(self->px.awaiting);                                      \
      self->px.awaiting = NULL;                                               \
      if (px__r < 0 || ((try_) && px__err < 0)) PX_FAIL(px__err);             \
    }                                                                         \
  } while (0)

/**
 * Awaits a future (an expression giving px_future *, typically an *_init
 * call on a field of self). Afterwards its output and error are in the
 * future's header; the future has been dropped (resources released).
 * Misuse (NULL, an already completed future) fails this function.
 */
#define PX_AWAIT(expr) PX__AWAIT(expr, 0)

/** Awaits, and fails this function with the awaited error if there is one (Rust's `?`). */
#define PX_TRY_AWAIT(expr) PX__AWAIT(expr, 1)

/** Gives other tasks a turn: wakes itself and returns PENDING once. */
#define PX_YIELD()                                                            \
  do {                                                                        \
    PX__SET_RESUME(__LINE__);                                                 \
    px_waker_wake_by_ref(cx->waker);                                          \
    return PX_PENDING;                                                        \
    case __LINE__:;                                                           \
  } while (0)

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_ASYNC_H */
