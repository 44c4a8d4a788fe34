/*
 * Async helpers for process_test (the async macros are C): reading a
 * stream to its end, writing a buffer and closing, many children at once.
 */
#ifndef POLLUX_TESTS_PROCESS_SUPPORT_H
#define POLLUX_TESTS_PROCESS_SUPPORT_H

#include <stddef.h>

#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads s until end of stream into buf (at most cap bytes; more is
 * PX_ERANGE). Output: the byte count. */
typedef struct {
  px_async px;
  px_stream *s;
  char *buf;
  size_t cap, len;
  px_stream_io io;
} read_to_end;
px_future *read_to_end_new(read_to_end *f, px_stream *s, char *buf,
                           size_t cap);

/* Writes len bytes to s, then closes s (the reader sees end of stream).
 * Output: len. s is closed on error too. */
typedef struct {
  px_async px;
  px_stream *s;
  const char *buf;
  size_t len;
  px_stream_io io;
} write_and_close;
px_future *write_and_close_new(write_and_close *f, px_stream *s,
                               const char *buf, size_t len);

/* Spawns `n` children of cmd, `batch` at a time, and waits for each batch.
 * Output: how many exited with status 0. */
typedef struct {
  px_async px;
  const px_command *cmd;
  int n, batch, i, k, started, zero;
  px_child *kids[64];
  px_child_wait wait;
} many_children;
px_future *many_children_new(many_children *f, const px_command *cmd, int n,
                             int batch);

/* Waits n times for a child that has already exited (each wait is ready
 * at once: the status is kept). Output: how many times it was polled, so
 * the test sees the cooperative budget make it give way. */
typedef struct {
  px_async px;
  px_child *c;
  int n, i, polls;
  px_child_wait wait;
} rewait;
px_future *rewait_new(rewait *f, px_child *c, int n);

#ifdef __cplusplus
}
#endif

#endif
