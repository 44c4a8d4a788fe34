/*
 * What the runtime offers leaf code (internal): timers/sleep.c arms timer
 * nodes, reactors/fd_future.c finds the runtime's reactor, blocking/ plugs
 * its pool in. Leaf code includes this header and nothing of executors/,
 * so it never sees tasks, queues or the executor ops table.
 * executors/runtime.c defines everything here. It lives in api/, below both
 * the runtime and its leaves, so that neither directory includes the other
 * (the layer table in docs/ARCHITECTURE.md; tools/layers checks it).
 */
#ifndef POLLUX_API_INTERNAL_SERVICES_H
#define POLLUX_API_INTERNAL_SERVICES_H

#include <stdint.h>

#include "pollux/runtime.h"
#include "pollux/time.h"
#include "pollux/waker.h"
#include "api/internal/px_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Timers ----------------------------------------------------------- */

/*
 * The node's waker is stored once, in the node. While the node is armed the
 * timer owns it. When the node fires, the timer takes a copy to wake (after
 * its lock) and leaves the bits in place, unowned: so the node's owner may
 * read node->waker without the lock to ask "armed for this task?" (only the
 * owner ever writes it, through these calls), and a stale answer means a
 * wake for exactly that task is on its way. A node that is not armed owns
 * no waker.
 */

/*
 * The instant (ns, px_now's clock) up to which rt has fired its timers: a
 * clock reading its driver took *before* its last look at the I/O. A
 * deadline has passed, for a future polled on rt, once it is at or before
 * this instant, not once the clock says so (tokio's sleeps complete when
 * the driver fires them, too). So a thread that stalls (SIGSTOP,
 * preemption) in the middle of a poll, after its read found nothing and
 * before it compares the clock with its deadline, does not call a client
 * idle whose bytes came during the stall: the deadline is not passed until
 * the driver has looked at the I/O, dispatched those bytes and fired the
 * timers (the adversarial stall case; fault_test's mid-poll stall).
 * Never ahead of the clock, so nothing completes early.
 */
uint64_t px__runtime_elapsed_ns(px_runtime *rt);

#ifndef __cplusplus
/* The time a deadline polled on rt is judged by: the snapshot the current
 * task poll began with (px__poll_time, px_internal.h), else rt's own. */
static inline uint64_t px__elapsed_for(px_runtime *rt) {
  return px__poll_time.rt == rt ? px__poll_time.elapsed_ns
                                : px__runtime_elapsed_ns(rt);
}
#endif

/* Arms `node` to wake `waker` at its tick (px_timer_node.tick), re-arming
 * it if armed. Any thread of `rt`; the node's owner only. */
int px__runtime_timer_insert(px_runtime *rt, px_timer_node *node,
                             const px_waker *waker);
/* Moves a registered node to `tick` (ms, as px_timer_node.tick), for the
 * waker it holds if it is armed. A node that is not armed (it fired: its
 * wake is on the way) only forgets its stale waker, so the woken owner's
 * next poll registers it again; if the timer cannot take the node, its
 * waker is woken for that poll to retry. */
void px__runtime_timer_rearm(px_runtime *rt, px_timer_node *node,
                             uint64_t tick);
/* Disarms `node` (if armed) and releases its waker. */
void px__runtime_timer_cancel(px_runtime *rt, px_timer_node *node);

/* ---- The reactor ------------------------------------------------------ */

struct px__reactor_ops;
struct px__reactor;
/* The reactor of a runtime. */
void px__runtime_reactor(px_runtime *rt, const struct px__reactor_ops **ops,
                         struct px__reactor **r);

/* ---- The blocking pool's plug ------------------------------------------ */

/*
 * The blocking pool (blocking/pool.c) is optional at link time: the
 * runtime holds it as an opaque pool plus this table, installed by the
 * pool's first job, and calls nothing of blocking/ by name.
 */
typedef struct px__blocking_pool px__blocking_pool;

typedef struct px__blocking_plug {
  /*
   * px_runtime_free, after every task was dropped and before the backends
   * go: cancels queued jobs, waits a bounded time for running ones and
   * lets go of the runtime's reference to the pool.
   */
  void (*shutdown)(px__blocking_pool *pool);
  /* px_runtime_metrics: threads alive and jobs not started yet. */
  void (*gauges)(px__blocking_pool *pool, uint64_t *threads,
                 uint64_t *queued);
} px__blocking_plug;

/* The runtime's pool, or NULL before the first blocking job. */
px__blocking_pool *px__runtime_blocking(px_runtime *rt);

/*
 * Installs `pool` driven by `plug` unless the runtime has a pool already
 * (two workers may race to create it). Returns the pool now installed: if
 * it is not `pool`, the caller lost the race and destroys its own.
 */
px__blocking_pool *px__runtime_blocking_install(px_runtime *rt,
                                                const px__blocking_plug *plug,
                                                px__blocking_pool *pool);

/* The configuration the runtime was created with. */
const px_config *px__runtime_config(px_runtime *rt);

#ifdef __cplusplus
}
#endif

#endif /* POLLUX_API_INTERNAL_SERVICES_H */
