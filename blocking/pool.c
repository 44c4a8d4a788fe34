/*
 * The blocking pool: threads that run px_spawn_blocking jobs so that
 * futures never block the runtime thread (tokio's blocking pool).
 *
 *   first poll of a px_blocking ──► queue (FIFO, under mu) ──► idle thread
 *                                    │ no idle thread and below the max:
 *                                    └─ start one more (detached)
 *   thread: run fn ──► store result ──► wake the awaiting future's waker
 *   idle longer than blocking_idle_ms: the thread exits
 *
 * One mutex guards the whole pool and every job's mutable fields (state,
 * waker, result). Jobs are short-lived and the critical sections are a few
 * pointer writes, so one lock keeps the reasoning simple.
 *
 * Lifetimes. A job is shared by its future and the pool (two references,
 * atomic): whichever lets go last frees it, so dropping a future while its
 * job runs is safe. The pool is counted too (under mu): the runtime holds one
 * reference, every thread one, every job one. At shutdown the runtime lets go
 * of its reference; threads abandoned because their job is stuck keep the
 * pool alive until they finish, so they never touch freed memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/internal/list.h"
#include "api/internal/px_internal.h"
#include "blocking/pool.h"
#include "api/internal/services.h"
#include "platform/platform.h"

/* The pool is the runtime's opaque px__blocking_pool. */
typedef struct px__blocking_pool pool;

typedef enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE } job_state;

typedef struct job {
  px__list link; /* in the pool's queue or running list (mu) */
  pool *pool;
  px_blocking_fn fn;
  void *arg;
  void (*free_arg)(void *); /* an owned arg: released with the job */
  const px__blocking_hooks *hooks;
  size_t size;          /* bytes of this allocation, payload included */
  px__atomic(int) refs; /* the future's and the pool's */
  /* Under pool->mu. */
  job_state state;
  bool detached; /* the future is gone: nobody will read the result */
  px_waker waker;
  int err;
  px_value out;
  /* The hooks' payload follows at JOB_PAYLOAD_OFFSET. */
} job;

#define JOB_PAYLOAD_OFFSET                                                 \
  ((sizeof(job) + alignof(max_align_t) - 1) / alignof(max_align_t) *       \
   alignof(max_align_t))

static void *job_payload(job *j) { return (char *)j + JOB_PAYLOAD_OFFSET; }

struct px__blocking_pool {
  pthread_mutex_t mu;
  pthread_cond_t work;  /* threads wait here for jobs */
  pthread_cond_t quiet; /* shutdown waits here for jobs and threads to end */
  px__list queue;       /* jobs not started yet, oldest first */
  px__list running;     /* jobs in fn right now */
  uint32_t max_threads, idle_ms, shutdown_ms;
  uint32_t threads; /* alive, busy or idle */
  uint32_t idle;    /* waiting for a job */
  uint32_t queued;  /* jobs in queue */
  uint32_t busy;    /* jobs in fn */
  uint32_t waking;  /* threads between taking a waker and waking it */
  uint32_t refs;    /* runtime + threads + jobs */
  bool closed;      /* shutdown began: no new jobs */
};

/* ---- Small helpers ------------------------------------------------------ */

/* The job a queue or running list node belongs to (NULL for none). */
static job *job_of(px__list *l) {
  return l != NULL ? px__container_of(l, job, link) : NULL;
}


static void pool_destroy(pool *p) {
  pthread_cond_destroy(&p->quiet);
  pthread_cond_destroy(&p->work);
  pthread_mutex_destroy(&p->mu);
  px__free(p, sizeof *p);
}

/* Drops one pool reference. The caller holds mu; this releases it. The
 * count lives under mu so that "the last one out frees" cannot race with a
 * thread still unlocking. */
static void pool_release_and_unlock(pool *p) {
  bool last = --p->refs == 0;
  pthread_mutex_unlock(&p->mu);
  if (last) pool_destroy(p);
}

static void job_unref(job *j) {
  if (atomic_fetch_sub(&j->refs, 1) != 1) return;
  pool *p = j->pool;
  /* The last reference: fn ran (or never will) and nobody reads the result
   * any more, so an owned argument has no user left. */
  if (j->free_arg != NULL) j->free_arg(j->arg);
  px__free(j, j->size);
  pthread_mutex_lock(&p->mu);
  pool_release_and_unlock(p);
}

/* ---- The threads ---------------------------------------------------------- */

