/*
 * The priority executor: one thread (the one in block_on) runs tasks by
 * priority level, highest first, and in wake order within a level.
 *
 * Queues. One intrusive FIFO list per level (through task->queue_next, so
 * queuing never allocates) and a bitmap with bit L set while level L is not
 * empty. The highest ready level is the bitmap's highest set bit, one
 * __builtin_clz away, so picking the next task is O(1) whatever the number
 * of queued tasks. Wakes and spawns from other threads go to one remote list
 * behind a mutex, as in the FIFO executor, and are sorted into their levels
 * when the loop takes them.
 *
 * Starvation guard. Strict priority would let a level that is always ready
 * (a task that yields forever) starve every level below it. So every
 * K-th task poll (K = PX__PRIORITY_GUARD_INTERVAL = 32) is a guard poll: it
 * serves the next non-empty level of a rotation that walks the levels from
 * high to low and wraps around (a cursor remembers the level it served
 * last; the guard picks the highest non-empty level strictly below the
 * cursor, or, when there is none, the highest non-empty level). This is
 * libevent's max_dispatch_interval idea turned into a round-robin share: a
 * low level gets at least 1/(K * levels) of the polls, the highest ready
 * level all the others.
 *
 * The bound. Take a task at the head of level L (L non-empty from then on).
 *   1. The first guard poll comes within K polls.
 *   2. Guard polls then reach L within PX_PRIORITY_LEVELS of them: while the
 *      cursor is above L, each guard poll serves a non-empty level in
 *      [L, cursor) and lowers the cursor, so L comes after at most
 *      cursor - L of them; when the cursor is at or below L, at most
 *      cursor levels lie below it, then one wrap serves the highest
 *      non-empty level h >= L, then at most h - L more. Either way at most
 *      L + 1 + (PX_PRIORITY_LEVELS - 1 - L) = PX_PRIORITY_LEVELS guard polls.
 *      The rotation includes the top level, so this holds however levels
 *      above L appear and vanish in between.
 *   3. Guard polls are K polls apart, so the task is polled within
 *      K * PX_PRIORITY_LEVELS = 256 task polls (PX__PRIORITY_STARVATION_BOUND)
 *      of reaching the head of its level. With all eight levels always
 *      ready, a level-0 task that yields is polled exactly every 256 polls:
 *      the bound is tight. A task behind n others of its level waits at most
 *      (n + 1) * 256 polls, since each of them is served before it.
 * Normal (non-guard) polls only ever help: they serve L as soon as it is the
 * highest ready level. "Polls" counts task polls; the main future of
 * block_on and the looks at I/O and timers come on top.
 *
 * I/O and timers are checked without blocking every event_interval (61)
 * polls, and the thread parks in the reactor when no task is ready, exactly
 * as in the FIFO executor.
 */
#include "executors/priority/priority.h"

#include "api/internal/px_internal.h"
#include "executors/executor.h"
#include "executors/single_thread.h"

_Static_assert(PX_PRIORITY_LEVELS <= 32, "levels must fit the bitmap");
_Static_assert((PX_PRIORITY_LEVELS & (PX_PRIORITY_LEVELS - 1)) == 0,
               "a level is masked into the array (push_local)");
_Static_assert((PX__PRIORITY_GUARD_INTERVAL &
                (PX__PRIORITY_GUARD_INTERVAL - 1)) == 0 &&
                   PX__PRIORITY_GUARD_INTERVAL >= 2,
               "the guard interval is a power of two, at least 2");

struct px__executor {
  px_runtime *rt;
  uint32_t event_interval;
  px__task_list levels[PX_PRIORITY_LEVELS];
  uint32_t ready;  /* bit L set while levels[L] is not empty */
  uint32_t polls;  /* task polls so far (wraps; K divides 2^32) */
  uint32_t cursor; /* the level the last guard poll served */
  px__remote_queue remote; /* mixed levels, in wake order */
};

/* The highest set bit of a non-zero bitmap. */
static uint32_t highest(uint32_t bits) {
  return 31u - (uint32_t)__builtin_clz(bits);
}

