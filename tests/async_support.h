/*
 * Async functions for tests/async_test.cc (the macros are C): the await-into
 * forms, PX_DEFER, select2 in a loop, misuse of the macros, the cooperative
 * budget on every leaf, and the owned argument of spawn_blocking.
 */
#ifndef POLLUX_TESTS_ASYNC_SUPPORT_H
#define POLLUX_TESTS_ASYNC_SUPPORT_H

#include "api/internal/px_internal.h"
#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- PX_AWAIT_INTO / PX_TRY_AWAIT_INTO / PX_AWAIT_ERR -------------------- */

/* Awaits ready futures of each kind into typed fields; with fail_try set, a
 * PX_TRY_AWAIT_INTO of a failing future ends it before `after` is set. */
typedef struct {
  px_async px;
  int fail_try;
  px_ready r;
  size_t n;
  const char *s;
  px_value v;
  int i;
  double d;
  int64_t i64;
  int err, err2, err3, err4;
  int after;
} into_probe;
px_future *into_probe_new(into_probe *f, int fail_try);

/* PX_AWAIT_INTO of NULL (an *_init given a NULL frame): misuse fails it. */
typedef struct {
  px_async px;
  size_t n;
  int err;
  int after;
} into_null;
px_future *into_null_new(into_null *f);

/* Real futures: a pipe read into size_t (bytes read) and a string buffer,
 * an accept into px_tcp_stream *, an mpsc recv into int64_t. */
typedef struct {
  px_async px;
  px_stream *r, *w;
  px_tcp_listener *l;
  px_mpsc_receiver *rx;
  px_tcp_io io;
  px_tcp_accept acc;
  px_tcp_connect con;
  px_mpsc_recv recv;
  char buf[16];
  size_t n;
  int err;
  px_tcp_stream *accepted, *client;
  int64_t got;
} into_io;
px_future *into_io_new(into_io *f, px_stream *r, px_stream *w,
                       px_tcp_listener *l, px_mpsc_receiver *rx);

/* ---- PX_DEFER ------------------------------------------------------------ */

/* Records the order cleanups ran in: log[len++] = id. */
typedef struct {
  px__atomic(int) len;
  int log[8];
} defer_log;

/* A cleanup argument: bumps *count and appends id to *log. */
typedef struct {
  px__atomic(int) count;
  int id;
  defer_log *log;
} defer_counter;
void defer_count(void *counter);

/* Registers cleanups for a, b and a malloc'd buffer, then sleeps `delay`;
 * with undefer_b set it takes b back, with early_a it runs a at once. */
typedef struct {
  px_async px;
  defer_counter *a, *b;
  int undefer_b, early_a;
  px_duration delay;
  char *buf;
  px_sleep nap;
  int undefer_rc, undefer_again_rc;
} deferrer;
px_future *deferrer_new(deferrer *f, defer_counter *a, defer_counter *b,
                        px_duration delay);

/* Registers a cleanup for `a`, then finishes (without awaiting anything)
 * with a->count + 100, read in the return expression, or, with `fail`,
 * fails with PX_EIO. Its cleanup must have run when it is READY. */
typedef struct {
  px_async px;
  defer_counter *a;
  int fail;
} defer_return;
px_future *defer_return_new(defer_return *f, defer_counter *a, int fail);

/* ---- select2 in a loop ---------------------------------------------------- */

/* n rounds of select2(recv rx1, recv rx2) over two channels that always have
 * values: counts the wins of each (tokio's default select is fair). */
typedef struct {
  px_async px;
  px_mpsc_receiver *rx1, *rx2;
  int n, i, biased;
  int wins[2];
  px_mpsc_recv r1, r2;
  px_select sel;
} select_loop;
px_future *select_loop_new(select_loop *f, px_mpsc_receiver *rx1,
                           px_mpsc_receiver *rx2, int n, int biased);

/* ---- misuse ---------------------------------------------------------------- */

/* A PX_AWAIT inside a switch of its own: must fail with PX_EMISUSE at its
 * first resume, `after` never set. */
typedef struct {
  px_async px;
  int mode;
  px_sleep nap;
  int after;
} switch_misuse;
px_future *switch_misuse_new(switch_misuse *f);

/* Calls px_run from inside a runtime; returns what it said. */
typedef struct {
  px_async px;
  px_ready inner;
} nested_run;
px_future *nested_run_new(nested_run *f);

/* ---- cooperative budget ------------------------------------------------------ */

