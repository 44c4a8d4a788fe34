/*
 * The server helper (pollux/serve.h).
 *
 * px_serve is one hand-written future over sub-futures it keeps in its own
 * struct: the shutdown watchers (a px_cancelled, a px_signal_recv), the
 * pause after an accept error (a px_sleep), the cap (a px_semaphore_acquire)
 * and the accept. A sub-future is "armed" from its init until it is
 * dropped; each poll of the server polls what is armed, in that order, so
 * the shutdown is seen first and a pause or a full cap keeps the accept
 * from running at all (a client over the cap waits in the kernel's
 * backlog, not in the server's memory).
 *
 * Each connection runs as a conn_task: a fixed-size future that owns a heap
 * copy of the user's future (its size is only known at run time, and a task
 * copies vtable->size bytes), the stream, a reference to the stop token and
 * to the shared block that holds the cap. When the user's future
 * completes, the conn_task drops it and lingers (see struct lingering); when
 * the linger ends, or the task is dropped, it closes the stream and gives
 * the permit back: the permit is tied to the task's life, not to the server's,
 * which may be gone by then (a dropped server aborts its scope; the aborted
 * children are dropped later, on the runtime's thread). Hence the shared
 * block is reference counted.
 */
#include <stdatomic.h>
#include <string.h>

#include "api/internal/px_internal.h"
#include "observe/observe.h"
#include "pollux/serve.h"
#include "scope/scope_internal.h"

/* The pause after an accept error: from the first to the last, doubling. */
#define PAUSE_FIRST px_ms(5)
#define PAUSE_LAST px_secs(1)

enum phase { START, ACCEPTING, DRAINING, DONE };

/* What accept_loop answers when it has to wait (its errors are < 0). */
#define WAIT 1

/* Finished connections the server lets accumulate before it reaps them
 * (frees their tasks) while no new connection comes to do it. */
#define REAP_EVERY 8

struct px__serve_shared {
  atomic_size_t refs;    /* the server's, and one per live connection */
  px_semaphore *permits; /* the cap; NULL when there is none */
};

static void shared_release(px__serve_shared *sh) {
  if (sh == NULL) return;
  if (atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) != 1) return;
  if (sh->permits != NULL) px_semaphore_free(sh->permits);
  px__free(sh, sizeof *sh);
}

/* ---- one connection --------------------------------------------------- */

/* Discarding reads per poll while lingering: a client that keeps sending
 * must not hold the thread. */
#define LINGER_READS 16

/* A lingering close (nginx's lingering_close): after the connection's
 * future completes, the server ends the write side (FIN) and reads and
 * discards what the client still sends, until its end of stream, an error
 * or PX_SERVE_LINGER, and only then closes. Closing at once with unread
 * input makes the kernel send a reset, which can destroy answers the
 * client has not read yet. Allocated only when lingering begins: idle connections pay
 * one pointer for it. */
typedef struct lingering {
  px_stream_io io; /* the shutdown, then the reads */
  px_sleep limit;
  int shut;
  unsigned char buf[512];
} lingering;

typedef struct conn_task {
  px_future base;
  px_future *inner; /* the user's future (a heap copy); NULL once done */
  lingering *linger; /* NULL until the user's future completes */
  px_stream *stream;
  px_cancel_token *stop; /* a reference */
  px__serve_shared *shared;
  int ended; /* conn_end ran */
} conn_task;

static int armed(const px_future *f) {
  return f->vtable != NULL && (f->state & PX_FUTURE_DROPPED) == 0;
}

/* Drops `f` if armed; it stays disarmed until its next init. */
static void disarm(px_future *f) {
  if (armed(f)) px__future_drop(f);
}

static void drop_inner(conn_task *t) {
  if (t->inner == NULL) return;
  px__future_drop(t->inner);
  px__free(t->inner, t->inner->vtable->size);
  t->inner = NULL;
}

/* Everything a connection holds, released once, whichever way it ends
 * (completed, lingered, or dropped: then at once, with no lingering). The
 * futures go first: their drop may still use the stream. */
static void conn_end(px_future *self) {
  conn_task *t = (conn_task *)self;
  if (t->ended) return;
  t->ended = 1;
  drop_inner(t);
  if (t->linger != NULL) {
    disarm(&t->linger->io.base);
    disarm(&t->linger->limit.base);
    px__free(t->linger, sizeof *t->linger);
    t->linger = NULL;
  }
  px_stream_close(t->stream);
  px_cancel_token_drop(t->stop);
  px__serve_shared *sh = t->shared;
  if (sh->permits != NULL) px_semaphore_release(sh->permits, 1);
  shared_release(sh);
}

/* One step of `f` (a shutdown or a read), dropped once done: PX_PENDING,
 * its error (< 0), or PX_READY with what it moved in *moved. */
