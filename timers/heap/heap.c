/*
 * A 4-ary min-heap of deadlines, after libev's "4-heap" and libuv's timer
 * heap: the alternative to the timing wheel when timers are few, or when
 * deadlines are far apart and a wheel's cascades would be wasted work.
 *
 * The heap is an array of entries ordered by (tick, seq): the deadline, and
 * then a sequence number handed out by insert, which makes equal deadlines
 * fire in insertion order (a plain heap is not stable). Like libev's ANHE,
 * each entry caches its key next to the node pointer, so sifting compares
 * keys that sit in the array instead of chasing a pointer per comparison.
 * A node in the array records its index there (node->at.heap.index, beside
 * a mark that says "in the array"), which makes cancel O(log n): the node's
 * entry is found directly and replaced by the last.
 *
 * Why 4-ary: the tree is half as deep as a binary heap's, and the four
 * children of a node sit side by side in memory (96 bytes), so a sift-down
 * reads a couple of neighbouring cache lines per level instead of jumping
 * around twice as many levels (libev measured it).
 *
 * The first PX__HEAP_INLINE entries live inside the instance itself, so a
 * runtime with a handful of timers never allocates (like the wheel). Past
 * that the array moves to memory from px__alloc and grows by doubling; that
 * is the only memory this backend ever asks for, and the only way insert
 * can fail. When the heap empties it goes back to the inline array and
 * frees the big one: a burst of timers does not pin memory for the life of
 * the runtime, and a steady few never touch the allocator.
 *
 * Deadlines at or before the tick being fired, armed from a callback during
 * advance, must wait for the next advance (timer.h). In a heap they would
 * sort to the top and fire at once, so they wait on a side list (linked
 * through node->at.link, which a node in the array does not use) that
 * advance moves into the heap when it returns. Their heap slots are reserved
 * when they are inserted, so that move cannot run out of memory.
 */
#include <string.h>

#include "api/internal/list.h"
#include "api/internal/px_internal.h"
#include "timers/timer.h"

#define PX__HEAP_ARITY 4
/* Entries held inside the instance before the array moves to the heap. */
#define PX__HEAP_INLINE 16
/* A bound on the array (it held a 32-bit index once): far below where
 * doubling or cap * sizeof(entry) could overflow. */
#define PX__HEAP_MAX_ENTRIES (UINT32_MAX - 1u)

/*
 * node->at.heap.mark of a node in the array: a list head that is never a
 * list, so no deferred node's link (which points at a node's link or at
 * the deferred list's head) ever equals it, and it is not NULL, so the
 * node reads as armed (px__timer_armed).
 */
static px__list in_array;

typedef struct px__heap_entry {
  uint64_t tick;       /* the node's deadline, cached */
  uint64_t seq;        /* insertion order, for equal deadlines */
  px_timer_node *node; /* node->at.heap.index is this entry's index */
} px__heap_entry;

typedef struct px__heap {
  px__heap_entry *entries; /* inline_entries, or memory from px__alloc */
  size_t len;            /* entries in the heap */
  size_t cap;            /* how many entries the array can hold */
  uint64_t elapsed;      /* the current tick */
  uint64_t next_seq;     /* the next insertion's sequence number */
  px__list deferred;     /* px_timer_node.link, in insertion order */
  size_t deferred_len;   /* nodes on the deferred list */
  int advancing;         /* inside advance: callbacks may be running */
  /* The last advance stopped at its `max` with nodes still due: until one
   * completes, inserts for the tick being fired are deferred, as inside a
   * callback. */
  int partial;
  px__heap_entry inline_entries[PX__HEAP_INLINE];
} px__heap;

static int entry_less(const px__heap_entry *a, const px__heap_entry *b) {
  return a->tick < b->tick || (a->tick == b->tick && a->seq < b->seq);
}

