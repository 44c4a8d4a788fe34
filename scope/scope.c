/*
 * Scopes (pollux/scope.h): tokio's JoinSet, in C.
 *
 * Each child has an entry: its join handle, and a waker of its own. The
 * entry sits on one of three lists of the scope's shared set:
 *
 *   idle      its handle was polled with the entry's waker and is pending;
 *   notified  the child woke its entry (it finished, or was just spawned
 *             and never polled): the owner must poll its handle again;
 *   ready     its result is in the handle, waiting for join_next.
 *
 * A child finishing on any thread wakes its entry's waker, which moves the
 * entry from idle to notified under the set's lock and wakes the owner's
 * join, if one waits. The owner alone polls handles (reaping), so finding
 * what finished costs one step per finished child, never a scan of every
 * child. A reaped handle is dropped at once, which frees the child's task:
 * what stays is the small entry, and only until join_next takes its result
 * (detached children's entries go at once).
 *
 * Lifetimes: wakers given to children may outlive the scope (an aborted
 * child drops its join waker on its own thread, later), so entries and the
 * set are reference counted. An entry holds one reference for being on a
 * list and one per waker clone; the set holds one for the scope and one per
 * entry.
 */
#include <stdatomic.h>
#include <string.h>

#include "api/internal/list.h"
#include "api/internal/px_internal.h"
#include "pollux/scope.h"
#include "scope/scope_internal.h"

enum where { IDLE, NOTIFIED, POLLING, POLLING_NOTIFIED, READY, GONE };

typedef struct entry {
  px__list node; /* in one of the set's lists, by `where` */
  px__scope_set *set;
  px_join_handle handle;
  uint64_t id; /* the child's task id, kept for join_next */
  atomic_size_t refs;
  unsigned char where;    /* enum where; guarded by the set's lock */
  unsigned char detached; /* result discarded, memory freed when reaped */
} entry;

struct px__scope_set {
  px__spinlock lock;
  px__list idle, notified, ready;
  px_waker owner;   /* the join waiting for children; under the lock */
  /* The owner is woken once this many children woke their entries since
   * the notified list was last emptied (`woken`): 1 for a join, more for a
   * watch (px__scope_watch). */
  size_t owner_at;
  size_t woken;
  size_t live;      /* entries not yet reaped (not READY, not GONE) */
  size_t joinable;  /* live entries that are not detached */
  size_t unclaimed; /* READY entries */
  atomic_size_t refs;
};

/* Moves `e` to the end of `list` (or just links it), as `where`. Under the
 * set's lock. */
static void move_to(px__list *list, entry *e, enum where where) {
  if (px__list_linked(&e->node)) px__list_remove(&e->node);
  px__list_insert_tail(list, &e->node);
  e->where = (unsigned char)where;
}

/* Unlinks the first entry of `list` and marks it `where`, or NULL. Under
 * the set's lock. */
static entry *take_first(px__list *list, enum where where) {
  px__list *n = px__list_pop(list);
  if (n == NULL) return NULL;
  entry *e = px__container_of(n, entry, node);
  e->where = (unsigned char)where;
  return e;
}

/* ---- reference counts ------------------------------------------------- */

static void set_release(px__scope_set *set) {
  if (atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1)
    return;
  px_waker_drop(&set->owner);
  px__free(set, sizeof *set);
}

static void entry_release(entry *e) {
  if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
    return;
  px__scope_set *set = e->set;
  px__free(e, sizeof *e);
  set_release(set);
}

/* ---- the entry's waker ------------------------------------------------ */

static px_waker entry_waker_clone(void *data);

/* Moves the entry to `notified` and hands back the owner's waker to wake
 * once the lock is released (never wake while holding it: the owner's wake
 * may run the owner at once on this thread). */
