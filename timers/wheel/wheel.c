/*
 * A hierarchical timing wheel, after tokio's time::wheel: six levels of 64
 * slots, one tick per millisecond.
 *
 * Level 0 holds the deadlines of the current 64-tick block, one slot per
 * tick. Level 1 holds those of the current 4096-tick block, one slot per 64
 * ticks, and so on: a slot of level L spans 64^L ticks, and the six levels
 * together span one "epoch" of 64^6 = 2^36 ticks (about 795 days).
 *
 * A node goes to the level named by the highest bit in which its deadline
 * differs from the current tick (`elapsed`), and to the slot named by the
 * deadline's six bits at that level. So a far deadline sits in a coarse slot;
 * when `elapsed` reaches the start of that slot the node is re-inserted
 * ("cascaded") and lands on a finer level, until it reaches level 0, where a
 * slot is exactly one tick and the node fires. A node cascades at most five
 * times per epoch, and insert and cancel touch one list and one bit: O(1).
 *
 * The invariant everything below relies on: between operations, every node
 * sits exactly where insert would put it given the current `elapsed`. It
 * follows that
 *  - every occupied slot starts after `elapsed` (a slot index at level L is
 *    always greater than elapsed's own index there), so the lowest set bit
 *    of the lowest non-empty level is the next slot to process, without any
 *    wrap-around arithmetic;
 *  - all nodes with the same deadline share one slot list. Appending keeps
 *    them in insertion order and a cascade moves them together, in order, to
 *    a slot holding no other node of that deadline, so equal deadlines fire
 *    in insertion order (FIFO) however many cascades they went through.
 * advance keeps the invariant by processing every slot whose start it
 * passes, in order of start, moving `elapsed` to each start as it goes.
 *
 * Deadlines beyond the current epoch have no level. They wait in level 5
 * slot 0, which in-epoch nodes never use (their level-5 index is greater than
 * elapsed's, so at least 1); that slot is processed at the start of the next
 * epoch, where its nodes are placed again: in the wheel if their deadline is
 * in that epoch, back in slot 0 otherwise.
 *
 * Deadlines at or before `elapsed` go to a pending list, kept sorted by
 * deadline, which the next advance fires first.
 */
#include <assert.h>
#include <string.h>

#include "api/internal/list.h"
#include "timers/timer.h"

#define PX__WHEEL_BITS 6 /* log2 of the slots per level */
#define PX__WHEEL_SLOTS (1u << PX__WHEEL_BITS)
#define PX__WHEEL_LEVELS 6
#define PX__WHEEL_EPOCH_MASK \
  (((uint64_t)1 << (PX__WHEEL_LEVELS * PX__WHEEL_BITS)) - 1)

/*
 * Every list a node can be on has an index: first the 6 x 64 slots (level *
 * 64 + slot), then the pending list, then the firing list that advance
 * drains. The node does not store it (8 bytes in every sleep): by the
 * invariant below, a node due after `elapsed` is in the slot list_for names,
 * and one due by then is on the pending or firing list, which have no
 * occupied bit to keep.
 */
#define PX__WHEEL_OVERFLOW ((PX__WHEEL_LEVELS - 1) * PX__WHEEL_SLOTS)
#define PX__WHEEL_PENDING (PX__WHEEL_LEVELS * PX__WHEEL_SLOTS)
#define PX__WHEEL_FIRING (PX__WHEEL_PENDING + 1)
#define PX__WHEEL_LISTS (PX__WHEEL_FIRING + 1)

typedef struct px__wheel {
  uint64_t elapsed;                      /* the current tick */
  uint64_t occupied[PX__WHEEL_LEVELS];   /* bit s: slot s is non-empty */
  px__list lists[PX__WHEEL_LISTS]; /* slots, pending, firing */
} px__wheel;

static px_timer_node *node_of(px__list *l) {
  return px__container_of(l, px_timer_node, at.link);
}

/*
 * The level for `tick` seen from `elapsed` (tokio's level_for): the highest
 * differing bit, divided by the bits per level. OR-ing in the low six bits
 * makes equal values land on level 0 and keeps clz's argument non-zero.
 * A result of PX__WHEEL_LEVELS or more means "beyond this epoch".
 */