/* Stores `e` at index `i` and tells its node where it now lives. */
static void put(px__heap *h, size_t i, px__heap_entry e) {
  h->entries[i] = e;
  e.node->at.heap.mark = &in_array;
  e.node->at.heap.index = i;
}

/* Moves `e` up from the hole at `i` until its parent is not later. */
static void sift_up(px__heap *h, size_t i, px__heap_entry e) {
  while (i > 0) {
    size_t parent = (i - 1) / PX__HEAP_ARITY;
    if (!entry_less(&e, &h->entries[parent])) break;
    put(h, i, h->entries[parent]);
    i = parent;
  }
  put(h, i, e);
}

/* Moves `e` down from the hole at `i` until no child is earlier. */
static void sift_down(px__heap *h, size_t i, px__heap_entry e) {
  for (;;) {
    size_t first = i * PX__HEAP_ARITY + 1;
    if (first >= h->len) break;
    size_t last = first + PX__HEAP_ARITY;
    if (last > h->len) last = h->len;
    size_t min = first;
    for (size_t c = first + 1; c < last; c++)
      if (entry_less(&h->entries[c], &h->entries[min])) min = c;
    if (!entry_less(&h->entries[min], &e)) break;
    put(h, i, h->entries[min]);
    i = min;
  }
  put(h, i, e);
}

/*
 * Makes room for `want` entries. Doubling keeps insert amortised O(1) in
 * copies; px__alloc has no realloc, so the entries are copied by hand.
 */
static int reserve(px__heap *h, size_t want) {
  if (want <= h->cap) return 0;
  if (want > PX__HEAP_MAX_ENTRIES) return PX_ENOMEM;
  size_t cap = h->cap;
  while (cap < want) cap *= 2;
  if (cap > PX__HEAP_MAX_ENTRIES) cap = PX__HEAP_MAX_ENTRIES;
  px__heap_entry *entries = px__alloc(cap * sizeof *entries);
  if (entries == NULL) return PX_ENOMEM;
  if (h->len > 0) memcpy(entries, h->entries, h->len * sizeof *entries);
  if (h->entries != h->inline_entries)
    px__free(h->entries, h->cap * sizeof *h->entries);
  h->entries = entries;
  h->cap = cap;
  return 0;
}

/* Once nothing is armed, hands a grown array back (see the top). */
static void release_if_empty(px__heap *h) {
  if (h->len > 0 || h->deferred_len > 0 || h->entries == h->inline_entries)
    return;
  px__free(h->entries, h->cap * sizeof *h->entries);
  h->entries = h->inline_entries;
  h->cap = PX__HEAP_INLINE;
}

/* Adds a node whose key is set; the room was reserved by insert. */
static void push(px__heap *h, px_timer_node *node, uint64_t seq) {
  px__heap_entry e = {node->tick, seq, node};
  h->len++;
  sift_up(h, h->len - 1, e);
}

/* Removes the entry at index `i`, disarming its node: the last entry fills
 * the hole. */
static void remove_at(px__heap *h, size_t i) {
  h->entries[i].node->at.heap.mark = NULL;
  h->entries[i].node->at.heap.index = 0;
  px__heap_entry last = h->entries[--h->len];
  if (i == h->len) return;
  /* The last entry may belong above or below the hole: try both ways. */
  if (i > 0 && entry_less(&last, &h->entries[(i - 1) / PX__HEAP_ARITY]))
    sift_up(h, i, last);
  else
    sift_down(h, i, last);
}

/*
 * The deferred list, in insertion order. Its nodes take their sequence
 * numbers when they are pushed, so they are numbered after nodes that were
 * inserted later but went straight into the heap. That is harmless: when
 * advance returns, every node left in the heap is due after `now` and every
 * deferred one at or before it, so the two never share a deadline.
 */
static void deferred_append(px__heap *h, px_timer_node *n) {
  px__list_insert_tail(&h->deferred, &n->at.link);
  h->deferred_len++;
}