static void entry_wake_by_ref(void *data) {
  entry *e = data;
  px__scope_set *set = e->set;
  px_waker owner = PX_WAKER_EMPTY;
  px__spin_lock(&set->lock);
  if (e->where == IDLE) {
    move_to(&set->notified, e, NOTIFIED);
    if (++set->woken >= set->owner_at) owner = px_waker_take(&set->owner);
  } else if (e->where == POLLING) {
    e->where = POLLING_NOTIFIED;
  }
  px__spin_unlock(&set->lock);
  px_waker_wake(&owner);
}

static void entry_waker_drop(void *data) { entry_release(data); }

static void entry_wake(void *data) {
  entry_wake_by_ref(data);
  entry_release(data);
}

static const px_waker_vtable entry_waker_vtable = {
    entry_waker_clone, entry_wake, entry_wake_by_ref, entry_waker_drop};

static px_waker entry_waker_clone(void *data) {
  entry *e = data;
  atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
  px_waker w = {&entry_waker_vtable, e};
  return w;
}

/* ---- reaping ---------------------------------------------------------- */

/* Counts a finished, non-detached child's error in the scope. */
static void count_result(px_scope *s, int err) {
  if (err < 0 && s->errors++ == 0) s->first_error = err;
}

/*
 * Polls the handle of every notified entry (owner only). A finished child's
 * handle is dropped, freeing its task; its entry moves to `ready` or, when
 * detached or when `consume` is set (a full join takes every result), goes.
 * Returns how many children were consumed that way.
 */
static size_t reap(px_scope *s, px_runtime *rt, int consume) {
  px__scope_set *set = s->set;
  size_t consumed = 0;
  if (set == NULL) return 0;
  for (;;) {
    px__spin_lock(&set->lock);
    entry *e = take_first(&set->notified, POLLING);
    if (e == NULL) set->woken = 0; /* none of them waits to be reaped */
    px__spin_unlock(&set->lock);
    if (e == NULL) return consumed;

    /* Poll with the entry's own waker, so the child wakes this entry. The
     * handle borrows the waker and clones it if it must wait. */
    px_waker w = {&entry_waker_vtable, e};
    px_context cx = {&w, rt};
    /* Outside the budget: the entry waker would re-notify the entry and
     * this loop poll it again at once, forever (scope_join_next and the
     * other callers spend the caller's budget themselves). */
    int rc = px__coop_poll_unbudgeted(&e->handle.base, &cx);
    if (rc == PX_PENDING) {
      px__spin_lock(&set->lock);
      if (e->where == POLLING_NOTIFIED)
        move_to(&set->notified, e, NOTIFIED);
      else
        move_to(&set->idle, e, IDLE);
      px__spin_unlock(&set->lock);
      continue;
    }
    if (rc < 0) e->handle.base.error = rc; /* cannot happen; never silent */
    /* The result stays readable in the dropped handle; the task goes. */
    px__future_drop(&e->handle.base);
    px__spin_lock(&set->lock);
    set->live--;
    if (!e->detached) set->joinable--;
    if (e->detached || consume) {
      e->where = GONE;
    } else {
      move_to(&set->ready, e, READY);
      set->unclaimed++;
    }
    px__spin_unlock(&set->lock);
    if (e->where == GONE) {
      if (!e->detached) count_result(s, e->handle.base.error);
      consumed += !e->detached;
      entry_release(e);
    }
  }
}

/* ---- the scope -------------------------------------------------------- */

void px_scope_init(px_scope *scope) {
  if (scope == NULL) return;
  memset(scope, 0, sizeof *scope);
}

static int set_new(px_scope *s) {
  px__scope_set *set = px__alloc(sizeof *set);
  if (set == NULL) return PX_ENOMEM;
  memset(set, 0, sizeof *set);
  px__list_init(&set->idle);
  px__list_init(&set->notified);
  px__list_init(&set->ready);
  atomic_init(&set->refs, 1);
  s->set = set;
  return 0;
}