static int io_step(px_future *f, px_context *cx, uint64_t *moved) {
  int r = px__future_poll(f, cx);
  if (r == PX_PENDING) return PX_PENDING;
  int err = r < 0 ? r : f->error;
  *moved = f->output.u64;
  px__future_drop(f);
  return err < 0 ? err : PX_READY;
}

/* Lingers (see struct lingering): PX_PENDING until the client's end of
 * stream, an error or the limit; the grace deadline of a drain drops the
 * task, and so ends a linger too. */
static px_poll linger_poll(conn_task *t, px_context *cx) {
  lingering *lg = t->linger;
  if (px__future_poll(&lg->limit.base, cx) != PX_PENDING) return PX_READY;
  uint64_t n = 0;
  if (!lg->shut) {
    int r = io_step(&lg->io.base, cx, &n);
    if (r == PX_PENDING) return PX_PENDING;
    if (r < 0) return PX_READY;
    lg->shut = 1;
    px_stream_read_init(&lg->io, t->stream, lg->buf, sizeof lg->buf);
  }
  for (int i = 0; i < LINGER_READS; i++) {
    int r = io_step(&lg->io.base, cx, &n);
    if (r == PX_PENDING) return PX_PENDING;
    if (r < 0 || n == 0) return PX_READY;
    px_stream_read_init(&lg->io, t->stream, lg->buf, sizeof lg->buf);
  }
  px_waker_wake_by_ref(cx->waker); /* more to discard: after the others */
  return PX_PENDING;
}

static px_poll conn_poll(px_future *self, px_context *cx) {
  conn_task *t = (conn_task *)self;
  if (t->inner != NULL) {
    int r = px__future_poll(t->inner, cx);
    if (r == PX_PENDING) return PX_PENDING;
    self->output = t->inner->output;
    self->error = r < 0 ? r : t->inner->error;
    drop_inner(t);
    /* Without the memory to linger, close at once (as a drop does). */
    t->linger = px__alloc(sizeof *t->linger);
    if (t->linger != NULL) {
      t->linger->shut = 0;
      px_sleep_init(&t->linger->limit, PX_SERVE_LINGER);
      px_stream_shutdown_init(&t->linger->io, t->stream);
    }
  }
  if (t->linger != NULL && linger_poll(t, cx) == PX_PENDING) return PX_PENDING;
  conn_end(self);
  return PX_READY;
}

static const px_future_vtable conn_vtable = {sizeof(conn_task), "serve_conn",
                                             conn_poll, conn_end};

int px_serve_spawn(px_serve_conn *c, const px_future *future) {
  if (c == NULL || c->server == NULL || c->spawned || future == NULL ||
      future->vtable == NULL || future->vtable->poll == NULL ||
      future->vtable->size < sizeof(px_future) ||
      (future->state & PX_FUTURE_POLLED) != 0)
    return PX_EINVAL;
  px_serve *srv = c->server;
  size_t size = future->vtable->size;
  px_future *copy = px__alloc(size);
  if (copy == NULL) return PX_ENOMEM;
  memcpy(copy, future, size);
  conn_task t;
  px_future_init(&t.base, &conn_vtable);
  t.inner = copy;
  t.linger = NULL;
  t.ended = 0;
  t.stream = c->stream;
  /* The task's references, taken before it exists: on a multi-threaded
   * executor it may run, and end, before the spawn returns. */
  t.stop = px_cancel_token_clone(srv->stop);
  t.shared = srv->shared;
  atomic_fetch_add_explicit(&t.shared->refs, 1, memory_order_relaxed);
  int rc = px_scope_spawn_detached(&srv->conns, &t.base);
  if (rc < 0) {
    px__free(copy, size);
    px_cancel_token_drop(t.stop);
    shared_release(t.shared); /* the server holds another: never the last */
    return rc;
  }
  c->spawned = 1;
  return 0;
}

/* ---- the server --------------------------------------------------------- */

/* Errors that no pause cures: the listener or the runtime is unusable. */
static int fatal(int err) {
  return err == PX_EINVAL || err == PX_EBADF || err == PX_ENOTSUP ||
         err == PX_ENORUNTIME || err == PX_ESHUTDOWN;
}

static int start(px_serve *s) {
  if (s->listener == NULL || s->opts.conn == NULL ||
      s->opts.max_connections > PX_SEMAPHORE_MAX_PERMITS)
    return PX_EINVAL;
  px__serve_shared *sh = px__alloc(sizeof *sh);
  if (sh == NULL) return PX_ENOMEM;
  atomic_init(&sh->refs, 1);
  sh->permits = NULL;
  s->shared = sh;
  if (s->opts.max_connections > 0) {
    int rc = px_semaphore_new(&sh->permits, s->opts.max_connections);
    if (rc < 0) return rc;
  }
  return px_cancel_token_new(&s->stop);
}

