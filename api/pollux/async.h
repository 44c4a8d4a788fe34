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

/** One PX_DEFER registration (private: a node of a frame's cleanup list). */
typedef struct px_defer px_defer;

/**
 * The header of every async frame: a future header and nothing else. The
 * resume point lives in the low bits of base.state. While the frame runs,
 * its output slot (an output is only valid once READY, so until then the
 * slot is free) holds what the frame must remember besides its own fields:
 * the sub-future it is awaiting, which the frame's drop drops, so cancelling
 * an async function cancels what it waits on (a pending sleep leaves the
 * timer, a pending read leaves the reactor); and, once PX_DEFER registered a
 * cleanup, a record that holds both that sub-future and the cleanups. Every
 * way out of the function (PX_RETURN, PX_FAIL, PX_TRY, PX_END) runs the
 * cleanups and frees the record before it stores the output: a sleeping
 * task's frame is two words smaller than with fields for the two.
 */
typedef struct px_async {
  px_future base; /**< the future header (must be first); see above */
} px_async;

/* private: the record a frame with cleanups keeps in its output slot,
 * tagged with the low bit (api/future.c owns it; the macros below read and
 * write `awaiting` through it). */
typedef struct px__async_rec {
  px_future *awaiting;
  px_defer *defers; /* newest first */
} px__async_rec;

#define PX__ASYNC_REC 1u

#if defined(__GNUC__) || defined(__clang__)
#define PX__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define PX__UNLIKELY(x) (x)
#endif

/* The record a tagged slot points to (the caller tested the tag). */
static inline px__async_rec *px__async_slot_rec(uint64_t slot) {
  return (px__async_rec *)(uintptr_t)(slot - PX__ASYNC_REC);
}

/* The record, or NULL when the frame has none. Only while it runs. */
static inline px__async_rec *px__async_rec_of(const px_async *frame) {
  uint64_t slot = frame->base.output.u64;
  return (slot & PX__ASYNC_REC) ? px__async_slot_rec(slot) : NULL;
}

/* The sub-future being awaited, or NULL. Only while the frame runs. One
 * test of the tag: a frame with cleanups is the rare one. */
static inline px_future *px__async_awaited(const px_async *frame) {
  uint64_t slot = frame->base.output.u64;
  if (PX__UNLIKELY(slot & PX__ASYNC_REC))
    return px__async_slot_rec(slot)->awaiting;
  return (px_future *)(uintptr_t)slot;
}

/* PX_AWAIT's record of what it awaits (a function, so that `expr` must be
 * a px_future *). */
static inline void px__async_await(px_async *frame, px_future *f) {
  uint64_t slot = frame->base.output.u64;
  if (PX__UNLIKELY(slot & PX__ASYNC_REC))
    px__async_slot_rec(slot)->awaiting = f;
  else
    frame->base.output.u64 = (uint64_t)(uintptr_t)f;
}

/**
 * The sub-future a frame is awaiting: NULL when it awaits nothing, once it
 * finished or was dropped, and for NULL.
 */
static inline px_future *px_async_awaiting(const px_async *frame) {
  if (frame == NULL ||
      (frame->base.state & (PX_FUTURE_DONE | PX_FUTURE_DROPPED)))
    return NULL;
  return px__async_awaited(frame);
}

/**
 * Runs a finishing frame's cleanups (newest first) and frees their record,
 * leaving its output slot 0 for the output. What PX_RETURN, PX_FAIL and
 * PX_END call when the frame has cleanups: not meant to be called directly,
 * but public so that code built against the shared library links.
 */
void px_async_finish(px_async *frame);

/* Every way out of an async function goes through here (the macros). */
static inline void px__async_finish(px_async *frame) {
  if (frame->base.output.u64 & PX__ASYNC_REC)
    px_async_finish(frame);
  else
    frame->base.output.u64 = 0;
}

