/**
 * @file
 * pollux/future.h - futures: polled state machines.
 *
 * A future is any struct whose first member is a px_future. The px_future
 * header points to a vtable (poll, drop, size, name) and carries the output
 * slot: when poll returns PX_READY, the future has stored its result in
 * `output` (a small union, px_value) and its status in `error` (0 or a
 * negative PX_E* code). The slot stays readable after the future is dropped,
 * so whoever awaited a future reads its result from the future itself, the
 * way a Rust caller receives the value of `.await`.
 *
 * Moving: a future may be copied to another address (px_spawn copies it into
 * its task) until it is first polled. After the first poll it must stay where
 * it is, because it may have handed out pointers to itself (Rust's Pin).
 *
 * Always poll and drop through px_future_poll and px_future_drop: they keep
 * the header's done and dropped bits, which turn misuse (polling a completed
 * future, dropping twice) into defined errors instead of undefined behaviour.
 */
#ifndef POLLUX_FUTURE_H
#define POLLUX_FUTURE_H

/** @addtogroup futures
 * @{
 */

#include <stddef.h>
#include <stdint.h>

#include "pollux/context.h"
#include "pollux/errors.h"
#include "pollux/poll.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The output of a future: one machine word, interpreted by agreement. */
typedef union px_value {
  void *ptr; /**< a pointer */
  int64_t i64; /**< a signed integer */
  uint64_t u64; /**< an unsigned integer (byte counts) */
  double f64; /**< a floating-point number */
} px_value;

/** A px_value holding the pointer `p`. */
static inline px_value px_ptr(const void *p) {
  px_value v;
  v.ptr = (void *)(uintptr_t)p;
  return v;
}
/** A px_value holding the signed integer `i`. */
static inline px_value px_i64(int64_t i) {
  px_value v;
  v.i64 = i;
  return v;
}
/** A px_value holding the unsigned integer `u`. */
static inline px_value px_u64(uint64_t u) {
  px_value v;
  v.u64 = u;
  return v;
}

typedef struct px_future px_future;

/** What a kind of future is: its size, its name, and its poll and drop functions. */
typedef struct px_future_vtable {
  /** sizeof the whole future struct; px_spawn copies this many bytes. */
  size_t size;
  /** A short name for logs and traces ("sleep", "tcp_read", "say_after"). */
  const char *name;
  /**
   * Advances the state machine. Returns PX_READY after storing the result in
   * self->output / self->error, or PX_PENDING after arranging for
   * cx->waker to be woken. Never called again once it returned PX_READY.
   */
  px_poll (*poll)(px_future *self, px_context *cx);
  /**
   * Releases everything the future holds (timer entries, reactor
   * registrations, sub-futures, wakers) whether or not it completed. Called
   * at most once. May be NULL when there is nothing to release. Must leave
   * output and error untouched.
   */
  void (*drop)(px_future *self);
} px_future_vtable;

/** Bits of px_future.state that px_future_poll / px_future_drop own. */
#define PX_FUTURE_DONE 0x80000000u    /**< poll returned PX_READY */
#define PX_FUTURE_DROPPED 0x40000000u /**< drop ran */
/**
 * px_future_poll ran at least once: the future may hold pointers into
 * itself from then on, so it must not be moved (px_spawn refuses it with
 * PX_EINVAL).
 */
#define PX_FUTURE_POLLED 0x20000000u
/** The low 29 bits are the future's own (the async macros keep the resume point there). */
#define PX_FUTURE_USER_MASK 0x1fffffffu

/** The header every future starts with: its vtable, its output slot and its state bits. */
struct px_future {
  const px_future_vtable *vtable; /**< what the future is: poll, drop, size, name */
  px_value output; /**< valid once READY */
  int32_t error;   /**< 0 or a negative PX_E* code, valid once READY */
  uint32_t state;  /**< PX_FUTURE_DONE | PX_FUTURE_DROPPED | PX_FUTURE_POLLED | user bits */
};

/** Initialises the header of a future about to be constructed. */
static inline void px_future_init(px_future *f, const px_future_vtable *vt) {
  f->vtable = vt;
  f->output.u64 = 0;
  f->error = 0;
  f->state = 0;
}

/** A static initialiser for a future header with vtable `vt` (what px_future_init does at run time). */
#define PX_FUTURE_INIT(vt) {(vt), {0}, 0, 0}

