/*
 * Async test futures for observe_test.cc (the async macros are C).
 */
#ifndef POLLUX_TESTS_OBSERVE_SUPPORT_H
#define POLLUX_TESTS_OBSERVE_SUPPORT_H

#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Spawns n tasks that each yield k times, and joins them all. */
int obs_run_yielders(px_runtime *rt, int n, int k);

/* Sleeps 2 ms (armed, fired), then races a 10 s sleep against a 20 ms one
 * (two armed, one fired, the loser cancelled). */
int obs_run_timers(px_runtime *rt);

/* Writes a message through a connected socket pair, a spawned task echoes
 * it back, and the main future reads it: returns 0 when it came back. */
int obs_run_socket_round_trip(px_runtime *rt);

/* Spawns one task whose first poll blocks `block_ms` then yields once, and
 * `fast` tasks that yield once; joins them all. */
int obs_run_slow(px_runtime *rt, int block_ms, int fast);

/* Spawns three tasks that each await a 100 ms blocking job, and fills *mid
 * with the metrics 30 ms later, while the jobs run or wait. */
int obs_run_blocking(px_runtime *rt, px_metrics *mid);

/* Re-reads a PX_LOG value (observe/log.c), for tests only. */
void obs_log_parse(const char *value);
/* Forgets that a bad PX_SLOW_POLL_MS was warned about. */
void obs_env_reset(void);
/* Whether the slow-poll watchdog sleeps until a poll wakes it
 * (observe/watchdog.c). */
int obs_watchdog_asleep(void);
/* How many looks the watchdog has taken so far (all runtimes). */
uint64_t obs_watchdog_looks(void);
/* Blocks on a px_sleep of `ms` milliseconds: the runtime polls no task. */
int obs_run_idle(px_runtime *rt, int ms);

#ifdef __cplusplus
}
#endif

#endif
