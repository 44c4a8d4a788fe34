/*
 * The allocator hook. Every allocation pollux makes goes through px__alloc,
 * so a test can count bytes per task or make the Nth allocation fail, and an
 * embedder can plug in an arena.
 */
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/internal/px_internal.h"

static void *default_alloc(void *ctx, size_t size) {
  (void)ctx;
  return malloc(size);
}

static void default_free(void *ctx, void *ptr, size_t size) {
  (void)ctx;
  (void)size;
  free(ptr);
}

static const px_allocator default_allocator = {default_alloc, default_free,
                                               NULL};

/* Not atomic on purpose: it is set before any runtime exists. */
static px_allocator current = {default_alloc, default_free, NULL};

void px_set_allocator(const px_allocator *allocator) {
  if (allocator == NULL || allocator->alloc == NULL || allocator->free == NULL)
    current = default_allocator;
  else
    current = *allocator;
}

/*
 * A per-thread cache of freed blocks, used only while the thread runs a
 * runtime (px__runtime_enter turns it on and off).
 *
 * Why: a task is one allocation (header + future) made at spawn and freed
 * at completion, and channels allocate their shared state the same way.
 * Under callgrind, glibc's malloc + free pair costs about 200 instructions
 * once more blocks are alive than its own per-thread cache holds (7 per
 * size), a quarter of a whole spawn-poll-complete cycle; popping a block
 * that this thread freed earlier costs about ten. Blocks are kept by exact
 * size in a few slots (a program spawns few distinct future sizes), up to
 * PX__ALLOC_CACHE_MAX_BYTES per thread, and handed back to the allocator
 * when the thread leaves the runtime, so px_runtime_free still returns
 * everything and an allocator that counts blocks sees none left behind.
 * A thread that is about to sleep (nothing to run) hands them back too
 * (px__alloc_release): an idle worker holds no memory, and a task freed on
 * a worker shows up as freed to the allocator once the worker has nothing
 * left to do. (A work-stealing
 * worker, and any thread parked in its reactor, waits PX__TRIM_AFTER_MS
 * into its sleep first: short parks between bursts of work keep their
 * blocks.)
 *
 * Blocks freed beyond a cache's room go to the depot, one process-wide
 * lock-free stack of same-size batches that the next thread whose cache
 * misses takes from (mimalloc's delayed free, in spirit). Why: under work
 * stealing, tasks spawned from block_on's thread are allocated there and
 * freed on the workers, so blocks flow one way; without a way back, every
 * spawn was a malloc and every completion a free() from another thread,
 * and glibc answered with its arena lock (futex calls) and with trimming
 * and regrowing the heap each round (brk, page faults, and threads
 * sleeping on the address-space lock): bench/spawn_many ran three times
 * slower than tokio with its threads sharing one CPU. Pushing a batch is
 * one CAS; taking is one exchange of the whole stack (no ABA: nothing is
 * popped one by one), the batches not wanted going back with one CAS. The
 * depot holds at most PX__ALLOC_DEPOT_MAX_BYTES and is emptied into the
 * allocator when a thread leaves a runtime or has slept PX__TRIM_AFTER_MS
 * (px__alloc_release).
 *
 * Under AddressSanitizer the cache is compiled out (PX__ALLOC_CACHE, in
 * px_internal.h): a block parked here would hide a use after free from it.
 */
#if PX__ALLOC_CACHE
enum {
  CACHE_SLOTS = 4,       /* distinct block sizes kept at once */
  CACHE_MIN_BLOCK = 16,  /* room for the free-list link, and then some */
  CACHE_MAX_BLOCK = 1024 /* larger blocks are rare and go to malloc */
};

typedef struct cache_block {
  struct cache_block *next;
} cache_block;

typedef struct alloc_cache {
  bool on;
  size_t bytes;
  size_t size[CACHE_SLOTS]; /* 0: the slot is free */
  cache_block *head[CACHE_SLOTS];
  /* The slot's last block and its byte count, so that a whole slot goes
   * to the depot without a walk over its blocks. */
  cache_block *tail[CACHE_SLOTS];
  size_t slot_bytes[CACHE_SLOTS];
} alloc_cache;

/* A batch in the depot: a slot's list, its first block holding this. */
typedef struct depot_batch {
  cache_block first;        /* first.next: the batch's second block */
  struct depot_batch *next; /* the depot's next batch */
  cache_block *last;
  size_t size, bytes;
} depot_batch;