/* True once a shutdown was asked for (the token, or a signal). */
static int shutdown_asked(px_serve *s, px_context *cx) {
  if (s->opts.shutdown != NULL) {
    if (!armed(&s->shutdown.base)) px_cancelled_init(&s->shutdown, s->opts.shutdown);
    if (px__future_poll(&s->shutdown.base, cx) != PX_PENDING) return 1;
  }
  if (s->opts.signals != NULL) {
    if (!armed(&s->signal.base)) px_signal_recv_init(&s->signal, s->opts.signals);
    int r = px__future_poll(&s->signal.base, cx);
    if (r != PX_PENDING) {
      /* A signal stream that fails cannot deliver one: stop watching it
       * rather than shut down or poll it again and again. */
      if (r == PX_READY && s->signal.base.error == 0) {
        PX__LOG(PX__LOG_INFO,
                "serve: signal %lld: shutting down, connections get %llu ms "
                "(a second signal cancels them at once)",
                (long long)s->signal.base.output.i64,
                (unsigned long long)(s->opts.grace / px_ms(1)));
        return 1;
      }
      PX__LOG(PX__LOG_WARN, "serve: signals: %s; no longer watched",
              px_strerror(r < 0 ? r : s->signal.base.error));
      disarm(&s->signal.base);
      s->opts.signals = NULL;
    }
  }
  return 0;
}

/* The accepted stream as the connection will see it: under a deadline
 * stream when the options ask for deadlines. On error it is left as it was. */
static int with_deadlines(px_serve *s, px_stream **stream) {
  const px_serve_opts *o = &s->opts;
  if (o->idle_timeout == 0 && o->read_timeout == 0 && o->write_timeout == 0) return 0;
  px_deadline_stream *d;
  int rc = px_deadline_stream_new(*stream, &d);
  if (rc < 0) return rc;
  px_deadline_stream_set_idle_timeout(d, o->idle_timeout);
  px_deadline_stream_set_read_timeout(d, o->read_timeout);
  px_deadline_stream_set_write_timeout(d, o->write_timeout);
  *stream = px_deadline_stream_stream(d);
  return 0;
}

/* Frees the tasks of connections that ended (the scope keeps them until
 * reaped; a join_next reaps, and finds nothing: the children are
 * detached). A finished task stays in the scope until reaped, which the
 * next spawn does; with no new connection coming, the scope wakes the
 * server once REAP_EVERY connections' tasks completed, so memory follows
 * the live connections. Counting completions rather than the connections'
 * ends (which come inside a task's last poll, a moment before it completes)
 * means a reap never finds a task that ended but cannot be freed yet, which
 * on a multi-threaded executor it would have had to poll for. */
static void reap(px_serve *s, px_context *cx) {
  px_scope_join_next next;
  px__future_poll(px_scope_join_next_init(&next, &s->conns), cx);
  px__future_drop(&next.base);
  if (px__scope_watch(&s->conns, cx, REAP_EVERY) != 0)
    px_waker_wake_by_ref(cx->waker);
}

/* One accepted connection, to the constructor. */
static void hand_over(px_serve *s, px_stream *stream) {
  px_serve_conn c = {stream, s->stop, s->opts.arg, s, 0};
  int rc = with_deadlines(s, &c.stream);
  if (rc == 0) rc = s->opts.conn(&c);
  if (c.spawned) {
    s->have_permit = 0; /* the connection gives it back when it ends */
    return;
  }
  /* Not spawned: the connection is gone, and its permit is the next one's. */
  s->conn_errors++;
  PX__LOG(PX__LOG_WARN, "serve: connection not started: %s",
          px_strerror(rc < 0 ? rc : PX_EINVAL));
  px_stream_close(c.stream); /* the constructor may have wrapped it */
}

/* Accepts until something must wait (1) or a fatal error (< 0).
 * The loop ends under a flood too: the acquire, the accept and a due sleep
 * each spend the task's cooperative budget, and answer PENDING when it is
 * gone. */
