/*
 * Test futures for the work-stealing suite, written with the async macros
 * (which are C) for the C++ GoogleTest file. They link pollux_ws, not
 * //tests:support, which brings the flag-selected executor with it.
 */
#ifndef POLLUX_EXECUTORS_WORK_STEALING_WS_TEST_SUPPORT_H
#define POLLUX_EXECUTORS_WORK_STEALING_WS_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "api/internal/px_internal.h"
#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a task's future starts in the task, and the bytes of a task spawned
 * with a join handle (executors/task.h), for the cache-line test. */
size_t ws_task_future_offset(void);
size_t ws_task_size_joinable(size_t future_size);

/* Marks seen[index] (which must be 0: exactly once), then counts itself. */
typedef struct {
  px_async px;
  px__atomic(long) *count;
  px__atomic(unsigned char) *seen;
  long index;
} ws_counter;
px_future *ws_counter_new(ws_counter *f, px__atomic(long) *count,
                          px__atomic(unsigned char) *seen, long index);

/* Sleeps 1 ms at a time until *count reaches target. */
typedef struct {
  px_async px;
  px__atomic(long) *count;
  long target;
  px_sleep sleep;
} ws_wait_count;
px_future *ws_wait_count_new(ws_wait_count *f, px__atomic(long) *count,
                             long target);

/* Yields `yields` times (forever with -1, or until *stop is set), then
 * returns 42. Counts polls and drops. */
typedef struct {
  px_async px;
  int yields, i;
  px__atomic(int) *stop;
  px__atomic(int) *drops;
} ws_yielder;
px_future *ws_yielder_new(ws_yielder *f, int yields, px__atomic(int) *stop,
                          px__atomic(int) *drops);

/* Stores its own address, which is inside its task (the header, then the
 * future), in *where, and ends. Its size is not a multiple of a cache
 * line, so a packed task would end inside a line its neighbour begins. */
typedef struct {
  px_async px;
  px__atomic(uintptr_t) *where;
  char pad[40];
} ws_where;
px_future *ws_where_new(ws_where *f, px__atomic(uintptr_t) *where);

/* As a main future: spawns n (<= 64) counters with join handles, waits
 * until they ran and the workers let go of them, drops the handles (the
 * tasks are freed on this thread, block_on's), then sleeps. *before and
 * *after are live() before the spawns and after the sleep. */
typedef struct {
  px_async px;
  int n, i;
  long (*live)(void);
  long before, after;
  px__atomic(long) *count;
  px__atomic(unsigned char) *seen;
  px_join_handle joins[64];
  px_sleep sleep;
} ws_reap;
px_future *ws_reap_new(ws_reap *f, int n, long (*live)(void),
                       px__atomic(long) *count,
                       px__atomic(unsigned char) *seen);

/* A chain of spawns: each link spawns the next one (detached) and ends;
 * the last, at depth 0, adds one to *done. */
typedef struct {
  px_async px;
  int depth;
  px__atomic(long) *done;
} ws_chain;
px_future *ws_chain_new(ws_chain *f, int depth, px__atomic(long) *done);

/* Spawns a child that reports its thread id and joins it. Output: the
 * child's thread id (gettid). */
typedef struct {
  px_async px;
  px_join_handle child;
} ws_spawn_probe;
px_future *ws_spawn_probe_new(ws_spawn_probe *f);

/* Spawns n sleepers of 1..n ms (each checks it did not wake early) and joins
 * them all. Output: how many woke on time; error: the first failure. */
#define WS_MAX_SLEEPERS 64
typedef struct {
  px_async px;
  int n, i;
  long on_time;
  px_join_handle joins[WS_MAX_SLEEPERS];
} ws_sleep_many;
px_future *ws_sleep_many_new(ws_sleep_many *f, int n);

/* Spawns `busy` tasks that yield until *stop, sleeps `ms`, sets *stop and
 * joins them: the sleep must fire while every worker is busy. */
typedef struct {
  px_async px;
  int busy, i;
  uint64_t ms;
  px__atomic(int) *stop;
  px_join_handle joins[WS_MAX_SLEEPERS];
  px_sleep sleep;
} ws_sleep_while_busy;
px_future *ws_sleep_while_busy_new(ws_sleep_while_busy *f, int busy,
                                   uint64_t ms, px__atomic(int) *stop);

/* Holds worker 0 in one task that does not yield (it spins until *stop, at
 * most 3 s): tasks are spawned until one lands on worker 0 (the worker that
 * waits in the reactor when it can). Output: the longer of the time from
 * that task's start to block_on's thread waking from a timer, and of a
 * `ms` sleep begun then, in ms; -1 if no task reached worker 0. */
typedef struct ws_worker0_stuck {
  px_async px;
  int round, i;
  uint64_t ms, t0, took;
  px__atomic(int) claimed;
  px__atomic(uint64_t) claimed_at;
  px__atomic(int) *stop;
  px_join_handle joins[4];
  px_sleep sleep;
} ws_worker0_stuck;
px_future *ws_worker0_stuck_new(ws_worker0_stuck *f, uint64_t ms,
                                px__atomic(int) *stop);

/* A TCP round trip on loopback: an acceptor task serving `clients` echo
 * connections, and `clients` client tasks that each send `len` bytes and
 * check the echo. Output: clients that got their bytes back intact. */
typedef struct {
  px_async px;
  int clients, i;
  size_t len;
  long ok;
  px_tcp_listener *listener;
  px_join_handle acceptor;
  px_join_handle joins[WS_MAX_SLEEPERS];
} ws_tcp_echo;
px_future *ws_tcp_echo_new(ws_tcp_echo *f, int clients, size_t len);

#ifdef __cplusplus
}
#endif

#endif
