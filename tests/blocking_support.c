#include "tests/blocking_support.h"

#include <fcntl.h>

/* ---- fs_roundtrip ---- */
PX_ASYNC_FN(fs_roundtrip) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_fs_open_init(&self->op, self->path,
                               O_CREAT | O_TRUNC | O_WRONLY, 0600));
  self->fd = (int)self->op.blocking.base.output.i64;
  PX_TRY_AWAIT(px_fs_write_init(&self->op, self->fd, self->data, self->len, 0));
  if (self->op.blocking.base.output.u64 != self->len) PX_FAIL(PX_EIO);
  PX_TRY_AWAIT(px_fs_close_init(&self->op, self->fd));
  PX_TRY_AWAIT(px_fs_stat_init(&self->op, self->path, &self->st));
  *self->size = (int64_t)self->st.st_size;
  PX_TRY_AWAIT(px_fs_open_init(&self->op, self->path, O_RDONLY, 0));
  self->fd = (int)self->op.blocking.base.output.i64;
  PX_TRY_AWAIT(px_fs_read_init(&self->op, self->fd, self->back, self->len, -1));
  self->got = self->op.blocking.base.output.u64;
  PX_TRY_AWAIT(px_fs_close_init(&self->op, self->fd));
  PX_RETURN(px_u64(self->got));
  PX_END();
}
px_future *fs_roundtrip_new(fs_roundtrip *f, const char *path,
                            const void *data, size_t len, void *back,
                            int64_t *size) {
  *f = PX_ASYNC_NEW(fs_roundtrip, .path = path, .data = data, .len = len,
                    .back = back, .size = size);
  return PX_FUTURE(f);
}

/* ---- blocking_sum ---- */
PX_ASYNC_FN(blocking_sum) {
  PX_BEGIN();
  for (self->i = 0; self->i < self->n; self->i++) {
    PX_TRY_AWAIT(px_spawn_blocking_init(&self->job, self->fn,
                                        self->args[self->i]));
    self->sum += self->job.base.output.i64;
  }
  PX_RETURN(px_i64(self->sum));
  PX_END();
}
px_future *blocking_sum_new(blocking_sum *f, px_blocking_fn fn, void **args,
                            int n) {
  *f = PX_ASYNC_NEW(blocking_sum, .fn = fn, .args = args, .n = n);
  return PX_FUTURE(f);
}
