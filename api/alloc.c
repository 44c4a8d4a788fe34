/*
 * The allocator hook. Every allocation pollux makes goes through px__alloc,
 * so a test can count bytes per task or make the Nth allocation fail, and an
 * embedder can plug in an arena.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal/px_internal.h"

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

void *px__alloc(size_t size) { return current.alloc(current.ctx, size); }

void *px__calloc(size_t size) {
  void *p = current.alloc(current.ctx, size);
  if (p != NULL) memset(p, 0, size);
  return p;
}

void px__free(void *ptr, size_t size) {
  if (ptr != NULL) current.free(current.ctx, ptr, size);
}

uint64_t px__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
