/*
 * The allocator hook. Every allocation pollux makes goes through px__alloc,
 * so a test can count bytes per task or make the Nth allocation fail, and an
 * embedder can plug in an arena.
 */
#include <sched.h>
#include <stdalign.h>
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
 * CACHE_MAX_BYTES per thread, and handed back to the allocator when the
 * thread leaves the runtime, so px_runtime_free still returns everything
 * and an allocator that counts blocks sees none left behind. A thread that
 * is about to sleep (nothing to run) hands them back too: an idle worker
 * holds no memory, and a task freed on a worker shows up as freed to the
 * allocator once the worker has nothing left to do. (A work-stealing
 * worker waits TRIM_AFTER_MS into its sleep first: short parks between
 * bursts of work keep their blocks.)
 *
 * Under AddressSanitizer the cache is compiled out: a block parked here
 * would hide a use after free from it.
 */
#if defined(__SANITIZE_ADDRESS__)
#define PX__ALLOC_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PX__ALLOC_CACHE 0
#endif
#endif
#ifndef PX__ALLOC_CACHE
#define PX__ALLOC_CACHE 1
#endif

#if PX__ALLOC_CACHE
enum {
  CACHE_SLOTS = 4,             /* distinct block sizes kept at once */
  CACHE_MIN_BLOCK = 16,        /* room for the free-list link, and then some */
  CACHE_MAX_BLOCK = 1024,      /* larger blocks are rare and go to malloc */
  CACHE_MAX_BYTES = 1u << 20   /* what one thread may hold back */
};

typedef struct cache_block {
  struct cache_block *next;
} cache_block;

typedef struct alloc_cache {
  bool on;
  size_t bytes;
  size_t size[CACHE_SLOTS]; /* 0: the slot is free */
  cache_block *head[CACHE_SLOTS];
} alloc_cache;

/* initial-exec: one load from the thread pointer (see observe/observe.h). */
static _Thread_local alloc_cache cache __attribute__((tls_model("initial-exec")));
#endif

#if PX__ALLOC_CACHE
/* Hands every cached block back to the allocator. */
static void cache_flush(void) {
  for (int i = 0; i < CACHE_SLOTS; i++) {
    cache_block *b = cache.head[i];
    while (b != NULL) {
      cache_block *next = b->next;
      current.free(current.ctx, b, cache.size[i]);
      b = next;
    }
    cache.head[i] = NULL;
    cache.size[i] = 0;
  }
  cache.bytes = 0;
}
#endif

void px__alloc_cache_use(bool on) {
#if PX__ALLOC_CACHE
  if (!on) cache_flush();
  cache.on = on;
#else
  (void)on;
#endif
}

void px__alloc_cache_trim(void) {
#if PX__ALLOC_CACHE
  if (cache.bytes != 0) cache_flush();
#endif
}

bool px__alloc_cache_holds(void) {
#if PX__ALLOC_CACHE
  return cache.bytes != 0;
#else
  return false;
#endif
}

void *px__alloc(size_t size) {
#if PX__ALLOC_CACHE
  if (cache.on) {
    for (int i = 0; i < CACHE_SLOTS; i++) {
      if (cache.size[i] == size && cache.head[i] != NULL) {
        cache_block *b = cache.head[i];
        cache.head[i] = b->next;
        cache.bytes -= size;
        return b;
      }
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
  if (size < CACHE_MIN_BLOCK || size > CACHE_MAX_BLOCK ||
      cache.bytes + size > CACHE_MAX_BYTES)
    return false;
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
  cache_block *b = ptr;
  cache.size[slot] = size;
  b->next = cache.head[slot];
  cache.head[slot] = b;
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