static int spawn(px_scope *scope, const px_future *future, int detached) {
  if (scope == NULL || future == NULL || scope->closed) return PX_EINVAL;
  /* Check first, so a call outside a runtime allocates nothing. */
  px_runtime *rt = px_runtime_current();
  if (rt == NULL) return PX_ENORUNTIME;
  if (scope->set == NULL) {
    int rc = set_new(scope);
    if (rc < 0) return rc;
  }
  reap(scope, rt, 0);
  px__scope_set *set = scope->set;
  entry *e = px__alloc(sizeof *e);
  if (e == NULL) return PX_ENOMEM;
  memset(e, 0, sizeof *e);
  int rc = px_spawn(future, &e->handle);
  if (rc < 0) {
    px__free(e, sizeof *e);
    return rc;
  }
  e->set = set;
  e->id = px_join_handle_id(&e->handle);
  e->detached = (unsigned char)detached;
  atomic_init(&e->refs, 1);
  atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
  /* A new child starts notified: its handle has not registered a waker
   * yet, so the next reap polls it (and it may well have finished). A
   * waiting join is woken to do so; a watch for several children is not:
   * its owner reaps after spawning, before it waits (px__scope_watch). */
  px_waker owner = PX_WAKER_EMPTY;
  px__spin_lock(&set->lock);
  move_to(&set->notified, e, NOTIFIED);
  set->live++;
  if (!detached) set->joinable++;
  if (set->owner_at <= 1) owner = px_waker_take(&set->owner);
  px__spin_unlock(&set->lock);
  px_waker_wake(&owner);
  return 0;
}

int px_scope_spawn(px_scope *scope, const px_future *future) {
  return spawn(scope, future, 0);
}

int px_scope_spawn_detached(px_scope *scope, const px_future *future) {
  return spawn(scope, future, 1);
}

size_t px_scope_len(const px_scope *scope) {
  if (scope == NULL || scope->set == NULL) return 0;
  px__scope_set *set = scope->set;
  px__spin_lock(&set->lock);
  size_t n = set->live + set->unclaimed;
  px__spin_unlock(&set->lock);
  return n;
}

int px_scope_cancel(px_scope *scope) {
  if (scope == NULL) return PX_EINVAL;
  px__scope_set *set = scope->set;
  if (set == NULL) return 0;
  /* Every live entry moves to `notified`; from then on no wake touches the
   * list (a wake only moves IDLE entries) and only the owner, us, takes
   * from it, so it can be walked without the lock while the aborts run (an
   * abort may wake an entry, which takes the lock). The next reap polls
   * each handle again and sees the child finish. */
  px__list *n;
  px__spin_lock(&set->lock);
  px__list_foreach(n, &set->idle)
    px__container_of(n, entry, node)->where = NOTIFIED;
  px__list_splice_tail(&set->notified, &set->idle);
  /* Their wakes are no-ops from now on, so the join must look itself. */
  px_waker owner = px_waker_take(&set->owner);
  px__spin_unlock(&set->lock);
  px_waker_wake(&owner);
  px__list_foreach(n, &set->notified)
    px_join_handle_abort(&px__container_of(n, entry, node)->handle);
  return 0;
}

void px_scope_drop(px_scope *scope) {
  if (scope == NULL || scope->closed) return;
  scope->closed = 1;
  px__scope_set *set = scope->set;
  scope->set = NULL;
  if (set == NULL) return;
  /* Abort before detaching: a detached task would run on unsupervised. The
   * abort queues each child, and the executor drops its future. Entries
   * leave the lists under the lock, so a late wake finds them GONE. */
  px__list *lists[3] = {&set->idle, &set->notified, &set->ready};
  for (int l = 0; l < 3; l++) {
    for (;;) {
      px__spin_lock(&set->lock);
      entry *e = take_first(lists[l], GONE);
      px__spin_unlock(&set->lock);
      if (e == NULL) break;
      if (l < 2) px_join_handle_abort(&e->handle);
      px__future_drop(&e->handle.base);
      entry_release(e);
    }
  }
  px__spin_lock(&set->lock);
  px_waker owner = px_waker_take(&set->owner);
  px__spin_unlock(&set->lock);
  px_waker_drop(&owner);
  set_release(set);
}