static void *worker_main(void *arg) {
  pool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (px__list_empty(&p->queue) && !p->closed) {
      struct timespec deadline = px__cond_deadline(p->idle_ms);
      int rc = 0;
      p->idle++;
      while (px__list_empty(&p->queue) && !p->closed && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->work, &p->mu, &deadline);
      p->idle--;
    }
    job *j = job_of(px__list_pop(&p->queue));
    if (j == NULL) break; /* idle for too long, or shutting down */
    p->queued--;
    px__list_insert_tail(&p->running, &j->link);
    j->state = JOB_RUNNING;
    p->busy++;
    pthread_mutex_unlock(&p->mu);

    px_value out;
    out.u64 = 0;
    int err = j->fn(j->arg, &out);
    if (err > 0) err = 0;

    pthread_mutex_lock(&p->mu);
    px__list_remove(&j->link);
    p->busy--;
    j->state = JOB_DONE;
    j->err = err;
    j->out = out;
    bool discard = j->detached;
    px_waker w = j->waker;
    j->waker.vtable = NULL;
    j->waker.data = NULL;
    /* Shutdown takes the wakers of running jobs before the runtime goes
     * away, so a waker we still hold here is safe to wake; shutdown waits
     * for `waking` to reach zero before freeing the runtime. */
    bool wake = !px_waker_is_empty(&w);
    if (wake) p->waking++;
    if (p->closed) pthread_cond_broadcast(&p->quiet);
    pthread_mutex_unlock(&p->mu);

    if (discard && j->hooks != NULL && j->hooks->discard != NULL)
      j->hooks->discard(job_payload(j), err, out);
    if (wake) px_waker_wake(&w);
    job_unref(j);

    pthread_mutex_lock(&p->mu);
    if (wake) {
      p->waking--;
      if (p->closed) pthread_cond_broadcast(&p->quiet);
    }
  }
  p->threads--;
  if (p->closed) pthread_cond_broadcast(&p->quiet);
  pool_release_and_unlock(p);
  return NULL;
}

/* Starts one more thread. Called with mu held. */
static int start_thread(pool *p) {
  pthread_attr_t attr;
  int rc = pthread_attr_init(&attr);
  if (rc != 0) return px_err_from_errno(rc);
  /* Detached: nobody joins pool threads. An idle one exits by itself, and
   * one abandoned at shutdown must be able to outlive the runtime. */
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  rc = pthread_create(&tid, &attr, worker_main, p);
  pthread_attr_destroy(&attr);
  if (rc != 0) return px_err_from_errno(rc);
  p->threads++;
  p->refs++;
  return 0;
}

