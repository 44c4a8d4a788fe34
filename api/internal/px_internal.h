/*
 * Internal helpers shared by every part of the runtime. Not installed, not
 * stable: names are px__ prefixed.
 */
#ifndef POLLUX_INTERNAL_H
#define POLLUX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pollux/runtime.h"

/*
 * Atomics in headers that C++ tests include too: C11's _Atomic T and C++'s
 * std::atomic<T> have the same size and representation for the lock-free
 * types used here, so one struct layout serves both languages.
 */
#ifdef __cplusplus
#include <atomic>
#define px__atomic(T) std::atomic<T>
typedef std::atomic_flag px__atomic_flag;
#else
#include <stdatomic.h>
#define px__atomic(T) _Atomic T
typedef atomic_flag px__atomic_flag;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The address of the struct holding `ptr` as its `member` (libuv's idiom). */
#define px__container_of(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

#if defined(__GNUC__) || defined(__clang__)
#define px__likely(x) __builtin_expect(!!(x), 1)
#define px__unlikely(x) __builtin_expect(!!(x), 0)
#else
#define px__likely(x) (x)
#define px__unlikely(x) (x)
#endif

/*
 * Every allocation goes through these two so px_set_allocator can count or
 * fail them. The size is passed to free as well (a sized allocator can use
 * it; malloc ignores it).
 */
void *px__alloc(size_t size);
void *px__calloc(size_t size);
void px__free(void *ptr, size_t size);

/* Monotonic nanoseconds (px_now without the public header's types). */
uint64_t px__now_ns(void);

#ifdef __cplusplus
}
#endif

#endif