static _Atomic(depot_batch *) depot;
static _Atomic size_t depot_bytes; /* reserved before a push */

/* initial-exec: one load from the thread pointer (see observe/observe.h). */
static _Thread_local alloc_cache cache __attribute__((tls_model("initial-exec")));
#endif

#if PX__ALLOC_CACHE
static void free_chain(cache_block *b, size_t size) {
  while (b != NULL) {
    cache_block *next = b->next;
    current.free(current.ctx, b, size);
    b = next;
  }
}

/* Hands every cached block back to the allocator. */
static void cache_flush(void) {
  for (int i = 0; i < CACHE_SLOTS; i++) {
    free_chain(cache.head[i], cache.size[i]);
    cache.head[i] = NULL;
    cache.size[i] = 0;
    cache.slot_bytes[i] = 0;
  }
  cache.bytes = 0;
}

/* Pushes the chain of batches first..last (linked through next) with one
 * CAS. Pushers never read a batch they do not own, so there is no ABA. */
static void depot_push(depot_batch *first, depot_batch *last) {
  depot_batch *head = atomic_load_explicit(&depot, memory_order_relaxed);
  do {
    last->next = head;
  } while (!atomic_compare_exchange_weak_explicit(
      &depot, &head, first, memory_order_release, memory_order_relaxed));
}

/* Moves slot i's blocks to the depot; false if they do not fit in it or a
 * block is too small to hold the batch's header. */
static bool cache_give_slot(int i) {
  size_t bytes = cache.slot_bytes[i];
  if (cache.head[i] == NULL || cache.size[i] < sizeof(depot_batch))
    return false;
  if (atomic_fetch_add_explicit(&depot_bytes, bytes, memory_order_relaxed) +
          bytes > PX__ALLOC_DEPOT_MAX_BYTES) {
    atomic_fetch_sub_explicit(&depot_bytes, bytes, memory_order_relaxed);
    return false;
  }
  depot_batch *batch = (depot_batch *)cache.head[i];
  batch->last = cache.tail[i];
  batch->size = cache.size[i];
  batch->bytes = bytes;
  depot_push(batch, batch);
  cache.head[i] = NULL;
  cache.slot_bytes[i] = 0;
  cache.bytes -= bytes;
  return true;
}

/* Pops a block from slot i, which holds some. */
static void *cache_pop(int i) {
  cache_block *b = cache.head[i];
  cache.head[i] = b->next;
  cache.slot_bytes[i] -= cache.size[i];
  cache.bytes -= cache.size[i];
  return b;
}

/* Takes the depot's first batch of `size`-byte blocks into an empty slot
 * (the empty slot of that size first), the other batches going back, and
 * returns one of its blocks; NULL if the depot has none of that size. */
static void *cache_take_from_depot(size_t size) {
  int slot = -1;
  for (int i = 0; i < CACHE_SLOTS; i++) {
    if (cache.head[i] != NULL) continue;
    if (slot < 0 || cache.size[i] == size) slot = i;
    if (cache.size[i] == size) break;
  }
  if (slot < 0) return NULL;
  depot_batch *all =
      atomic_exchange_explicit(&depot, NULL, memory_order_acquire);
  depot_batch *found = NULL, *rest = NULL, *rest_last = NULL;
  while (all != NULL) {
    depot_batch *next = all->next;
    if (found == NULL && all->size == size) {
      found = all;
    } else {
      all->next = rest;
      if (rest == NULL) rest_last = all;
      rest = all;
    }
    all = next;
  }
  if (rest != NULL) depot_push(rest, rest_last);
  if (found == NULL) return NULL;
  atomic_fetch_sub_explicit(&depot_bytes, found->bytes, memory_order_relaxed);
  cache.size[slot] = size;
  cache.head[slot] = &found->first;
  cache.tail[slot] = found->last;
  cache.slot_bytes[slot] = found->bytes;
  cache.bytes += found->bytes;
  return cache_pop(slot);
}
#endif

#if PX__ALLOC_CACHE
static void depot_drain(void) {
  if (atomic_load_explicit(&depot, memory_order_relaxed) == NULL) return;
  depot_batch *b = atomic_exchange_explicit(&depot, NULL, memory_order_acquire);
  while (b != NULL) {
    depot_batch *next = b->next;
    atomic_fetch_sub_explicit(&depot_bytes, b->bytes, memory_order_relaxed);
    free_chain(&b->first, b->size);
    b = next;
  }
}
#endif