/* Queues a job, starting a thread when no idle one is free for it. */
static int submit(pool *p, job *j) {
  pthread_mutex_lock(&p->mu);
  if (p->closed) {
    pthread_mutex_unlock(&p->mu);
    return PX_ESHUTDOWN;
  }
  /* Every idle thread will take one of the queued jobs; start another
   * only when this job would otherwise wait behind them. */
  if (p->idle <= p->queued && p->threads < p->max_threads) {
    int rc = start_thread(p);
    /* Without any thread the job would wait forever: report it. With
     * some, it just waits its turn. */
    if (rc < 0 && p->threads == 0) {
      pthread_mutex_unlock(&p->mu);
      return rc;
    }
  }
  j->pool = p;
  p->refs++;
  px__list_insert_tail(&p->queue, &j->link);
  p->queued++;
  pthread_cond_signal(&p->work);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

/* ---- Creation and shutdown ------------------------------------------------ */

static void pool_shutdown(pool *p);
static void pool_gauges(pool *p, uint64_t *threads, uint64_t *queued);

/* How the runtime reaches the pool (api/internal/services.h). */
static const px__blocking_plug plug = {pool_shutdown, pool_gauges};

static int pool_create(const px_config *cfg, pool **out) {
  pool *p = px__calloc(sizeof *p);
  if (p == NULL) return PX_ENOMEM;
  p->max_threads = cfg->blocking_threads;
  p->idle_ms = cfg->blocking_idle_ms;
  p->shutdown_ms = cfg->blocking_shutdown_ms;
  p->refs = 1; /* the runtime's */
  px__list_init(&p->queue);
  px__list_init(&p->running);
  pthread_mutex_init(&p->mu, NULL);
  /* Timed waits on the monotonic clock where the system allows it
   * (platform/platform.h), so a wall-clock jump neither shortens nor
   * stretches them. */
  px__cond_init_monotonic(&p->work);
  px__cond_init_monotonic(&p->quiet);
  *out = p;
  return 0;
}

/* The runtime's pool, created on first use. Two threads of a multi-threaded
 * executor may race to create it: one wins the compare-and-swap, the other
 * throws its copy away. */
static int pool_get(px_runtime *rt, pool **out) {
  pool *p = px__runtime_blocking(rt);
  if (p == NULL) {
    pool *mine;
    int rc = pool_create(px__runtime_config(rt), &mine);
    if (rc < 0) return rc;
    p = px__runtime_blocking_install(rt, &plug, mine);
    if (p != mine) pool_destroy(mine);
  }
  *out = p;
  return 0;
}

/*
 * Called by px_runtime_free after every task was dropped (so jobs whose
 * futures were in tasks are already cancelled or detached) and before the
 * backends are destroyed (so the wakes below still have a runtime to go to).
 */
static void pool_shutdown(pool *p) {
  pthread_mutex_lock(&p->mu);
  p->closed = true;
  px__list cancelled, *l;
  px__list_init(&cancelled);
  px__list_splice_tail(&cancelled, &p->queue);
  p->queued = 0;
  px__list_foreach(l, &cancelled) {
    job_of(l)->state = JOB_DONE;
    job_of(l)->err = PX_ECANCELED;
  }
  pthread_cond_broadcast(&p->work); /* idle threads: exit now */

  /* Running jobs will finish after the runtime may be gone: take their
   * wakers now. Dropping a waker may run arbitrary code, so do it unlocked
   * and rescan afterwards (the list is short: at most max_threads). */
  for (;;) {
    job *j = NULL;
    px__list_foreach(l, &p->running) {
      if (!px_waker_is_empty(&job_of(l)->waker)) {
        j = job_of(l);
        break;
      }
    }
    if (j == NULL) break;
    px_waker w = j->waker;
    j->waker.vtable = NULL;
    j->waker.data = NULL;
    pthread_mutex_unlock(&p->mu);
    px_waker_drop(&w);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);

  /* Queued jobs never run: their futures, if still awaited, see
   * PX_ECANCELED. The queue's reference to each goes away. */
  for (;;) {
    pthread_mutex_lock(&p->mu);
    job *j = job_of(px__list_pop(&cancelled));
    if (j == NULL) {
      pthread_mutex_unlock(&p->mu);
      break;
    }
    px_waker w = j->waker;
    j->waker.vtable = NULL;
    j->waker.data = NULL;
    pthread_mutex_unlock(&p->mu);
    px_waker_wake(&w);
    job_unref(j);
  }

  /* Wait for running jobs, but not forever (tokio#5338): a job stuck in a
   * read of a dead NFS mount must not hang the program's exit. */
  pthread_mutex_lock(&p->mu);
  struct timespec deadline = px__cond_deadline(p->shutdown_ms);
  int rc = 0;
  while (p->busy > 0 && p->shutdown_ms > 0 && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&p->quiet, &p->mu, &deadline);
  uint32_t abandoned = p->busy;
  /* A thread about to wake a future must finish before the runtime goes
   * (that takes no time); when nothing is stuck, also wait for the idle
   * threads to exit, so no pool thread outlives a clean shutdown. */
  while (p->waking > 0 || (abandoned == 0 && p->threads > 0))
    pthread_cond_wait(&p->quiet, &p->mu);
  uint32_t shutdown_ms = p->shutdown_ms;
  pool_release_and_unlock(p);

  if (abandoned > 0)
    fprintf(stderr,
            "pollux: shutdown abandoned %u blocking job(s) still running "
            "after %u ms\n",
            abandoned, shutdown_ms);
}

/* ---- The future ------------------------------------------------------------ */

static px_poll blocking_fail(px_blocking *f, int err) {
  f->base.output.u64 = 0;
  f->base.error = err;
  return PX_READY;
}

static px_poll blocking_poll(px_future *self, px_context *cx) {
  px_blocking *f = (px_blocking *)self;
  job *j = f->job;
  if (j == NULL) {
    if (f->fn == NULL && f->hooks == NULL) return blocking_fail(f, PX_EINVAL);
    if (cx->runtime == NULL) return blocking_fail(f, PX_ENORUNTIME);
    pool *p;
    int rc = pool_get(cx->runtime, &p);
    if (rc < 0) return blocking_fail(f, rc);
    size_t extra = f->hooks != NULL ? f->hooks->payload_size(f) : 0;
    if (extra > SIZE_MAX - JOB_PAYLOAD_OFFSET)
      return blocking_fail(f, PX_ENOMEM);
    size_t size = JOB_PAYLOAD_OFFSET + extra;
    j = px__calloc(size);
    if (j == NULL) return blocking_fail(f, PX_ENOMEM);
    j->size = size;
    atomic_init(&j->refs, 2); /* the future's and the pool's */
    j->hooks = f->hooks;
    if (f->hooks != NULL) {
      f->hooks->prepare(f, job_payload(j));
      j->fn = f->hooks->run;
      j->arg = job_payload(j);
    } else {
      j->fn = f->fn;
      j->arg = f->arg;
      /* Handed over before submit: once queued, the job may finish and be
       * released by the pool at any time (our reference keeps it alive
       * until our drop, but the field must be set before anyone reads it). */
      j->free_arg = f->free_arg;
    }
    j->state = JOB_QUEUED;
    j->waker = px_waker_clone(cx->waker);
    rc = submit(p, j);
    if (rc < 0) {
      px_waker_drop(&j->waker);
      px__free(j, size); /* the argument stays the future's, for its drop */
      return blocking_fail(f, rc);
    }
    f->free_arg = NULL; /* the job owns the argument now */
    f->job = j;
    return PX_PENDING;
  }

  pool *p = j->pool;
  pthread_mutex_lock(&p->mu);
  if (j->state == JOB_DONE) {
    int err = j->err;
    px_value out = j->out;
    pthread_mutex_unlock(&p->mu);
    if (j->hooks != NULL && j->hooks->finish != NULL)
      j->hooks->finish(f, job_payload(j), &err, &out);
    f->job = NULL;
    job_unref(j);
    f->base.output = out;
    f->base.error = err;
    return PX_READY;
  }
  /* Still queued or running: make sure the latest waker is the one woken
   * (a future may move between tasks, e.g. inside a select). Cloning is
   * cheap and safe under the lock; dropping the old one happens after. */
  px_waker old = PX_WAKER_EMPTY;
  if (!px_waker_will_wake(&j->waker, cx->waker)) {
    old = j->waker;
    j->waker = px_waker_clone(cx->waker);
  }
  pthread_mutex_unlock(&p->mu);
  px_waker_drop(&old);
  return PX_PENDING;
}

static void blocking_drop(px_future *self) {
  px_blocking *f = (px_blocking *)self;
  job *j = f->job;
  if (f->free_arg != NULL) {
    /* Never queued (not polled, or its first poll failed): the argument is
     * still ours to release. */
    void (*free_arg)(void *) = f->free_arg;
    f->free_arg = NULL;
    free_arg(f->arg);
  }
  if (j == NULL) return;
  f->job = NULL;
  pool *p = j->pool;
  pthread_mutex_lock(&p->mu);
  px_waker w = j->waker;
  j->waker.vtable = NULL;
  j->waker.data = NULL;
  bool was_queued = j->state == JOB_QUEUED;
  bool was_done = j->state == JOB_DONE;
  if (was_queued) {
    /* Not started: cancel it. fn never runs. */
    px__list_remove(&j->link);
    p->queued--;
    j->state = JOB_DONE;
    j->err = PX_ECANCELED;
  } else if (!was_done) {
    /* Running: detach. The thread finishes and discards the result. */
    j->detached = true;
  }
  int err = j->err;
  px_value out = j->out;
  pthread_mutex_unlock(&p->mu);
  px_waker_drop(&w);
  /* Finished but never read: release what the job produced. */
  if (was_done && j->hooks != NULL && j->hooks->discard != NULL)
    j->hooks->discard(job_payload(j), err, out);
  if (was_queued) job_unref(j); /* the queue's reference */
  job_unref(j);                 /* ours */
}

static const px_future_vtable blocking_vtable = {
    sizeof(px_blocking), "spawn_blocking", blocking_poll, blocking_drop};

px_future *px_spawn_blocking_init(px_blocking *f, px_blocking_fn fn,
                                  void *arg) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &blocking_vtable);
  f->fn = fn;
  f->arg = arg;
  f->hooks = NULL;
  f->job = NULL;
  f->free_arg = NULL;
  return &f->base;
}

