/*
 * Tutorial step 6: lines, a timeout, and cleanup that happens by itself.
 *
 * A writer task sends lines through a pipe, the last one after a pause;
 * main reads them with a buffered reader (tokio's BufReader::read_line),
 * each read raced against a 100 ms sleep with px_select2, until the
 * stream ends. Both ends are closed by PX_DEFER, however the tasks end.
 */
#include <stdio.h>
#include <string.h>

#include "pollux.h"

static void close_stream(void *s) { px_stream_close(s); }
static void close_reader(void *r) { px_buf_reader_close(r); }

typedef struct {
  px_async px;
  px_stream *w;
  px_sleep pause;
  px_stream_io io;
} writer;

PX_ASYNC_FN(writer) {
  PX_BEGIN();
  PX_DEFER(close_stream, self->w); /* the reader sees end of stream */
  PX_TRY_AWAIT(px_stream_write_all_init(&self->io, self->w, "one\ntwo\n", 8));
  PX_AWAIT(px_sleep_init(&self->pause, px_ms(300)));
  PX_TRY_AWAIT(px_stream_write_all_init(&self->io, self->w, "three\n", 6));
  PX_END();
}

typedef struct {
  px_async px;
  px_buf_reader *in;
  px_join_handle wr;
  px_select sel;
  px_buf_io rd;
  px_sleep tick;
  size_t n;
  int err, quiet;
  char line[64];
} async_main;

PX_ASYNC_FN(async_main) {
  PX_BEGIN();
  {
    px_stream *r, *w;
    PX_TRY(px_pipe(&r, &w));
    writer wt = PX_ASYNC_NEW(writer, .w = w);
    PX_TRY(px_spawn(PX_FUTURE(&wt), &self->wr));
    PX_TRY(px_buf_reader_new(r, 0, &self->in));
  }
  PX_DEFER(close_reader, self->in); /* closes the pipe's read end too */
  for (;;) {
    PX_AWAIT_INTO(self->n, self->err,
                  px_select2_init(&self->sel,
                                  px_buf_read_line_init(&self->rd, self->in,
                                                        self->line, sizeof self->line),
                                  px_sleep_init(&self->tick, px_ms(100))));
    if (self->sel.index == 1) { /* the sleep won; no byte of a line is lost */
      if (!self->quiet++) printf("quiet for 100 ms, still waiting\n");
      continue;
    }
    if (self->err < 0 || self->n == 0) break; /* an error, or end of stream */
    self->line[strcspn(self->line, "\n")] = '\0';
    printf("line: %s\n", self->line);
  }
  printf("end of stream\n");
  PX_TRY_AWAIT(&self->wr.base);
  PX_END();
}

int main(void) {
  async_main m = PX_ASYNC_NEW(async_main);
  return px_run(PX_FUTURE(&m)) < 0;
}