/**
 * Polls a future. Returns PX_READY or PX_PENDING, or a negative code when the
 * call itself is wrong: PX_EINVAL for a NULL future, context or vtable, and
 * PX_EDONE for a future that already completed or was dropped (its output is
 * left as it was and its poll function is not called).
 */
int px_future_poll(px_future *f, px_context *cx);

/**
 * Drops a future: runs its drop function once; later calls do nothing.
 * NULL is accepted and ignored. The output slot stays readable.
 */
void px_future_drop(px_future *f);

/**
 * The poll itself, for a caller that knows what px__future_poll checks to
 * hold: an executor polling a task's future (px_spawn checked the vtable;
 * the task's state never lets a finished future be polled). Internal.
 */
static inline px_poll px__future_poll_unchecked(px_future *f, px_context *cx) {
  /* Set before the call: the future may hand out pointers to itself during
   * it, and from then on must not be moved (px_spawn checks the bit). */
  f->state |= PX_FUTURE_POLLED;
  px_poll r = f->vtable->poll(f, cx);
  if (r == PX_READY) f->state |= PX_FUTURE_DONE;
  return r;
}

/**
 * px_future_poll and px_future_drop, inline, with the same checks and the
 * same answers: what PX_AWAIT and the executors call, once per await and
 * per task poll, where the call into the library was a tenth of the
 * future's own cost. Internal (px__): programs call the two functions.
 */
static inline int px__future_poll(px_future *f, px_context *cx) {
  if (f == NULL || cx == NULL || f->vtable == NULL || f->vtable->poll == NULL)
    return PX_EINVAL;
  if (f->state & (PX_FUTURE_DONE | PX_FUTURE_DROPPED)) return PX_EDONE;
  return (int)px__future_poll_unchecked(f, cx);
}

static inline void px__future_drop(px_future *f) {
  if (f == NULL || f->vtable == NULL || (f->state & PX_FUTURE_DROPPED)) return;
  f->state |= PX_FUTURE_DROPPED;
  if (f->vtable->drop != NULL) f->vtable->drop(f);
}

/** True once the future returned PX_READY. */
static inline int px_future_is_done(const px_future *f) {
  return f != NULL && (f->state & PX_FUTURE_DONE) != 0;
}

/* ---- Small futures every program needs ------------------------------ */

/** A future that is immediately READY with the given output. */
typedef struct px_ready {
  px_future base; /**< the future header (must be first) */
  px_value value; /**< private: the output to give */
  int32_t err; /**< private: the error to give */
} px_ready;
/** Initialises a ready future with output `value` and error `err`; returns its header. */
px_future *px_ready_init(px_ready *f, px_value value, int err);

/**
 * Yields once to the scheduler (tokio::task::yield_now): the first poll wakes
 * itself and returns PENDING, so every other ready task runs before this one
 * continues.
 */
typedef struct px_yield {
  px_future base; /**< the future header (must be first) */
} px_yield;
/** Initialises a yield and returns its future. */
px_future *px_yield_init(px_yield *f);

/**
 * Waits for all of `n` futures (tokio::join!). Outputs stay in each future, in
 * argument order. If `order` is not NULL, order[k] receives the index of the
 * k-th future to complete, so callers can report completion order. The join's
 * own output is n and its error is 0; the futures' errors are their own.
 * The futures array must outlive the join; the join owns the futures from
 * its first poll and drops each one when the join is dropped.
 */
typedef struct px_join {
  px_future base; /**< the future header (must be first) */
  px_future *const *futures; /**< private: the futures, owned from the first poll */
  size_t n; /**< private: how many */
  size_t completed; /**< private: how many completed */
  size_t *order; /**< private: completion order, may be NULL */
  px_future *few[3]; /**< private: the futures of px_join2_init / px_join3_init */
} px_join;
/** Initialises a join of the `n` futures (order may be NULL) and returns its future. */
px_future *px_join_init(px_join *f, px_future *const *futures, size_t n,
                        size_t *order);

/**
 * @brief tokio::join!(a, b) without an array: waits for both futures.
 *
 * The two pointers are kept inside `f` itself, so `f` must not be moved
 * once initialised (initialise it in place, as every *_init call inside
 * PX_AWAIT does). Outputs stay in each future; the join's output is 2.
 * A NULL future counts as already finished.
 *
 * @code
 * PX_AWAIT(px_join2_init(&self->both, PX_FUTURE(&self->a), PX_FUTURE(&self->b)));
 * @endcode
 *
 * @return &f->base, or NULL when f is NULL (awaiting NULL fails with PX_EINVAL).
 */
