/*
 * The blocking pool's internals shared by pool.c and fs.c (internal).
 */
#ifndef POLLUX_BLOCKING_POOL_H
#define POLLUX_BLOCKING_POOL_H

#include <stddef.h>

#include "pollux/blocking.h"
#include "pollux/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Futures built on px_blocking whose job must own its arguments. A plain
 * px_spawn_blocking borrows `arg`, which is fine for callers who know their
 * data outlives the job. A file read cannot assume that: if the future is
 * dropped mid-read, the thread must not write into a buffer that may be
 * gone. So such futures copy what the job needs into a payload that lives in
 * the job's own allocation, and copy results back out when they complete.
 */
typedef struct px__blocking_hooks {
  /* Bytes of payload the job needs (called on the polling thread). */
  size_t (*payload_size)(const px_blocking *self);
  /* Fills the payload from the future (polling thread, before queuing). */
  void (*prepare)(const px_blocking *self, void *payload);
  /* The work itself, on a pool thread. */
  int (*run)(void *payload, px_value *out);
  /* The job completed and the future reads its result (polling thread):
   * copy what the caller asked for out of the payload. May change *err. */
  void (*finish)(px_blocking *self, void *payload, int *err, px_value *out);
  /* The job completed but nobody will read the result (any thread):
   * release what it produced (an opened descriptor). May be NULL. */
  void (*discard)(void *payload, int err, px_value out);
} px__blocking_hooks;

/* Initialises a px_blocking driven by hooks instead of fn/arg. */
px_future *px__blocking_init_hooks(px_blocking *f,
                                   const px__blocking_hooks *hooks);

#ifdef __cplusplus
}
#endif

#endif