typedef enum {
  COOP_MPSC_SEND,    /* unbounded channel: always room */
  COOP_BOUNDED_SEND, /* bounded, drained by try_recv: always room */
  COOP_ONESHOT,      /* a fresh oneshot sent before each recv */
  COOP_MUTEX,        /* lock + unlock of an uncontended mutex */
  COOP_SEMAPHORE,    /* acquire + release */
  COOP_NOTIFY,       /* notify_one + notified (a stored permit) */
  COOP_WATCH,        /* send + changed */
  COOP_SLEEP_DUE,    /* a sleep whose deadline has passed */
  COOP_JOIN,         /* join of a task that already finished */
  COOP_SCOPE_NEXT,   /* scope join_next of a child that already finished */
  COOP_SCOPE_JOIN,   /* scope join of a scope with no live child */
  COOP_CANCELLED,    /* cancelled of a token cancelled before the loop */
  COOP_BUF_LINE,     /* read_line served from the reader's buffer */
  COOP_BUF_EXACT,    /* read_exact served from the reader's buffer */
  COOP_BUF_STREAM,   /* px_stream_read of a buffered reader's stream */
  COOP_BUF_WRITE,    /* px_stream_write into a buffered writer's buffer */
  COOP_FRAME_WRITE,  /* px_frame_write into a buffered writer's buffer */
  COOP_KINDS
} coop_kind;

/* Runs n operations of `kind` that are all ready at once; counts, in seen,
 * how many times *ticks moved meanwhile (other tasks got a turn). Children
 * for COOP_JOIN are spawned and finished before the loop starts. */
typedef struct {
  px_async px;
  coop_kind kind;
  int n, i;
  px__atomic(int) *ticks;
  int last, seen;
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  px_oneshot_sender *otx;
  px_oneshot_receiver *orx;
  px_mutex *m;
  px_semaphore *sem;
  px_notify *note;
  px_watch_sender *wtx;
  px_watch_receiver *wrx;
  px_join_handle *handles;
  px_scope scope;
  px_cancel_token *token;
  px_buf_reader *reader; /* over a pipe holding all n records at once */
  px_buf_writer *writer; /* over a pipe, with room for all n writes */
  px_stream *pipe_end;   /* the pipe's other end */
  char line[8];
  px_sleep nap;
  px_yield yield;
  union {
    px_mpsc_send send;
    px_oneshot_recv orecv;
    px_mutex_lock lock;
    px_semaphore_acquire acq;
    px_notified notified;
    px_watch_changed changed;
    px_sleep due;
    px_scope_join_next next;
    px_scope_join sjoin;
    px_cancelled cancelled;
    px_buf_io bio;
    px_stream_io sio;
    px_frame_write fw;
  } op;
} coop_looper;
px_future *coop_looper_new(coop_looper *f, coop_kind kind, int n,
                           px__atomic(int) *ticks);
void coop_looper_free(coop_looper *f);

/* Spawns n children into a scope, lets them finish, then, with the budget
 * spent, reaps them with join_next: the scope's own polls of the children's
 * join handles must not answer PENDING for the budget (they did, and the
 * reap loop polled again at once, forever). Returns how many it reaped. */
typedef struct {
  px_async px;
  int n, i, found;
  px_scope scope;
  px_sleep nap;
  px_scope_join_next next;
} scope_reap_spent;
px_future *scope_reap_spent_new(scope_reap_spent *f, int n);

/* For `ms` milliseconds, sends into an always-ready channel (draining it
 * itself with try_recv); returns the number sent. */
typedef struct {
  px_async px;
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  px_instant until;
  int64_t sent;
  px_mpsc_send send;
  px__atomic(int) *stop;
} busy_sender;
px_future *busy_sender_new(busy_sender *f, px_mpsc_sender *tx,
                           px_mpsc_receiver *rx, uint64_t ms,
                           px__atomic(int) *stop);

/* A 1 ms interval until *stop: records in *worst_ns the largest lateness of
 * a tick (how long after it was due it was polled); returns the number of
 * ticks. (Spawning copies the frame, so results go out through pointers.) */
typedef struct {
  px_async px;
  px__atomic(int) *stop;
  uint64_t *worst_ns;
  px_interval iv;
  int64_t ticks;
} late_ticker;
px_future *late_ticker_new(late_ticker *f, px__atomic(int) *stop,
                           uint64_t *worst_ns);

/* The block_on future of the connect-flood test: accepts n connections and
 * spawns a handler for each; the handler records, in *first_seen (once),
 * how many connections had been accepted when it first ran, and closes its
 * connection. */
typedef struct {
  px_async px;
  px_tcp_listener *l;
  int n, i;
  px__atomic(int) *accepted, *first_seen, *served;
  px_tcp_stream *conn;
  px_tcp_accept acc;
} accept_loop;
px_future *accept_loop_new(accept_loop *f, px_tcp_listener *l, int n,
                           px__atomic(int) *accepted,
                           px__atomic(int) *first_seen,
                           px__atomic(int) *served);

#ifdef __cplusplus
}
#endif

#endif