/**
 * The drop every async frame gets: for a frame that has not finished, drops
 * the sub-future being awaited, then runs the frame's deferred cleanups,
 * newest first. A finished frame ran its cleanups as it finished, and its
 * output slot is its output: the drop leaves it alone.
 */
void px_async_drop(px_future *self);

/** @brief A cleanup registered with PX_DEFER / px_async_defer: `fn(arg)`. */
typedef void (*px_defer_fn)(void *arg);

/**
 * @brief Registers `fn(arg)` to run when the frame finishes or is cancelled
 * (Go's defer, Rust's drop of an owned local).
 *
 * The cleanups run when the function returns (PX_RETURN, PX_FAIL, PX_TRY,
 * PX_END: after the output value was computed, before it is stored), or,
 * if it never does, when the frame is dropped at any await (an aborted
 * task, the loser of a select, a timeout), after the sub-future being
 * awaited was dropped: either way each registered cleanup runs exactly
 * once, newest first. So, as in Rust and Go, an output must not point into
 * what a cleanup releases. The first registration of a frame costs two
 * small allocations, each later one costs one.
 *
 * @return 0; PX_EINVAL when frame or fn is NULL (nothing runs); PX_EDONE
 *         when the frame already finished or was dropped, and PX_ENOMEM
 *         when no memory was left: in these two cases `fn(arg)` has
 *         already run, so the resource is released rather than leaked.
 */
int px_async_defer(px_async *frame, px_defer_fn fn, void *arg);

/**
 * @brief Takes back the newest registration of `fn(arg)` without running it
 * (the resource was handed on, e.g. a stream moved into a spawned task).
 *
 * @return 0; PX_EINVAL when frame or fn is NULL; PX_ENOENT when no such
 *         registration is pending.
 */
int px_async_undefer(px_async *frame, px_defer_fn fn, void *arg);

/**
 * @brief Runs the newest registration of `fn(arg)` now and removes it
 * (release early, e.g. close a connection before a long wait).
 *
 * @return 0; PX_EINVAL when frame or fn is NULL; PX_ENOENT when no such
 *         registration is pending (nothing runs).
 */
int px_async_run_deferred(px_async *frame, px_defer_fn fn, void *arg);

/** @brief A px_defer_fn that calls px_future_drop(arg): a join handle, a sub-future. */
void px_defer_future_drop(void *future);

/** @brief A px_defer_fn that calls free(arg): a buffer from malloc. */
void px_defer_free(void *ptr);

/**
 * @brief Called by the generated switch when a frame resumes at a point it
 * does not contain (PX_BEGIN's `default:`; not meant to be called directly,
 * but public so that code built against the shared library links).
 *
 * That happens when a PX_AWAIT or PX_YIELD sits inside a switch statement of
 * the user's own: its `case` label then belongs to the inner switch, and
 * without this check the function would silently finish with success.
 * Logs an error naming the function and the line, and finishes the frame
 * with PX_EMISUSE.
 */