static unsigned level_for(uint64_t elapsed, uint64_t tick) {
  uint64_t diff = (elapsed ^ tick) | (PX__WHEEL_SLOTS - 1);
  unsigned top = 63u - (unsigned)__builtin_clzll(diff);
  return top / PX__WHEEL_BITS;
}

/*
 * The slot for a tick after `elapsed` (see the top): the level of the
 * highest bit in which they differ, and the tick's six bits there; beyond
 * this epoch, the overflow slot.
 */
static unsigned list_for(const px__wheel *w, uint64_t tick) {
  unsigned level = level_for(w->elapsed, tick);
  if (level >= PX__WHEEL_LEVELS) return PX__WHEEL_OVERFLOW;
  unsigned slot =
      (unsigned)(tick >> (level * PX__WHEEL_BITS)) & (PX__WHEEL_SLOTS - 1);
  return level * PX__WHEEL_SLOTS + slot;
}

/* Clears a slot's occupied bit once its list is empty. */
static void slot_vacated(px__wheel *w, unsigned where) {
  if (where < PX__WHEEL_PENDING && px__list_empty(&w->lists[where]))
    w->occupied[where / PX__WHEEL_SLOTS] &=
        ~((uint64_t)1 << (where % PX__WHEEL_SLOTS));
}

/* Puts an unlinked node on the list its tick calls for (see the top). */
static void place(px__wheel *w, px_timer_node *n) {
  if (n->tick <= w->elapsed) {
    /*
     * Already due. Walking back from the tail keeps the list sorted, and
     * stops at the first node that is not later, so equal ticks stay in
     * insertion order. This is O(1) in the usual case (deadlines of "now"
     * or in increasing order); only overdue deadlines inserted out of order
     * pay for the walk.
     */
    px__list *l = &w->lists[PX__WHEEL_PENDING];
    px__list *after = l->prev;
    while (after != l && node_of(after)->tick > n->tick) after = after->prev;
    px__list_insert_after(after, &n->at.link);
    return;
  }
  unsigned where = list_for(w, n->tick);
  px__list_insert_tail(&w->lists[where], &n->at.link);
  w->occupied[where / PX__WHEEL_SLOTS] |= (uint64_t)1
                                          << (where % PX__WHEEL_SLOTS);
}

/*
 * The next slot to process and the tick it starts at, or -1 when the slots
 * are all empty. By the invariant, a lower level always starts earlier than
 * a higher one (its slots lie within the block elapsed is in, theirs after
 * it), and the overflow slot, at the next epoch, comes after everything.
 */
static int next_slot(const px__wheel *w, uint64_t *start) {
  for (unsigned level = 0; level < PX__WHEEL_LEVELS; level++) {
    uint64_t occupied = w->occupied[level];
    if (level == PX__WHEEL_LEVELS - 1) occupied &= ~(uint64_t)1;
    if (occupied == 0) continue;
    unsigned shift = level * PX__WHEEL_BITS;
    unsigned slot = (unsigned)__builtin_ctzll(occupied);
    uint64_t block = ((uint64_t)1 << (shift + PX__WHEEL_BITS)) - 1;
    *start = (w->elapsed & ~block) + ((uint64_t)slot << shift);
    return (int)(level * PX__WHEEL_SLOTS + slot);
  }
  if (w->occupied[PX__WHEEL_LEVELS - 1] & 1) {
    /*
     * The next epoch. It cannot wrap to 0: a node is only here while its
     * tick lies in a later epoch than elapsed, so elapsed is not in the last.
     */
    *start = (w->elapsed | PX__WHEEL_EPOCH_MASK) + 1;
    assert(*start != 0);
    return PX__WHEEL_OVERFLOW;
  }
  return -1;
}

/*
 * Empties list `where`: nodes due by `due` move to the firing list, the
 * others cascade to their place seen from elapsed (== due for a slot).
 *
 * No callback runs here, which is what keeps equal deadlines in order: if a
 * callback could insert while the slot was half processed, its node might
 * land in a lower slot before an older node of the same deadline cascaded
 * there behind it.
 */
static void collect(px__wheel *w, unsigned where, uint64_t due) {
  px__list taken, *l;
  px__list_init(&taken);
  px__list_splice_tail(&taken, &w->lists[where]);
  slot_vacated(w, where);
  while ((l = px__list_pop(&taken)) != NULL) {
    px_timer_node *n = node_of(l);
    if (n->tick <= due) {
      px__list_insert_tail(&w->lists[PX__WHEEL_FIRING], &n->at.link);
    } else {
      place(w, n);
    }
  }
}