static int accept_loop(px_serve *s, px_context *cx) {
  for (;;) {
    if (armed(&s->pause.base)) {
      if (px__future_poll(&s->pause.base, cx) == PX_PENDING) return WAIT;
      disarm(&s->pause.base);
    }
    px_semaphore *permits = s->shared->permits;
    if (permits != NULL && !s->have_permit) {
      if (!armed(&s->acquire.base)) px_semaphore_acquire_init(&s->acquire, permits, 1);
      int r = px__future_poll(&s->acquire.base, cx);
      if (r == PX_PENDING) return WAIT;
      int err = r < 0 ? r : s->acquire.base.error;
      disarm(&s->acquire.base);
      if (err < 0) return err; /* cannot happen: nobody closes it */
      s->have_permit = 1;
    }
    if (!armed(&s->accept.base)) px_tcp_accept_init(&s->accept, s->listener);
    int r = px__future_poll(&s->accept.base, cx);
    if (r == PX_PENDING) return WAIT;
    int err = r < 0 ? r : s->accept.base.error;
    px_stream *stream = s->accept.base.output.ptr;
    disarm(&s->accept.base);
    if (err < 0) {
      if (fatal(err)) return err;
      s->accept_errors++;
      s->backoff = s->backoff == 0 ? PAUSE_FIRST : s->backoff * 2;
      if (s->backoff > PAUSE_LAST) s->backoff = PAUSE_LAST;
      PX__LOG(PX__LOG_WARN, "serve: accept: %s; pausing %llu ms", px_strerror(err),
              (unsigned long long)(s->backoff / px_ms(1)));
      px_sleep_init(&s->pause, s->backoff);
      continue;
    }
    s->backoff = 0;
    s->accepted++;
    hand_over(s, stream);
  }
}

/* Stops accepting: new clients are refused from here on. */
static void stop_accepting(px_serve *s) {
  disarm(&s->shutdown.base);
  disarm(&s->pause.base);
  disarm(&s->acquire.base);
  disarm(&s->accept.base);
  px_tcp_listener_close(s->listener);
  s->listener = NULL;
  if (s->have_permit) px_semaphore_release(s->shared->permits, 1);
  s->have_permit = 0;
}

/* Starts the drain: live connections are told to stop and get the grace
 * period. */
static void begin_drain(px_serve *s) {
  stop_accepting(s);
  px_cancel_token_cancel(s->stop);
  px_scope_shutdown_init(&s->drain, &s->conns, s->opts.grace);
  s->phase = DRAINING;
  /* The signals stay watched: a second one ends the grace (see cut_short). */
  disarm(&s->signal.base);
  if (s->opts.signals != NULL) px_signal_recv_init(&s->signal, s->opts.signals);
}

/* During the drain: a second signal cancels the connections still running
 * now rather than at the grace deadline (the operator pressed Ctrl-C
 * twice, or a supervisor escalates). */
static void cut_short(px_serve *s, px_context *cx) {
  if (!armed(&s->signal.base)) return;
  int r = px__future_poll(&s->signal.base, cx);
  if (r == PX_PENDING) return;
  if (r == PX_READY && s->signal.base.error == 0) {
    PX__LOG(PX__LOG_INFO, "serve: signal %lld during the drain: cancelling "
            "the connections still running",
            (long long)s->signal.base.output.i64);
    (void)px_scope_shutdown_now(&s->drain);
  }
  disarm(&s->signal.base);
}

/* Releases everything the server holds; safe at any phase, once. Dropping
 * the scope aborts the connections still running. */
static void serve_drop(px_future *self) {
  px_serve *s = (px_serve *)self;
  stop_accepting(s);
  disarm(&s->signal.base);
  disarm(&s->drain.base);
  px_scope_drop(&s->conns);
  if (s->stop != NULL) {
    px_cancel_token_cancel(s->stop);
    px_cancel_token_drop(s->stop);
    s->stop = NULL;
  }
  shared_release(s->shared);
  s->shared = NULL;
  s->phase = DONE;
}

static px_poll serve_poll(px_future *self, px_context *cx) {
  px_serve *s = (px_serve *)self;
  if (s->phase == START) {
    int err = start(s);
    if (err < 0) {
      serve_drop(self);
      self->error = err;
      return PX_READY;
    }
    s->phase = ACCEPTING;
  }
  if (s->phase == ACCEPTING) {
    if (!shutdown_asked(s, cx)) {
      int err = accept_loop(s, cx);
      if (err == WAIT) {
        reap(s, cx); /* after the spawns: it counts them for the watch */
        return PX_PENDING;
      }
      s->err = err;
    }
    begin_drain(s);
  }
  cut_short(s, cx);
  int r = px__future_poll(&s->drain.base, cx);
  if (r == PX_PENDING) return PX_PENDING;
  self->output.u64 = r < 0 ? 0 : s->drain.base.output.u64;
  self->error = s->err;
  serve_drop(self);
  return PX_READY;
}

static const px_future_vtable serve_vtable = {sizeof(px_serve), "serve", serve_poll,
                                              serve_drop};

px_future *px_serve_init(px_serve *f, px_tcp_listener *l, const px_serve_opts *opts) {
  if (f == NULL) {
    px_tcp_listener_close(l);
    return NULL;
  }
  memset(f, 0, sizeof *f);
  px_future_init(&f->base, &serve_vtable);
  f->listener = l;
  if (opts != NULL) f->opts = *opts;
  px_scope_init(&f->conns);
  return &f->base;
}
