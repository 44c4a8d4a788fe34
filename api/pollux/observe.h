/**
 * @file
 * pollux/observe.h - what a running runtime can tell you about itself
 * (tokio's RuntimeMetrics, plus logging and a trace timeline).
 *
 * Three tools, described in docs/OBSERVABILITY.md:
 *
 *   PX_LOG=error|warn|info|debug|trace   log lines on stderr (default warn)
 *   PX_TRACE=path.json                   a Chrome trace-event file, for Perfetto
 *   px_runtime_metrics(rt, &m)           counters and gauges, below
 *
 * The two environment variables are read when a runtime is created.
 */
#ifndef POLLUX_OBSERVE_H
#define POLLUX_OBSERVE_H

/** @addtogroup observe
 * @{
 */

#include <stdint.h>

#include "pollux/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Workers whose own counters px_metrics reports; totals cover all of them. */
#define PX_METRICS_MAX_WORKERS 64

/** One worker thread's counters (FIFO and priority: the block_on thread). */
typedef struct px_worker_metrics {
  uint64_t polls;     /**< task polls this worker ran */
  uint64_t steals;    /**< successful steals (each takes up to half a queue) */
  uint64_t parks;     /**< times it parked with nothing to do, however
                         briefly (a wake-up caught while spinning counts) */
  uint64_t lifo_hits; /**< tasks it ran from its LIFO slot (work stealing) */
  uint64_t busy_ns;   /**< time not parked: running tasks and the rest */
  uint64_t idle_ns;   /**< time spent parked */
  uint64_t local_queue_depth; /**< tasks in its local queue when last looked */
} px_worker_metrics;

/**
 * A snapshot. Counters only grow over the runtime's life; gauges (depths,
 * alive, threads) are the value when they were last observed. Fields are read
 * one by one while the runtime runs, so two of them may disagree by the
 * events that happened during the read.
 */
typedef struct px_metrics {
  uint64_t tasks_spawned;   /**< px_spawn and px_runtime_spawn that succeeded */
  uint64_t tasks_completed; /**< tasks finished: ready, failed or cancelled */
  uint64_t tasks_alive;     /**< spawned - completed */
  uint64_t polls;           /**< task polls, all workers */
  uint64_t block_on_polls;  /**< polls of block_on's own future */
  uint64_t wakes_local;     /**< wakes of a task from one of its runtime's workers */
  uint64_t wakes_remote;    /**< wakes from any other thread */
  uint64_t injection_queue_depth; /**< tasks queued from outside the workers */
  uint64_t reactor_polls;   /**< reactor polls, blocking or not */
  uint64_t reactor_events;  /**< registrations those polls dispatched */
  uint64_t timers_armed;    /**< timer insertions that succeeded */
  uint64_t timers_fired;    /**< timers that reached their deadline */
  uint64_t timers_cancelled; /**< armed timers cancelled before firing */
  uint64_t blocking_threads; /**< blocking-pool threads alive, busy or idle */
  uint64_t blocking_queue_depth; /**< blocking jobs waiting for a thread */
  uint32_t workers;          /**< worker threads that ran so far */
  uint32_t workers_reported; /**< entries of `worker` filled: min(workers, MAX) */
  px_worker_metrics worker[PX_METRICS_MAX_WORKERS]; /**< per-worker counters, `workers_reported` of them */
} px_metrics;

/**
 * Fills *out with the runtime's metrics. Any thread, any time between
 * px_runtime_new and px_runtime_free. Returns 0, or PX_EINVAL for NULL.
 */
int px_runtime_metrics(px_runtime *rt, px_metrics *out);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_OBSERVE_H */