px_future *px_spawn_blocking_owned_init(px_blocking *f, px_blocking_fn fn,
                                        void *arg, void (*free_arg)(void *)) {
  if (f == NULL || fn == NULL) {
    /* No future will ever own it: release it now rather than leak it. */
    if (free_arg != NULL) free_arg(arg);
    return NULL;
  }
  px_spawn_blocking_init(f, fn, arg);
  f->free_arg = free_arg;
  return &f->base;
}

px_future *px__blocking_init_hooks(px_blocking *f,
                                   const px__blocking_hooks *hooks) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &blocking_vtable);
  f->fn = NULL;
  f->arg = NULL;
  f->hooks = hooks;
  f->job = NULL;
  f->free_arg = NULL;
  return &f->base;
}

int px_runtime_blocking_threads(px_runtime *rt) {
  if (rt == NULL) return PX_EINVAL;
  pool *p = px__runtime_blocking(rt);
  if (p == NULL) return 0;
  pthread_mutex_lock(&p->mu);
  int n = (int)p->threads;
  pthread_mutex_unlock(&p->mu);
  return n;
}

/* px_runtime_metrics' blocking_threads and blocking_queue_depth. */
static void pool_gauges(pool *p, uint64_t *threads, uint64_t *queued) {
  pthread_mutex_lock(&p->mu);
  *threads = p->threads;
  *queued = p->queued;
  pthread_mutex_unlock(&p->mu);
}
