/*
 * Async helpers for tests/blocking_test.cc (the async macros are C).
 */
#ifndef POLLUX_TESTS_BLOCKING_SUPPORT_H
#define POLLUX_TESTS_BLOCKING_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The whole file round trip as one async function: creates `path`, writes
 * `len` bytes of `data` at offset 0, closes it, stats it (size into *size),
 * reopens it, reads it back into `back` (at least `len` bytes), closes it.
 * Output: bytes read back.
 */
typedef struct {
  px_async px;
  const char *path;
  const void *data;
  size_t len;
  void *back;
  int64_t *size;
  int fd;
  uint64_t got;
  struct stat st;
  px_fs op;
} fs_roundtrip;
px_future *fs_roundtrip_new(fs_roundtrip *f, const char *path,
                            const void *data, size_t len, void *back,
                            int64_t *size);

/* Awaits `n` blocking jobs of `fn(arg[i])` one after another from inside a
 * task; output: the sum of their outputs (i64). */
typedef struct {
  px_async px;
  px_blocking_fn fn;
  void **args;
  int n, i;
  int64_t sum;
  px_blocking job;
} blocking_sum;
px_future *blocking_sum_new(blocking_sum *f, px_blocking_fn fn, void **args,
                            int n);

#ifdef __cplusplus
}
#endif

#endif
