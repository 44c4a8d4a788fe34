/*
 * Scopes (pollux/scope.h): a growable array of join handles, and a join
 * future that polls them until every one is done.
 *
 * Everything here runs on the owner task; the children are only reached
 * through their join handles, whose poll, abort and drop are thread-safe
 * (executors/task.c), so children may finish on any worker thread. A join
 * handle holds nothing but a pointer to its task (the waker it registers is
 * stored in the task), so handles may be moved when the array grows, even
 * after they were polled.
 */
#include <string.h>

#include "api/internal/px_internal.h"
#include "pollux/scope.h"

void px_scope_init(px_scope *scope) {
  if (scope == NULL) return;
  memset(scope, 0, sizeof *scope);
}

/* Doubles the array; px__alloc has no realloc, so copy by hand. */
static int grow(px_scope *s) {
  size_t cap = s->cap == 0 ? 4 : s->cap * 2;
  if (cap > SIZE_MAX / sizeof *s->children) return PX_ENOMEM;
  px_join_handle *children = px__alloc(cap * sizeof *children);
  if (children == NULL) return PX_ENOMEM;
  if (s->len > 0) memcpy(children, s->children, s->len * sizeof *children);
  px__free(s->children, s->cap * sizeof *s->children);
  s->children = children;
  s->cap = cap;
  return 0;
}

int px_scope_spawn(px_scope *scope, const px_future *future) {
  if (scope == NULL || future == NULL || scope->closed) return PX_EINVAL;
  /* Check first, so a call outside a runtime does not grow the array. */
  if (px_runtime_current() == NULL) return PX_ENORUNTIME;
  if (scope->len == scope->cap) {
    int rc = grow(scope);
    if (rc < 0) return rc;
  }
  int rc = px_spawn(future, &scope->children[scope->len]);
  if (rc < 0) return rc;
  scope->len++;
  return 0;
}

size_t px_scope_len(const px_scope *scope) {
  return scope == NULL ? 0 : scope->len;
}

const px_join_handle *px_scope_child(const px_scope *scope, size_t i) {
  if (scope == NULL || i >= scope->len) return NULL;
  return &scope->children[i];
}

/* A handle whose result was collected (DONE) or that let go (DROPPED). */
static int collected(const px_join_handle *h) {
  return (h->base.state & (PX_FUTURE_DONE | PX_FUTURE_DROPPED)) != 0;
}

int px_scope_cancel(px_scope *scope) {
  if (scope == NULL) return PX_EINVAL;
  for (size_t i = scope->scan_from; i < scope->len; i++)
    if (!collected(&scope->children[i]))
      px_join_handle_abort(&scope->children[i]);
  return 0;
}

void px_scope_drop(px_scope *scope) {
  if (scope == NULL || scope->closed) return;
  /* Abort before detaching: a detached task would run on unsupervised. The
   * abort queues each child, and the executor drops its future. */
  px_scope_cancel(scope);
  for (size_t i = 0; i < scope->len; i++)
    px_future_drop(&scope->children[i].base);
  px__free(scope->children, scope->cap * sizeof *scope->children);
  scope->children = NULL;
  scope->len = scope->cap = scope->done = scope->scan_from = 0;
  scope->closed = 1;
}

/* ---- join ------------------------------------------------------------- */

/*
 * Polls every child not yet collected. Each pending handle keeps a clone of
 * our waker in its task (a repeated poll with the same waker costs nothing),
 * so any child finishing wakes us. Collected children are skipped; the
 * prefix of collected ones is not even looked at again.
 */
static px_poll scope_join_poll(px_future *self, px_context *cx) {
  px_scope_join *j = (px_scope_join *)self;
  px_scope *s = j->scope;
  if (s == NULL || s->closed) {
    self->error = PX_EINVAL;
    return PX_READY;
  }
  for (size_t i = s->scan_from; i < s->len; i++) {
    px_join_handle *h = &s->children[i];
    if (collected(h)) continue;
    int rc = px_future_poll(&h->base, cx);
    if (rc == PX_PENDING) continue;
    int err = rc < 0 ? rc : h->base.error;
    if (err < 0) {
      if (s->errors++ == 0) s->first_error = err;
    }
    s->done++;
  }
  while (s->scan_from < s->len && collected(&s->children[s->scan_from]))
    s->scan_from++;
  if (s->done < s->len) return PX_PENDING;
  self->output = px_u64(s->len);
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
  return &join->base;
}