/* Unlinking zeroes the link: the node is disarmed until pushed. */
static void deferred_unlink(px__heap *h, px_timer_node *n) {
  px__list_remove(&n->at.link);
  h->deferred_len--;
}

/* Moves every deferred node into the heap, in insertion order. */
static void deferred_flush(px__heap *h) {
  px__list *l;
  while ((l = px__list_first(&h->deferred)) != NULL) {
    px_timer_node *n = px__container_of(l, px_timer_node, at.link);
    deferred_unlink(h, n);
    push(h, n, h->next_seq++);
  }
}

static void heap_init(void *timer, uint64_t now) {
  px__heap *h = timer;
  memset(h, 0, sizeof *h);
  h->entries = h->inline_entries;
  h->cap = PX__HEAP_INLINE;
  h->elapsed = now;
  px__list_init(&h->deferred);
}

static int heap_insert(void *timer, px_timer_node *node) {
  px__heap *h = timer;
  if (node == NULL || px__timer_armed(node)) return PX_EINVAL;
  /* Reserve a slot for every deferred node too, so flushing them at the end
   * of advance (which cannot report errors) never needs memory. */
  int rc = reserve(h, h->len + h->deferred_len + 1);
  if (rc < 0) return rc;
  if ((h->advancing || h->partial) && node->tick <= h->elapsed)
    deferred_append(h, node);
  else
    push(h, node, h->next_seq++);
  return 0;
}

static void heap_cancel(void *timer, px_timer_node *node) {
  px__heap *h = timer;
  if (node == NULL || !px__timer_armed(node)) return;
  if (node->at.heap.mark == &in_array)
    remove_at(h, node->at.heap.index);
  else
    deferred_unlink(h, node);
  /* Not while advancing: the loop there still reads the array. */
  if (!h->advancing) release_if_empty(h);
}

/* The root is the earliest deadline; a heap never needs an early wake-up.
 * Deferred nodes (between the calls of a partial advance) are due now. */
static uint64_t heap_next_tick(void *timer) {
  px__heap *h = timer;
  if (h->deferred_len > 0) return h->elapsed;
  return h->len > 0 ? h->entries[0].tick : PX__TICK_NONE;
}

/*
 * Pops and fires the root while it is due, `max` at most. `elapsed` follows
 * the deadline being fired (never going back), so a callback that re-arms
 * for a tick after it but within `now` fires later in this same call, in
 * order, and one that re-arms for that tick or earlier is deferred to the
 * next call. A call that reaches `max` with nodes still due leaves elapsed
 * at the last tick it fired, those nodes at the top of the heap and the
 * deferred ones deferred, until a call completes.
 */
static size_t heap_advance(void *timer, uint64_t now, size_t max,
                           px__timer_fire_fn fire, void *arg) {
  px__heap *h = timer;
  size_t fired = 0;

  if (now < h->elapsed) now = h->elapsed; /* time never goes backwards */
  h->advancing = 1;
  while (fired < max && h->len > 0 && h->entries[0].tick <= now) {
    px_timer_node *n = h->entries[0].node;
    if (n->tick > h->elapsed) h->elapsed = n->tick;
    remove_at(h, 0);
    fire(n, arg);
    fired++;
  }
  h->advancing = 0;
  h->partial = h->len > 0 && h->entries[0].tick <= now;
  if (h->partial) return fired; /* fired == max: the next call goes on */
  h->elapsed = now;
  deferred_flush(h);
  release_if_empty(h);
  return fired;
}

static void heap_destroy(void *timer) {
  px__heap *h = timer;
  h->len = h->deferred_len = 0;
  release_if_empty(h);
}

const px__timer_ops px__heap_ops = {
    .name = "heap",
    .size = sizeof(px__heap),
    .init = heap_init,
    .insert = heap_insert,
    .cancel = heap_cancel,
    .next_tick = heap_next_tick,
    .advance = heap_advance,
    .destroy = heap_destroy,
};
