/*
 * What scope/ offers the toolkit above it, beside pollux/scope.h
 * (internal): px_serve, whose connections are detached children, waits
 * with px__scope_watch for connections that ended to become reapable.
 */
#ifndef POLLUX_SCOPE_SCOPE_INTERNAL_H
#define POLLUX_SCOPE_SCOPE_INTERNAL_H

#include "pollux/future.h"
#include "pollux/scope.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Registers cx's waker with `scope`, woken once `finished` children
 * finished since the scope was last reaped (px_scope_join_next, or a spawn,
 * reaps), detached ones included: a join waits only for the children whose
 * results it takes, so nothing else would wake for a detached child, and a
 * server that reaps every few endings is woken once for them, after their
 * tasks completed. `finished` 0 counts as 1. Returns 0 when registered, or
 * when nothing can finish (no child ever spawned, the scope dropped, a NULL
 * argument); 1 when that many finished already and the caller should reap
 * now instead of waiting. A child counts once a reap polled its handle, so
 * the caller reaps after spawning and before it waits: unlike a waiting
 * join, a watch for more than one child is not woken by a spawn (a server
 * spawning into its own scope would wake itself once per connection).
 */
int px__scope_watch(px_scope *scope, px_context *cx, size_t finished);

#ifdef __cplusplus
}
#endif

#endif /* POLLUX_SCOPE_SCOPE_INTERNAL_H */
