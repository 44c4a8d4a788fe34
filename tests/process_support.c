#include "tests/process_support.h"

PX_ASYNC_FN(read_to_end) {
  PX_BEGIN();
  for (;;) {
    if (self->len == self->cap) PX_FAIL(PX_ERANGE);
    PX_TRY_AWAIT(px_stream_read_init(&self->io, self->s, self->buf + self->len,
                                  self->cap - self->len));
    if (self->io.base.output.u64 == 0) break;
    self->len += self->io.base.output.u64;
  }
  PX_RETURN(px_u64(self->len));
  PX_END();
}
px_future *read_to_end_new(read_to_end *f, px_stream *s, char *buf,
                           size_t cap) {
  *f = PX_ASYNC_NEW(read_to_end, .s = s, .buf = buf, .cap = cap);
  return PX_FUTURE(f);
}

static void write_and_close_drop(px_future *self) {
  write_and_close *f = (write_and_close *)self;
  px_async_drop(self);
  px_stream_close(f->s);
  f->s = NULL;
}

PX_ASYNC_FN_WITH_DROP(write_and_close, write_and_close_drop) {
  PX_BEGIN();
  PX_TRY_AWAIT(px_stream_write_all_init(&self->io, self->s, self->buf, self->len));
  px_stream_close(self->s);
  self->s = NULL;
  PX_RETURN(px_u64(self->len));
  PX_END();
}
px_future *write_and_close_new(write_and_close *f, px_stream *s,
                               const char *buf, size_t len) {
  *f = PX_ASYNC_NEW(write_and_close, .s = s, .buf = buf, .len = len);
  return PX_FUTURE(f);
}

static void many_children_drop(px_future *self) {
  many_children *f = (many_children *)self;
  px_async_drop(self);
  for (int k = 0; k < f->started; k++) px_child_close(f->kids[k]);
  f->started = 0;
}

PX_ASYNC_FN_WITH_DROP(many_children, many_children_drop) {
  PX_BEGIN();
  if (self->batch < 1 || self->batch > 64) PX_FAIL(PX_EINVAL);
  for (self->i = 0; self->i < self->n; self->i += self->batch) {
    for (self->started = 0;
         self->started < self->batch && self->i + self->started < self->n;
         self->started++) {
      int err = px_process_spawn(self->cmd, &self->kids[self->started]);
      if (err < 0) PX_FAIL(err);
    }
    for (self->k = 0; self->k < self->started; self->k++) {
      PX_TRY_AWAIT(px_child_wait_init(&self->wait, self->kids[self->k]));
      if (self->wait.base.output.i64 == 0) self->zero++;
    }
    for (self->k = 0; self->k < self->started; self->k++)
      px_child_close(self->kids[self->k]);
    self->started = 0;
  }
  PX_RETURN(px_i64(self->zero));
  PX_END();
}
px_future *many_children_new(many_children *f, const px_command *cmd, int n,
                             int batch) {
  *f = PX_ASYNC_NEW(many_children, .cmd = cmd, .n = n, .batch = batch);
  return PX_FUTURE(f);
}

/* ---- rewait ------------------------------------------------------------ */

PX_ASYNC_FN(rewait) {
  self->polls++; /* before PX_BEGIN: counted on every poll */
  PX_BEGIN();
  for (self->i = 0; self->i < self->n; self->i++)
    PX_TRY_AWAIT(px_child_wait_init(&self->wait, self->c));
  PX_RETURN(px_i64(self->polls));
  PX_END();
}

px_future *rewait_new(rewait *f, px_child *c, int n) {
  *f = PX_ASYNC_NEW(rewait, .c = c, .n = n);
  return PX_FUTURE(f);
}
