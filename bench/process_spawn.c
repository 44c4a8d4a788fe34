/*
 * process_spawn: child processes started and waited for, 8 at a time, as
 * in bench/peers/libuv/process_spawn.c (uv_spawn). Each round spawns 8
 * tasks; each starts /bin/true (stdout and stderr on /dev/null), awaits
 * its exit and closes the handle. The count is of children. The time is
 * mostly the kernel's (clone, exec, exit), which is what both sides pay;
 * what differs is the spawn path and the way each learns of the exit.
 *
 *   bazel run -c opt //bench:process_spawn [-- CHILDREN]
 */
#include "bench/common.h"

enum { IN_FLIGHT = 8 };

typedef struct {
  px_async px;
  bench_latch *latch;
  px_child *child;
  px_child_wait wait;
} one_child;

static void one_child_drop(px_future *self) {
  one_child *f = (one_child *)self;
  px_async_drop(self);
  px_child_close(f->child);
  f->child = NULL;
}

PX_ASYNC_FN_WITH_DROP(one_child, one_child_drop) {
  PX_BEGIN();
  px_command cmd = PX_COMMAND_INIT;
  cmd.program = "/bin/true";
  cmd.stdio[1] = PX_STDIO_NULL;
  cmd.stdio[2] = PX_STDIO_NULL;
  bench_check(px_process_spawn(&cmd, &self->child), "px_process_spawn");
  PX_AWAIT(px_child_wait_init(&self->wait, self->child));
  bench_check(self->wait.base.error, "px_child_wait");
  if (self->wait.base.output.i64 != 0) bench_check(PX_EIO, "exit status");
  px_child_close(self->child);
  self->child = NULL;
  bench_latch_count_down(self->latch);
  PX_END();
}

static int start_round(bench_latch *latch) {
  for (int i = 0; i < IN_FLIGHT; i++) {
    one_child c = PX_ASYNC_NEW(one_child, .latch = latch);
    int rc = px_spawn(PX_FUTURE(&c), NULL);
    if (rc < 0) return rc;
  }
  return 0;
}

int main(int argc, char **argv) {
  long children = bench_arg(argc, argv, 4000, "process_spawn [CHILDREN >= 1]");
  long rounds = (children + IN_FLIGHT - 1) / IN_FLIGHT;
  bench_run_rounds(&(bench_rounds){.name = "process_spawn",
                                   .rounds = rounds,
                                   .warmup_rounds = 2,
                                   .latch_count = IN_FLIGHT,
                                   .start = start_round,
                                   .ops_per_round = IN_FLIGHT});
  return 0;
}
