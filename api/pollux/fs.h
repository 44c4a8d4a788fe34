/**
 * @file
 * pollux/fs.h - files, through the blocking pool (tokio::fs).
 *
 * Regular files are always "ready" to epoll, so reading one can still block
 * on the disk. Like tokio, pollux runs each file system call on the blocking
 * pool (pollux/blocking.h) and hands the result back to the awaiting task.
 * Files are plain descriptors: px_fs_open gives an int, px_fs_close closes it.
 *
 * Each future copies its arguments into the job when first polled (the path,
 * the bytes to write), and a read lands in the job's own buffer, copied into
 * yours when the future completes. So dropping a future mid-call is safe: the
 * call finishes on its thread and its result is discarded (an opened file is
 * closed again). One read or write moves at most PX_FS_MAX_IO bytes (2 MiB,
 * tokio's figure): the output says how many, as with read(2) and write(2).
 *
 * Errors are PX_E* codes (PX_ENOENT, PX_EACCES, PX_EBADF, ...), plus those of
 * px_spawn_blocking (PX_ENORUNTIME outside a runtime).
 */
#ifndef POLLUX_FS_H
#define POLLUX_FS_H

/** @addtogroup blocking
 * @{
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "pollux/blocking.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The most bytes one px_fs read or write moves (2 MiB); longer requests are cut to it. */
#define PX_FS_MAX_IO ((size_t)2 << 20)

/** One file system call in flight. Fields are private. */
typedef struct px_fs {
  px_blocking blocking; /**< must be first: the future */
  int op; /**< private: which call */
  int fd; /**< private */
  int flags; /**< private: open flags */
  unsigned mode; /**< private: open mode */
  const char *path; /**< private */
  void *buf;        /**< read: where the bytes go */
  const void *data; /**< write: the bytes */
  size_t len; /**< private: bytes to move */
  int64_t offset;   /**< < 0: the descriptor's current position */
  struct stat *st;  /**< stat: where the result goes */
} px_fs;

/** open(2): output.i64 is the new descriptor. `mode` matters with O_CREAT.
 * O_CLOEXEC is always added. */
px_future *px_fs_open_init(px_fs *f, const char *path, int flags,
                           unsigned mode);

/** Reads up to `len` bytes into buf at `offset` (pread), or at the current
 * position when offset < 0 (read). output.u64: bytes read, 0 at end of
 * file. */
px_future *px_fs_read_init(px_fs *f, int fd, void *buf, size_t len,
                           int64_t offset);

/** Writes up to `len` bytes at `offset` (pwrite), or at the current position
 * when offset < 0 (write). output.u64: bytes written. */
px_future *px_fs_write_init(px_fs *f, int fd, const void *data, size_t len,
                            int64_t offset);

/** stat(2) of `path` into *st (written when the future completes). */
px_future *px_fs_stat_init(px_fs *f, const char *path, struct stat *st);

/** close(2). */
px_future *px_fs_close_init(px_fs *f, int fd);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_FS_H */
