/*
 * Test futures written with the async macros (which are C), for the C++
 * GoogleTest suites, plus a counting waker and a counting allocator.
 */
#ifndef POLLUX_TESTS_SUPPORT_H
#define POLLUX_TESTS_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/internal/px_internal.h"
#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- A waker that counts what is done to it ---------------------------- */
typedef struct counting_waker {
  px__atomic(int) clones, wakes, wakes_by_ref, drops;
} counting_waker;
px_waker counting_waker_make(counting_waker *cw); /* counts as one clone */

/* ---- Descriptors ------------------------------------------------------- */
/* How many descriptors this process has open (from /proc/self/fd), so a
 * test can show it left none behind; -1 when that cannot be read. */
int open_fd_count(void);

/* ---- Unix socket paths ------------------------------------------------- */
/* A fresh path for a Unix socket, "/tmp/px-XXXXXX/s", in a directory made
 * for it (mkdtemp). A name made from the pid is not unique: Bazel's sandbox
 * runs tests in PID namespaces that share /tmp, where many have the same
 * pid (two binding one path: EADDRINUSE). And $TEST_TMPDIR is often longer
 * than sun_path. 0, or -1 when no directory could be made; unix_path_free
 * removes the socket, if any, and the directory. */
typedef struct unix_path {
  char path[32];
} unix_path;
int unix_path_new(unix_path *p);
void unix_path_free(unix_path *p);

/* ---- The build under test ---------------------------------------------- */
/* Whether px_build_info() names `backend` ("executor=work_stealing",
 * "reactor=io_uring"): for the few checks one kind of build cannot promise. */
bool built_with(const char *backend);
/* Whether `rt` runs on reactor `name` (px_runtime_reactor): what a check
 * of one reactor's behaviour asks, since a runtime of the io_uring build
 * runs on epoll where io_uring is refused or under valgrind. */
bool runs_on(px_runtime *rt, const char *name);

/* ---- An allocator that counts live bytes and can fail on demand -------- */
typedef struct alloc_stats {
  px__atomic(long) live_bytes, live_blocks, total_allocs;
  px__atomic(long) fail_at; /* fail the Nth allocation from now (1-based); 0: never */
} alloc_stats;
extern alloc_stats g_alloc;
void counting_allocator_install(void);
void counting_allocator_remove(void);

/* ---- Futures ----------------------------------------------------------- */

/* Appends `id` to log[*len] `steps` times, yielding between appends; returns id. */
typedef struct {
  px_async px;
  int id, steps, i;
  int *log;
  px__atomic(int) *len;
} logger;
px_future *logger_new(logger *f, int id, int steps, int *log, px__atomic(int) *len);

/* Sleeps `delay`, then sets *flag = 1 and returns `value`. Counts drops. */
typedef struct {
  px_async px;
  px_duration delay;
  int64_t value;
  px__atomic(int) *flag;
  px__atomic(int) *drops;
  px_sleep sleep;
} sleeper;
/* Delay 0 completes in the first poll, without a sleep. */
px_future *sleeper_new(sleeper *f, px_duration delay, int64_t value,
                       px__atomic(int) *flag, px__atomic(int) *drops);

/* Spawns a chain `depth` deep (each task spawns the next and joins it);
 * returns the depth reached. */
typedef struct {
  px_async px;
  int depth;
  px_join_handle child;
} chain;
px_future *chain_new(chain *f, int depth);

/* Calls block_on on the current runtime from inside; returns its result. */
typedef struct {
  px_async px;
} nested_block_on;
px_future *nested_block_on_new(nested_block_on *f);

/* Spawns n counter tasks (each decrements *remaining), joins none; waits
 * until *remaining is 0 by yielding. Output: n. */
typedef struct {
  px_async px;
  int n, i;
  px__atomic(int) *remaining;
} spawn_many;
px_future *spawn_many_new(spawn_many *f, int n, px__atomic(int) *remaining);

/* Completes when *value >= target; stores its waker in *slot for others,
 * then sets *stored (if not NULL) so another thread knows the slot is set. */
typedef struct {
  px_future base;
  px__atomic(int) *value;
  int target;
  px_waker *slot;
  px__atomic(int) *stored;
} wait_for;
px_future *wait_for_new(wait_for *f, px__atomic(int) *value, int target,
                        px_waker *slot, px__atomic(int) *stored);

#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* Pending forever; its drop tries px_spawn and stores the result in *rc. */
typedef struct {
  px_future base;
  px__atomic(int) *rc;
} spawn_on_drop;
px_future *spawn_on_drop_new(spawn_on_drop *f, px__atomic(int) *rc);
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* Returns (own priority) * 100 + (priority seen by a child spawned with
 * PX_PRIORITY_INHERIT) * 10 + (priority of a child spawned at level 1). */
typedef struct {
  px_async px;
  px_join_handle inherit, explicit_;
} priority_probe;
px_future *priority_probe_new(priority_probe *f);
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* Receives n values from an always-ready channel; counts, in *seen, how
 * many times *ticks moved while it ran (other tasks got a turn). */
typedef struct {
  px_async px;
  px_mpsc_receiver *rx;
  int n, i;
  px__atomic(int) *ticks;
  int last;
  int seen;
  px_mpsc_recv recv;
} coop_consumer;
px_future *coop_consumer_new(coop_consumer *f, px_mpsc_receiver *rx, int n,
                             px__atomic(int) *ticks);

/* Yields until *stop is set, adding one to *ticks per poll. */
typedef struct {
  px_async px;
  px__atomic(int) *ticks, *stop;
} ticker;
px_future *ticker_new(ticker *f, px__atomic(int) *ticks, px__atomic(int) *stop);
#ifdef __cplusplus
}
#endif

#endif /* POLLUX_TESTS_SUPPORT_H */