px_future *px_join2_init(px_join *f, px_future *a, px_future *b);

/** @brief px_join2_init for three futures (the join's output is 3). */
px_future *px_join3_init(px_join *f, px_future *a, px_future *b, px_future *c);

/**
 * Waits for the first of `n` futures to finish (tokio::select!): the winner's
 * output and error become the select's own, `index` says which one won, and
 * every other future is dropped at once.
 *
 * Fair by default, as tokio::select! is: each poll starts at a random index
 * and wraps around, so in a loop an always-ready first future cannot starve
 * the others. px_select_biased makes a select poll in index order (tokio's
 * `biased;`), so a lower index wins a tie.
 */
typedef struct px_select {
  px_future base; /**< the future header (must be first) */
  px_future *const *futures; /**< private: the futures, owned from the first poll */
  size_t n; /**< private: how many */
  size_t index; /**< the winner's index, once READY */
  int biased; /**< set by px_select_biased: poll in index order */
  px_future *few[3]; /**< private: the futures of px_select2_init / px_select3_init */
} px_select;
/** Initialises a select over the `n` futures and returns its future. */
px_future *px_select_init(px_select *f, px_future *const *futures, size_t n);

/**
 * @brief tokio::select! over two futures without an array.
 *
 * The first of `a` and `b` to finish decides: its output and error become
 * the select's, `f->index` is 0 for `a` and 1 for `b`, and the other future
 * is dropped at once. The two pointers live inside `f`, so `f` must not be
 * moved once initialised. A NULL future counts as already finished; with
 * neither left the select fails with PX_EINVAL.
 *
 * @code
 * PX_AWAIT(px_select2_init(&self->sel, PX_FUTURE(&self->recv), PX_FUTURE(&self->nap)));
 * if (self->sel.index == 1) puts("timed out");
 * @endcode
 *
 * @return &f->base, or NULL when f is NULL.
 */
px_future *px_select2_init(px_select *f, px_future *a, px_future *b);

/** @brief px_select2_init for three futures (`f->index` is 0, 1 or 2). */
px_future *px_select3_init(px_select *f, px_future *a, px_future *b,
                           px_future *c);

/**
 * @brief Makes a select poll its futures in index order (tokio's `biased;`).
 *
 * Takes the future that px_select_init, px_select2_init or px_select3_init
 * returned and returns it, so it wraps the init call in place:
 * `PX_AWAIT(px_select_biased(px_select2_init(&self->sel, shutdown, work)))`
 * always checks `shutdown` first. Use it when one branch must take priority
 * and you accept that it can starve the others.
 *
 * @return `select`, or NULL when it is NULL or not a select that has not
 *         been polled yet (awaiting NULL fails with PX_EINVAL).
 */
px_future *px_select_biased(px_future *select);

/**
 * join_all (futures::future::join_all): px_join under the name other
 * runtimes use for "wait for every one of n futures". Same struct, same
 * behaviour, same output; the alias exists so the name can be found.
 */
typedef px_join px_join_all;
/** The same as px_join_init. */
px_future *px_join_all_init(px_join_all *f, px_future *const *futures,
                            size_t n, size_t *order);

/**
 * Waits for the first of `n` futures to finish *successfully* (error 0),
 * like futures::future::select_ok or JavaScript's Promise.any: the winner's
 * output becomes the race's own, `index` says which one won, and every
 * other future is dropped at once. A future that fails is dropped and
 * ignored while others are still running; when all have failed, the race
 * fails with the error of the last one to fail (and `index` names it).
 *
 * The difference from px_select: select ends with the first future to
 * finish, success or failure, so one fast failure decides it; race lets the
 * others keep trying (hedged requests: ask three replicas, take the first
 * answer that worked). `failed` counts the futures that failed. Futures are
 * polled in index order, so a lower index wins a tie. With no future left
 * that could finish the race fails with PX_EINVAL. The futures array must
 * outlive the race; the race owns the futures from its first poll.
 */
typedef struct px_race {
  px_future base; /**< the future header (must be first) */
  px_future *const *futures; /**< private: the futures, owned from the first poll */
  size_t n; /**< private: how many */
  size_t index;  /**< the winner, or the last to fail; (size_t)-1 before */
  size_t failed; /**< how many futures failed */
} px_race;
/** Initialises a race of the `n` futures and returns its future. */
px_future *px_race_init(px_race *f, px_future *const *futures, size_t n);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_FUTURE_H */