px_poll px_async_bad_resume(px_future *self);

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
  ((type){.px = {PX_FUTURE_INIT(&type##_vtable)}, __VA_ARGS__})

/** The frame's future header, to hand to px_spawn / block_on / combinators. */
#define PX_FUTURE(frame) (&(frame)->px.base)

#define PX__SET_RESUME(line)                                                  \
  (self->px.base.state =                                                      \
       (self->px.base.state & ~PX_FUTURE_USER_MASK) | (uint32_t)(line))

/**
 * Opens the state machine. The `default:` catches a resume point that is not
 * a case of this switch (an await inside a switch of your own): the frame
 * fails with PX_EMISUSE and an error is logged, instead of skipping to the
 * end and reporting success.
 */
#define PX_BEGIN()                                                            \
  (void)cx;                                                                   \
  switch (self->px.base.state & PX_FUTURE_USER_MASK) {                        \
    default:                                                                  \
      return px_async_bad_resume(&self->px.base);                             \
    case 0:

/** Closes the body of an async function: the last statement of every PX_ASYNC_FN. */
#define PX_END()                                                              \
  }                                                                           \
  px__async_finish(&self->px);                                                \
  self->px.base.error = 0;                                                    \
  return PX_READY

/** Finishes with an output value (a px_value: px_ptr, px_i64, px_u64). */
#define PX_RETURN(value)                                                      \
  do {                                                                        \
    px_value px__ret = (value); /* first: it may read what cleanups free */  \
    px__async_finish(&self->px);                                              \
    self->px.base.output = px__ret;                                           \
    self->px.base.error = 0;                                                  \
    return PX_READY;                                                          \
  } while (0)

/** Finishes with a negative PX_E* error code. */
#define PX_FAIL(err)                                                          \
  do {                                                                        \
    int32_t px__fail = (int32_t)(err);                                        \
    px__async_finish(&self->px);                                              \
    self->px.base.error = px__fail;                                           \
    return PX_READY;                                                          \
  } while (0)

/** Evaluates a synchronous call; a negative result fails the async function. */
#define PX_TRY(expr)                                                          \
  do {                                                                        \
    int px__e = (expr);                                                       \
    if (px__e < 0) PX_FAIL(px__e);                                            \
  } while (0)

/*
 * The one await: polls, suspends while PENDING, then drops the awaited future
 * and runs `store` with px__out (its output) and px__err (its error) in
 * scope. Misuse of the awaited future (NULL, already completed) always fails
 * this function; an error of the future itself does so when `try_` is 1.
 */
#define PX__AWAIT_STORE(expr, try_, store)                                    \
  do {                                                                        \
    px__async_await(&self->px, (expr));                                       \
    PX__SET_RESUME(__LINE__);                                                 \
    PX__FALLTHROUGH;                                                          \
    case __LINE__: {                                                          \
      px_future *px__f = px__async_awaited(&self->px);                        \
      int px__r = px__future_poll(px__f, cx);                                 \
      if (px__r == PX_PENDING) return PX_PENDING;                             \
      int px__err = px__r < 0 ? px__r : (int)px__f->error;                    \
      px_value px__out = px__r < 0 ? px_u64(0) : px__f->output;               \
      (void)px__out;                                                          \
      px__async_await(&self->px, NULL);                                       \
      px__future_drop(px__f);                                                 \
      if (px__r < 0 || ((try_) && px__err < 0)) PX_FAIL(px__err);             \
      store;                                                                  \
    }                                                                         \
  } while (0)

#define PX__AWAIT(expr, try_) PX__AWAIT_STORE(expr, try_, (void)0)

/* px_value -> the type of the destination (see PX_AWAIT_INTO). */
static inline int px__as_bool(px_value v) { return v.u64 != 0; }
static inline int px__as_int(px_value v) { return (int)v.i64; }
static inline unsigned px__as_uint(px_value v) { return (unsigned)v.u64; }
static inline long px__as_long(px_value v) { return (long)v.i64; }
static inline unsigned long px__as_ulong(px_value v) {
  return (unsigned long)v.u64;
}
static inline long long px__as_llong(px_value v) { return (long long)v.i64; }
static inline unsigned long long px__as_ullong(px_value v) {
  return (unsigned long long)v.u64;
}
static inline double px__as_double(px_value v) { return v.f64; }
static inline px_value px__as_value(px_value v) { return v; }
static inline void *px__as_ptr(px_value v) { return v.ptr; }

#ifndef __cplusplus
/*
 * Picks the px_value member that matches the type of `dst`: an integer type
 * reads i64/u64, double reads f64, px_value is copied whole, and any pointer
 * type reads ptr. A type it does not know (a struct, float, a char) ends in
 * the pointer branch and fails to compile, never converts silently.
 */
#define PX__AS(dst)                                                           \
  _Generic((dst),                                                             \
      _Bool: px__as_bool,                                                     \
      int: px__as_int,                                                        \
      unsigned: px__as_uint,                                                  \
      long: px__as_long,                                                      \
      unsigned long: px__as_ulong,                                            \
      long long: px__as_llong,                                                \
      unsigned long long: px__as_ullong,                                      \
      double: px__as_double,                                                  \
      px_value: px__as_value,                                                 \
      default: px__as_ptr)
#endif


/**
 * Awaits a future (an expression giving px_future *, typically an *_init
 * call on a field of self). Afterwards its output and error are in the
 * future's header; the future has been dropped (resources released).
 * Misuse (NULL, an already completed future) fails this function.
 */
#define PX_AWAIT(expr) PX__AWAIT(expr, 0)

/** Awaits, and fails this function with the awaited error if there is one (Rust's `?`). */
#define PX_TRY_AWAIT(expr) PX__AWAIT(expr, 1)

/**
 * @brief Awaits `expr` and stores its result in named places: `let (dst, err)`.
 *
 * `dst` receives the output converted to its own type: an integer type
 * (bytes read, a count: size_t, uint64_t, int, ...) reads the integer, a
 * pointer type (an accepted stream, a string) reads the pointer, double
 * reads the double, px_value takes the whole value (a received message).
 * `err` (an int lvalue) receives 0 or the awaited future's PX_E* error.
 * Both are usually fields of `self`. The awaited future's own error does not
 * fail this function; misuse (NULL, a completed future) does.
 *
 * @code
 * PX_AWAIT_INTO(self->n, self->err, px_tcp_read_init(&self->rd, s, buf, len));
 * if (self->err < 0 || self->n == 0) break;      // error or EOF
 * @endcode
 */
#define PX_AWAIT_INTO(dst, err, expr)                                         \
  PX__AWAIT_STORE(expr, 0, ((dst) = PX__AS(dst)(px__out), (err) = px__err))

/**
 * @brief Awaits `expr`, fails this function with its error if it has one
 * (Rust's `let dst = expr.await?;`), else stores its output in `dst`,
 * converted as PX_AWAIT_INTO does.
 *
 * @code
 * PX_TRY_AWAIT_INTO(self->conn, px_tcp_accept_init(&self->acc, self->l));  // px_tcp_stream *
 * PX_TRY_AWAIT_INTO(self->msg, px_mpsc_recv_init(&self->recv, self->rx));  // px_value / int64_t
 * @endcode
 */
#define PX_TRY_AWAIT_INTO(dst, expr)                                          \
  PX__AWAIT_STORE(expr, 1, ((dst) = PX__AS(dst)(px__out)))

/**
 * @brief Awaits `expr` and stores only its error (0 or a PX_E* code) in
 * `err`, for futures whose output is not needed (a write, a sleep, a lock).
 *
 * @code
 * PX_AWAIT_ERR(self->err, px_tcp_write_all_init(&self->wr, s, buf, n));
 * @endcode
 */
#define PX_AWAIT_ERR(err, expr) PX__AWAIT_STORE(expr, 0, ((err) = px__err))

/**
 * @brief Registers `fn(arg)` to run when this frame finishes or is
 * cancelled (px_async_defer); fails the function with PX_ENOMEM (after
 * running `fn(arg)`) when no memory is left. One line replaces a
 * hand-written drop function:
 *
 * @code
 * PX_TRY_AWAIT_INTO(self->conn, px_tcp_accept_init(&self->acc, self->l));
 * PX_DEFER(close_conn, self->conn);    // static void close_conn(void *s) { px_tcp_close(s); }
 * PX_DEFER(px_defer_future_drop, &self->jh);   // an unjoined handle is detached
 * @endcode
 */
#define PX_DEFER(fn, arg) PX_TRY(px_async_defer(&self->px, (fn), (arg)))

/**
 * @brief Takes back a PX_DEFER registration without running it (ownership
 * moved elsewhere); evaluates to 0 or PX_ENOENT (px_async_undefer).
 */
#define PX_UNDEFER(fn, arg) px_async_undefer(&self->px, (fn), (arg))

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