/* Registers the owner's waker, to be woken once `at` children woke their
 * entries, unless that many did meanwhile (then the caller reaps instead of
 * sleeping). Returns 1 when registered. Every caller reaps just before, so
 * what is notified now was put there by wakes, all counted in `woken`. */
static int register_owner(px__scope_set *set, px_context *cx, size_t at) {
  px_waker old = PX_WAKER_EMPTY;
  px__spin_lock(&set->lock);
  int registered = set->woken < at;
  if (registered) {
    set->owner_at = at;
    if (!px_waker_will_wake(&set->owner, cx->waker)) {
      old = px_waker_take(&set->owner);
      set->owner = px_waker_clone(cx->waker);
    }
  }
  px__spin_unlock(&set->lock);
  px_waker_drop(&old);
  return registered;
}

int px__scope_watch(px_scope *scope, px_context *cx, size_t finished) {
  if (scope == NULL || scope->set == NULL || scope->closed || cx == NULL)
    return 0;
  return !register_owner(scope->set, cx, finished > 0 ? finished : 1);
}

/* The first unclaimed result's entry, now GONE (the caller releases it),
 * or NULL. */
static entry *take_result(px__scope_set *set) {
  px__spin_lock(&set->lock);
  entry *e = take_first(&set->ready, GONE);
  if (e != NULL) set->unclaimed--;
  px__spin_unlock(&set->lock);
  return e;
}

/* ---- join: every child ------------------------------------------------ */

static px_poll scope_join_poll(px_future *self, px_context *cx) {
  px_scope_join *j = (px_scope_join *)self;
  px_scope *s = j->scope;
  if (s == NULL || s->closed) {
    self->error = PX_EINVAL;
    return PX_READY;
  }
  px__scope_set *set = s->set;
  /* A scope whose children all finished joins at once: one budget unit,
   * given back below if it has to wait for a child after all. */
  if (!px__coop_proceed(cx)) return PX_PENDING;
  if (set != NULL) {
    /* Results nobody claimed yet belong to the join now. */
    for (entry *e; (e = take_result(set)) != NULL;) {
      count_result(s, e->handle.base.error);
      j->reaped++;
      entry_release(e);
    }
    for (;;) {
      j->reaped += reap(s, cx->runtime, 1);
      px__spin_lock(&set->lock);
      size_t live = set->live;
      px__spin_unlock(&set->lock);
      if (live == 0) break;
      if (register_owner(set, cx, 1)) {
        px__coop_refund(); /* waiting, not progress */
        return PX_PENDING;
      }
    }
  }
  self->output = px_u64(j->reaped);
  self->error = s->first_error;
  return PX_READY;
}

/* A join dropped before it completed means the owner gave up on the
 * children (it was cancelled, or lost a select): they go too. */
static void scope_join_drop(px_future *self) {
  px_scope_join *j = (px_scope_join *)self;
  if (!(self->state & PX_FUTURE_DONE)) px_scope_drop(j->scope);
}

static const px_future_vtable scope_join_vtable = {
    sizeof(px_scope_join), "scope_join", scope_join_poll, scope_join_drop};

px_future *px_scope_join_init(px_scope_join *join, px_scope *scope) {
  if (join == NULL) return NULL;
  px_future_init(&join->base, &scope_join_vtable);
  join->scope = scope;
  join->reaped = 0;
  return &join->base;
}

/* ---- join_next: one child --------------------------------------------- */

