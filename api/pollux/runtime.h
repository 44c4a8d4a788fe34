/**
 * @file
 * pollux/runtime.h - creating a runtime and driving futures on it.
 *
 * A runtime bundles the backends chosen at build time: an executor (which
 * runs tasks), a reactor (which turns OS readiness into wake-ups) and a timer
 * (which fires sleeps). px_build_info() names them.
 */
#ifndef POLLUX_RUNTIME_H
#define POLLUX_RUNTIME_H

/** @addtogroup runtime
 * @{
 */

#include <stddef.h>
#include <stdint.h>

#include "pollux/context.h"
#include "pollux/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How to build a runtime: px_config_init fills in the defaults, px_runtime_new validates. */
typedef struct px_config {
  /** Worker threads for multi-threaded executors: 1..1024. Default: CPUs. */
  uint32_t workers;
  /** Events fetched per reactor poll: 1..65536. Default 1024. */
  uint32_t event_capacity;
  /**
   * Tasks polled between two non-blocking looks at the reactor and timers,
   * so I/O and timers are served even when tasks are always ready:
   * 1..1000000. Default 61 (tokio's figure).
   */
  uint32_t event_interval;
  /** Blocking pool (pollux/blocking.h): at most this many threads run
   * px_spawn_blocking jobs at once: 1..4096. Default 64. */
  uint32_t blocking_threads;
  /** A pool thread idle this long exits: 0..3600000 ms. Default 10000. */
  uint32_t blocking_idle_ms;
  /** px_runtime_free waits this long for running blocking jobs, then
   * abandons them with a message on stderr: 0 (do not wait)..3600000 ms.
   * Default 5000. */
  uint32_t blocking_shutdown_ms;
  /** A task whose single poll runs this long gets one warning on stderr
   * (docs/OBSERVABILITY.md): 0 (off)..3600000 ms. Default 100, or the
   * environment variable PX_SLOW_POLL_MS when it is set. Polls are timed by
   * one watchdog thread per process ("px-watchdog"), which runs while a
   * runtime that asks for the warning exists. */
  uint32_t slow_poll_ms;
} px_config;

/** Fills `cfg` with the defaults. */
void px_config_init(px_config *cfg);

/**
 * Checks a configuration: 0 when valid, PX_EINVAL otherwise, in which case
 * px_config_error() says which field is wrong and why.
 */
int px_config_validate(const px_config *cfg);

/** The message of the last failed validation on this thread, or "". */
const char *px_config_error(void);

/**
 * Creates a runtime. `cfg` may be NULL for the defaults. Errors: PX_EINVAL
 * (bad config or NULL out), PX_ENOMEM, or the OS error of the reactor setup.
 */
int px_runtime_new(px_runtime **out, const px_config *cfg);

/**
 * Runs `future` to completion on the calling thread, running spawned tasks,
 * I/O and timers meanwhile (tokio's Runtime::block_on). The future is polled
 * in place and dropped when it completes. Returns the future's error
 * (0 on success; its output is in future->output), or a call error:
 * PX_EINVAL (NULL), PX_EBUSY (called from inside a runtime: a task or a
 * future being polled, of this or any runtime, where blocking the thread
 * would stall or deadlock it; or another thread is in block_on of this
 * runtime; an error naming the cause is logged), PX_ESHUTDOWN, PX_EDONE
 * (future already done). On a call error the future is not dropped.
 */
int px_runtime_block_on(px_runtime *rt, px_future *future);

/**
 * Shuts the runtime down and frees it: every task still alive is dropped
 * exactly once (its join handle, if any, reports PX_ECANCELED), then the
 * backends are destroyed. Must not be called from inside the runtime.
 * NULL is ignored.
 */
void px_runtime_free(px_runtime *rt);

/** The runtime running on this thread, or NULL. */
px_runtime *px_runtime_current(void);

/**
 * The convenience of #[tokio::main]: a runtime with the default config,
 * block_on(main), free. Returns main's error or the setup error, or
 * PX_EBUSY (with an error logged) when called from inside a runtime. `main`
 * is dropped in every case.
 */
int px_run(px_future *main);

/**
 * "executor=fifo reactor=io_uring timer=wheel": the backends built in. A
 * runtime may run on its reactor's fallback instead: px_runtime_reactor.
 */
const char *px_build_info(void);

/**
 * The reactor `rt` runs on ("io_uring", "epoll", ...): the one built in,
 * or its fallback where it could not run when px_runtime_new ran
 * (io_uring, the Linux default, falls back to epoll under a seccomp filter,
 * with kernel.io_uring_disabled, on kernels before 5.13, and under
 * valgrind). NULL for NULL.
 */
const char *px_runtime_reactor(const px_runtime *rt);

/**
 * The allocator every pollux allocation goes through (tasks, registrations,
 * buffers). Install before creating runtimes; NULL restores malloc/free.
 * `alloc` returns NULL on failure, which pollux reports as PX_ENOMEM.
 */
typedef struct px_allocator {
  void *(*alloc)(void *ctx, size_t size); /**< returns `size` bytes, or NULL */
  void (*free)(void *ctx, void *ptr, size_t size); /**< releases `ptr`, allocated with `size` */
  void *ctx; /**< passed to alloc and free */
} px_allocator;
/** Installs `allocator` (copied) for every later allocation; NULL restores malloc/free. */
void px_set_allocator(const px_allocator *allocator);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_RUNTIME_H */