void px__alloc_cache_use(bool on) {
#if PX__ALLOC_CACHE
  if (!on) px__alloc_release();
  cache.on = on;
#else
  (void)on;
#endif
}

void px__alloc_release(void) {
#if PX__ALLOC_CACHE
  if (cache.bytes != 0) cache_flush();
  depot_drain();
#endif
}

bool px__alloc_holds(void) {
#if PX__ALLOC_CACHE
  return cache.bytes != 0 || px__alloc_depot_holds();
#else
  return false;
#endif
}

bool px__alloc_depot_holds(void) {
#if PX__ALLOC_CACHE
  return atomic_load_explicit(&depot, memory_order_relaxed) != NULL;
#else
  return false;
#endif
}

void *px__alloc(size_t size) {
#if PX__ALLOC_CACHE
  if (cache.on) {
    for (int i = 0; i < CACHE_SLOTS; i++)
      if (cache.size[i] == size && cache.head[i] != NULL) return cache_pop(i);
    /* A miss: a batch of this size from the depot, if it has one. */
    if (atomic_load_explicit(&depot, memory_order_relaxed) != NULL) {
      void *b = cache_take_from_depot(size);
      if (b != NULL) return b;
    }
  }
#endif
  return current.alloc(current.ctx, size);
}

void *px__calloc(size_t size) {
  void *p = px__alloc(size);
  if (p != NULL) memset(p, 0, size);
  return p;
}

void *px__alloc_aligned(size_t size, size_t align) {
  /* The allocator's address is max_align_t-aligned and the aligned one is
   * above it by 1..align bytes, so the word below the aligned address is
   * always inside the block: that is where the allocator's address goes. */
  if (align < alignof(max_align_t) || (align & (align - 1)) != 0 ||
      size > SIZE_MAX - align)
    return NULL;
  char *raw = px__alloc(size + align);
  if (raw == NULL) return NULL;
  char *p = (char *)(((uintptr_t)raw + align) & ~(uintptr_t)(align - 1));
  memcpy(p - sizeof raw, &raw, sizeof raw);
  return p;
}

void *px__calloc_aligned(size_t size, size_t align) {
  void *p = px__alloc_aligned(size, align);
  if (p != NULL) memset(p, 0, size);
  return p;
}

void px__free_aligned(void *ptr, size_t size, size_t align) {
  if (ptr == NULL) return;
  char *raw;
  memcpy(&raw, (char *)ptr - sizeof raw, sizeof raw);
  px__free(raw, size + align);
}

#if PX__ALLOC_CACHE
/* Keeps the block if a slot holds (or can take) its size and there is room. */
static bool cache_put(void *ptr, size_t size) {
  if (size < CACHE_MIN_BLOCK || size > CACHE_MAX_BLOCK) return false;
  int slot = -1;
  for (int i = 0; i < CACHE_SLOTS; i++) {
    if (cache.size[i] == size) {
      slot = i;
      break;
    }
    /* An empty slot may change size; keep looking for an exact match. */
    if (slot < 0 && cache.head[i] == NULL) slot = i;
  }
  if (slot < 0) return false;
  /* Full: this size's blocks go to the depot, for a thread that allocates
   * more than it frees (block_on's, spawning for the workers). */
  if (cache.bytes + size > PX__ALLOC_CACHE_MAX_BYTES &&
      (cache.size[slot] != size || !cache_give_slot(slot)))
    return false;
  cache_block *b = ptr;
  if (cache.head[slot] == NULL) {
    cache.size[slot] = size;
    cache.tail[slot] = b;
  }
  b->next = cache.head[slot];
  cache.head[slot] = b;
  cache.slot_bytes[slot] += size;
  cache.bytes += size;
  return true;
}
#endif

void px__free(void *ptr, size_t size) {
  if (ptr == NULL) return;
#if PX__ALLOC_CACHE
  if (cache.on && cache_put(ptr, size)) return;
#endif
  current.free(current.ctx, ptr, size);
}

void px__spin_wait(px__spinlock *l) {
  for (unsigned spins = 0;; spins++) {
    /* Test before test-and-set: waiting reads keep the line shared. */
    if (atomic_load_explicit(l, memory_order_relaxed) == 0 &&
        !atomic_exchange_explicit(l, 1, memory_order_acquire))
      return;
    if (spins < 64)
      px__cpu_relax();
    else
      sched_yield();
  }
}

uint64_t px__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
