/*
 * Files through the blocking pool. Every operation is one px_blocking with
 * hooks (blocking/pool.h): its arguments are copied into the job's payload
 * when the future is first polled, so the pool thread never touches the
 * future or the caller's buffers, which may be gone if the future is dropped
 * mid-call. Results are copied back out when the future completes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "blocking/pool.h"
#include "pollux/fs.h"

enum { OP_OPEN = 1, OP_READ, OP_WRITE, OP_STAT, OP_CLOSE };

/* What the pool thread sees: the arguments, then `data` (the path, the
 * bytes to write, or the read buffer). */
typedef struct fs_payload {
  int op;
  int fd;
  int flags;
  unsigned mode;
  size_t len;
  int64_t offset;
  struct stat st;
  char data[];
} fs_payload;

static size_t io_len(size_t len) {
  return len > PX_FS_MAX_IO ? PX_FS_MAX_IO : len;
}

static size_t fs_payload_size(const px_blocking *self) {
  const px_fs *f = (const px_fs *)self;
  size_t extra = 0;
  if (f->op == OP_OPEN || f->op == OP_STAT)
    extra = strlen(f->path) + 1;
  else if (f->op == OP_READ || f->op == OP_WRITE)
    extra = io_len(f->len);
  return sizeof(fs_payload) + extra;
}

static void fs_prepare(const px_blocking *self, void *payload) {
  const px_fs *f = (const px_fs *)self;
  fs_payload *p = payload;
  p->op = f->op;
  p->fd = f->fd;
  p->flags = f->flags;
  p->mode = f->mode;
  p->offset = f->offset;
  p->len = 0;
  if (f->op == OP_OPEN || f->op == OP_STAT) {
    size_t n = strlen(f->path) + 1;
    memcpy(p->data, f->path, n);
  } else if (f->op == OP_READ || f->op == OP_WRITE) {
    p->len = io_len(f->len);
    if (f->op == OP_WRITE && p->len > 0) memcpy(p->data, f->data, p->len);
  }
}

/* The system call, on a pool thread. EINTR is retried: a signal landing on
 * a pool thread is not the caller's business. */
static int fs_run(void *payload, px_value *out) {
  fs_payload *p = payload;
  ssize_t n;
  switch (p->op) {
    case OP_OPEN:
      do {
        n = open(p->data, p->flags | O_CLOEXEC, (mode_t)p->mode);
      } while (n < 0 && errno == EINTR);
      if (n < 0) return px_err_from_errno(errno);
      *out = px_i64(n);
      return 0;
    case OP_READ:
      do {
        n = p->offset < 0 ? read(p->fd, p->data, p->len)
                          : pread(p->fd, p->data, p->len, (off_t)p->offset);
      } while (n < 0 && errno == EINTR);
      if (n < 0) return px_err_from_errno(errno);
      *out = px_u64((uint64_t)n);
      return 0;
    case OP_WRITE:
      do {
        n = p->offset < 0 ? write(p->fd, p->data, p->len)
                          : pwrite(p->fd, p->data, p->len, (off_t)p->offset);
      } while (n < 0 && errno == EINTR);
      if (n < 0) return px_err_from_errno(errno);
      *out = px_u64((uint64_t)n);
      return 0;
    case OP_STAT:
      if (stat(p->data, &p->st) < 0) return px_err_from_errno(errno);
      return 0;
    case OP_CLOSE:
      /* Not retried on EINTR: on Linux the descriptor is released anyway,
       * and a retry could close a descriptor another thread just opened. */
      if (close(p->fd) < 0 && errno != EINTR) return px_err_from_errno(errno);
      return 0;
    default:
      return PX_EINVAL;
  }
}

static void fs_finish(px_blocking *self, void *payload, int *err,
                      px_value *out) {
  px_fs *f = (px_fs *)self;
  fs_payload *p = payload;
  if (*err < 0) return;
  if (f->op == OP_READ && out->u64 > 0) memcpy(f->buf, p->data, out->u64);
  if (f->op == OP_STAT) *f->st = p->st;
}

/* Nobody will see an opened descriptor: close it rather than leak it. */
static void fs_discard(void *payload, int err, px_value out) {
  fs_payload *p = payload;
  if (p->op == OP_OPEN && err == 0) close((int)out.i64);
}

static const px__blocking_hooks fs_hooks = {
    fs_payload_size, fs_prepare, fs_run, fs_finish, fs_discard};

/* Initialises `f` for `op`. Bad arguments give a future that completes at
 * once with PX_EINVAL, so callers see the error where they await. */
static px_future *fs_init(px_fs *f, int op, bool valid) {
  if (f == NULL) return NULL;
  f->op = op;
  if (valid) return px__blocking_init_hooks(&f->blocking, &fs_hooks);
  /* No fn and no hooks: the first poll reports PX_EINVAL. */
  return px_spawn_blocking_init(&f->blocking, NULL, NULL);
}

px_future *px_fs_open_init(px_fs *f, const char *path, int flags,
                           unsigned mode) {
  if (f == NULL) return NULL;
  memset(f, 0, sizeof *f);
  f->path = path;
  f->flags = flags;
  f->mode = mode;
  return fs_init(f, OP_OPEN, path != NULL);
}

px_future *px_fs_read_init(px_fs *f, int fd, void *buf, size_t len,
                           int64_t offset) {
  if (f == NULL) return NULL;
  memset(f, 0, sizeof *f);
  f->fd = fd;
  f->buf = buf;
  f->len = len;
  f->offset = offset;
  return fs_init(f, OP_READ, fd >= 0 && (buf != NULL || len == 0));
}

px_future *px_fs_write_init(px_fs *f, int fd, const void *data, size_t len,
                            int64_t offset) {
  if (f == NULL) return NULL;
  memset(f, 0, sizeof *f);
  f->fd = fd;
  f->data = data;
  f->len = len;
  f->offset = offset;
  return fs_init(f, OP_WRITE, fd >= 0 && (data != NULL || len == 0));
}

px_future *px_fs_stat_init(px_fs *f, const char *path, struct stat *st) {
  if (f == NULL) return NULL;
  memset(f, 0, sizeof *f);
  f->path = path;
  f->st = st;
  return fs_init(f, OP_STAT, path != NULL && st != NULL);
}

px_future *px_fs_close_init(px_fs *f, int fd) {
  if (f == NULL) return NULL;
  memset(f, 0, sizeof *f);
  f->fd = fd;
  return fs_init(f, OP_CLOSE, fd >= 0);
}