static px_poll scope_join_next_poll(px_future *self, px_context *cx) {
  px_scope_join_next *f = (px_scope_join_next *)self;
  px_scope *s = f->scope;
  if (s == NULL || s->closed) {
    self->error = PX_EINVAL;
    return PX_READY;
  }
  px__scope_set *set = s->set;
  /* Reaping a child that already finished is a ready operation like the
   * join of its handle (whose polls below are unbudgeted): one unit. */
  if (!px__coop_proceed(cx)) return PX_PENDING;
  if (set == NULL) return PX_READY; /* nothing ever spawned: found = 0 */
  for (;;) {
    reap(s, cx->runtime, 0);
    entry *e = take_result(set);
    /* Detached children are never reported, so they are not waited for. */
    px__spin_lock(&set->lock);
    int more = e == NULL && (set->unclaimed > 0 || set->joinable > 0);
    px__spin_unlock(&set->lock);
    if (e != NULL) {
      f->found = 1;
      f->id = e->id;
      self->output = e->handle.base.output;
      self->error = e->handle.base.error;
      count_result(s, self->error);
      entry_release(e);
      return PX_READY;
    }
    if (!more) return PX_READY;
    if (register_owner(set, cx, 1)) {
      px__coop_refund(); /* waiting, not progress */
      return PX_PENDING;
    }
  }
}

static const px_future_vtable scope_join_next_vtable = {
    sizeof(px_scope_join_next), "scope_join_next", scope_join_next_poll, NULL};

px_future *px_scope_join_next_init(px_scope_join_next *f, px_scope *scope) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &scope_join_next_vtable);
  f->scope = scope;
  f->found = 0;
  f->id = 0;
  return &f->base;
}

/* ---- shutdown: join with a deadline, then cancel ---------------------- */

static px_poll scope_shutdown_poll(px_future *self, px_context *cx) {
  px_scope_shutdown *f = (px_scope_shutdown *)self;
  px_scope *s = f->scope;
  if (s == NULL || s->closed) {
    self->error = PX_EINVAL;
    return PX_READY;
  }
  /* The join's error is the first child error, which is the scope's
   * business (scope->errors), not the shutdown's. */
  int rc = px__future_poll(&f->join.base, cx);
  if (rc != PX_PENDING) return PX_READY;
  if (f->phase == 0) {
    rc = px__future_poll(&f->grace.base, cx);
    if (rc == PX_PENDING) return PX_PENDING;
    /* Time is up: whatever still runs is cancelled, and counted. */
    px__scope_set *set = s->set;
    px__spin_lock(&set->lock);
    self->output = px_u64(set->live);
    px__spin_unlock(&set->lock);
    px_scope_cancel(s);
    f->phase = 1;
    rc = px__future_poll(&f->join.base, cx);
    if (rc != PX_PENDING) return PX_READY;
  }
  return PX_PENDING;
}

static void scope_shutdown_drop(px_future *self) {
  px_scope_shutdown *f = (px_scope_shutdown *)self;
  px__future_drop(&f->grace.base);
  px__future_drop(&f->join.base); /* drops the scope unless the join ended */
}

static const px_future_vtable scope_shutdown_vtable = {
    sizeof(px_scope_shutdown), "scope_shutdown", scope_shutdown_poll,
    scope_shutdown_drop};

int px_scope_shutdown_now(px_scope_shutdown *f) {
  if (f == NULL || f->base.vtable != &scope_shutdown_vtable) return PX_EINVAL;
  if ((f->base.state & (PX_FUTURE_DONE | PX_FUTURE_DROPPED)) || f->phase != 0)
    return PX_EDONE;
  /* The grace is a sleep: moving its deadline to now makes it fire at the
   * runtime's next turn of its timers, whose wake brings the shutdown's
   * poll to the cancel. */
  return px_sleep_reset(&f->grace, px_now());
}

px_future *px_scope_shutdown_init(px_scope_shutdown *f, px_scope *scope,
                                  px_duration grace) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &scope_shutdown_vtable);
  f->scope = scope;
  f->phase = 0;
  px_scope_join_init(&f->join, scope);
  px_sleep_init(&f->grace, grace);
  return &f->base;
}
