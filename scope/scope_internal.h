/*
 * What scope/ offers the toolkit above it, beside pollux/scope.h
 * (internal): px_serve, whose connections are detached children, waits
 * with px__scope_watch for a connection that ended to become reapable.
 */
#ifndef POLLUX_SCOPE_SCOPE_INTERNAL_H
#define POLLUX_SCOPE_SCOPE_INTERNAL_H

#include "pollux/future.h"
#include "pollux/scope.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Registers cx's waker with `scope`, woken once when any child finishes,
 * detached ones included (a join waits only for the children whose results
 * it takes, so nothing else would wake for a detached child). Returns 0
 * when registered, or when nothing can finish (no child ever spawned, or
 * the scope dropped); 1 when a child finished already and the caller
 * should reap now (px_scope_join_next) instead of waiting.
 */
int px__scope_watch(px_scope *scope, px_context *cx);

#ifdef __cplusplus
}
#endif

#endif /* POLLUX_SCOPE_SCOPE_INTERNAL_H */
