/*
 * The priority executor's tuning constants (internal), in a header so the
 * tests can check the starvation bound they promise.
 */
#ifndef POLLUX_EXECUTORS_PRIORITY_H
#define POLLUX_EXECUTORS_PRIORITY_H

#include "pollux/task.h"

/*
 * Every PX__PRIORITY_GUARD_INTERVAL-th task poll is a "guard" poll: instead
 * of the highest ready level it serves the next non-empty level of a
 * round-robin rotation over all levels. A power of two, so the poll counter
 * can wrap around freely.
 */
#define PX__PRIORITY_GUARD_INTERVAL 32u

/*
 * The promise (derived in priority.c): the task at the head of a non-empty
 * level is polled within this many task polls, whatever runs above it.
 * A task with n tasks ahead of it in its level waits at most (n + 1) times
 * as long.
 */
#define PX__PRIORITY_STARVATION_BOUND \
  (PX__PRIORITY_GUARD_INTERVAL * PX_PRIORITY_LEVELS)

#endif