/* Queues `t` at the tail of its level (runtime thread only). Inline, as
 * pick is: both run once per task poll, and as calls they cost a tenth of a
 * yield (bench/yield_many, callgrind). */
static inline __attribute__((always_inline)) void push_local(
    px__executor *ex, px_task *t) {
  /* Spawn validates the level; masking keeps a bad header from indexing
   * past the array all the same. */
  uint32_t level = (uint32_t)t->priority & (PX_PRIORITY_LEVELS - 1);
  px__task_list_push(&ex->levels[level], t);
  ex->ready |= 1u << level;
}

/*
 * The next task to poll, or NULL when no level is ready. Every K-th call is
 * a guard poll that follows the rotation (see the comment at the top).
 */
static inline __attribute__((always_inline)) px_task *pick(
    px__executor *ex) {
  if (ex->ready == 0) return NULL;
  uint32_t level = highest(ex->ready);
  if (++ex->polls % PX__PRIORITY_GUARD_INTERVAL == 0) {
    /* The levels strictly below the cursor. The cursor can be
     * PX_PRIORITY_LEVELS (up to 32), so the shift is done in 64 bits, where
     * shifting by 32 is defined. */
    uint32_t below = ex->ready & (uint32_t)((1ull << ex->cursor) - 1);
    level = highest(below != 0 ? below : ex->ready);
    ex->cursor = level;
  }
  px__task_list *l = &ex->levels[level];
  px_task *t = px__task_list_pop(l);
  if (l->head == NULL) ex->ready &= ~(1u << level);
  return t;
}

static int priority_create(px_runtime *rt, const px_config *cfg,
                           px__executor **out) {
  px__executor *ex = px__calloc(sizeof *ex);
  if (ex == NULL) return PX_ENOMEM;
  ex->rt = rt;
  ex->event_interval = cfg->event_interval;
  /* Above every level, so the first guard poll starts from the top. */
  ex->cursor = PX_PRIORITY_LEVELS;
  px__remote_init(&ex->remote);
  *out = ex;
  return 0;
}

static void priority_destroy(px__executor *ex) {
  px__remote_destroy(&ex->remote);
  px__free(ex, sizeof *ex);
}

static void priority_schedule(px__executor *ex, px_task *t) {
  if (px__likely(px__runtime_is_current(ex->rt)))
    push_local(ex, t);
  else
    px__remote_push(&ex->remote, ex->rt, t);
}

/* Sorts the remote wakes into their levels, keeping their order. */
static void take_remote(px__executor *ex) {
  px__task_list taken = {NULL, NULL, 0};
  px__remote_take(&ex->remote, ex->rt, &taken);
  /* Sorting happens outside the lock: the list is ours now. */
  px_task *t;
  while ((t = px__task_list_pop(&taken)) != NULL) push_local(ex, t);
}

/* Tasks in all levels together (the local_depth gauge, and whether to
 * park): asked twice per batch of polls, so summed here rather than
 * counted on every push and pick. */
static size_t queued(px__executor *ex) {
  size_t n = 0;
  for (uint32_t level = 0; level < PX_PRIORITY_LEVELS; level++)
    n += ex->levels[level].len;
  return n;
}

static const px__single_thread_hooks hooks = {take_remote, pick, push_local,
                                              queued};

static int priority_block_on(px__executor *ex, px_future *main) {
  return px__single_thread_block_on(ex->rt, ex, ex->event_interval, &hooks,
                                    &ex->remote, main);
}

static void priority_drain(px__executor *ex) {
  take_remote(ex);
  for (uint32_t level = 0; level < PX_PRIORITY_LEVELS; level++) {
    px_task *t;
    while ((t = px__task_list_pop(&ex->levels[level])) != NULL)
      px__task_drop_notified(t);
  }
  ex->ready = 0;
}

const px__executor_ops px__priority_ops = {
    .name = "priority",
    .create = priority_create,
    .destroy = priority_destroy,
    .schedule = priority_schedule,
    .block_on = priority_block_on,
    .drain = priority_drain,
};