/*
 * Fires the firing list. Each node is unlinked (which disarms it) before its
 * callback runs, and the loop re-reads the head every time, so a callback
 * may re-insert its node or insert or cancel any other, including one still
 * waiting on this list (cancel unlinks it from here).
 */
static size_t drain(px__wheel *w, size_t max, px__timer_fire_fn fire,
                    void *arg) {
  size_t fired = 0;
  px__list *l;

  while (fired < max &&
         (l = px__list_pop(&w->lists[PX__WHEEL_FIRING])) != NULL) {
    fire(node_of(l), arg);
    fired++;
  }
  return fired;
}

static void wheel_init(void *timer, uint64_t now) {
  px__wheel *w = timer;
  memset(w, 0, sizeof *w);
  for (size_t i = 0; i < PX__WHEEL_LISTS; i++) px__list_init(&w->lists[i]);
  w->elapsed = now;
}

/* The wheel needs no memory of its own to arm a node: it never fails. */
static int wheel_insert(void *timer, px_timer_node *node) {
  assert(!px__timer_armed(node));
  place(timer, node);
  return 0;
}

/*
 * Disarms `node`; a node that is not armed (it fired already) is left be.
 * Unlinking needs no index; only a slot's occupied bit does, and the slot
 * is the one list_for names (see the top). Were it ever another, the bit
 * would merely stay set over an empty list, costing a wasted wake-up,
 * since slot_vacated clears a bit only when its list is empty.
 */
static void wheel_cancel(void *timer, px_timer_node *node) {
  px__wheel *w = timer;
  if (!px__timer_armed(node)) return;
  px__list_remove(&node->at.link);
  if (node->tick > w->elapsed) slot_vacated(w, list_for(w, node->tick));
}

/* Nodes left firing (an advance stopped at its `max`) and pending nodes
 * are due now: the current tick, or the earliest pending one's, answers. */
static uint64_t wheel_next_tick(void *timer) {
  px__wheel *w = timer;
  uint64_t start;
  if (!px__list_empty(&w->lists[PX__WHEEL_FIRING])) return w->elapsed;
  px__list *first = px__list_first(&w->lists[PX__WHEEL_PENDING]);
  if (first != NULL) return node_of(first)->tick;
  return next_slot(w, &start) >= 0 ? start : PX__TICK_NONE;
}

/*
 * Fires what an earlier call left on the firing list (it stopped at its
 * `max`), then the pending list, then processes each slot that starts by
 * `now`, in order of start. Callbacks run with elapsed at the tick being
 * fired, so a node they insert for a later tick up to `now` fires later in
 * this same call, in order; one they insert for that tick or before goes
 * to the pending list and fires on the next call, which keeps a callback
 * that re-arms "now" from looping forever. A call that reaches `max`
 * returns with elapsed at the tick being fired and the rest of its slot
 * on the firing list, as a callback would see them. advance must not be
 * called from a callback.
 */
static size_t wheel_advance(void *timer, uint64_t now, size_t max,
                            px__timer_fire_fn fire, void *arg) {
  px__wheel *w = timer;
  uint64_t start;
  int where;

  if (now < w->elapsed) now = w->elapsed; /* time never goes backwards */
  size_t fired = drain(w, max, fire, arg);
  if (fired == max) return fired;
  collect(w, PX__WHEEL_PENDING, w->elapsed);
  fired += drain(w, max - fired, fire, arg);
  if (fired == max) return fired;
  while ((where = next_slot(w, &start)) >= 0 && start <= now) {
    w->elapsed = start;
    collect(w, (unsigned)where, start);
    fired += drain(w, max - fired, fire, arg);
    if (fired == max) return fired;
  }
  w->elapsed = now;
  return fired;
}

/* Everything lives in the instance, so there is nothing to release. */
static void wheel_destroy(void *timer) { (void)timer; }

const px__timer_ops px__wheel_ops = {
    .name = "wheel",
    .size = sizeof(px__wheel),
    .init = wheel_init,
    .insert = wheel_insert,
    .cancel = wheel_cancel,
    .next_tick = wheel_next_tick,
    .advance = wheel_advance,
    .destroy = wheel_destroy,
};
