/*
 * run - runs a command with a time limit and streams its output line by
 * line (tokio's Command + BufReader::lines).
 *
 *   bazel run //examples:run -- -t 5 -- ping -c 3 127.0.0.1
 *
 * Each line the command writes to stdout is printed as soon as it arrives,
 * numbered ("1: PING 127.0.0.1 ..."); its stderr goes straight to ours.
 * run exits with the command's exit code, 128 + N when signal N killed it,
 * 124 when the time limit ran out (the command is killed), 127 when the
 * command could not be started (no such program, not executable, ...),
 * 2 for a usage error.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pollux.h"

/* ---- The command's output, line by line ------------------------------ */

typedef struct lines {
  px_async px;
  px_buf_reader *out; /* the child's stdout, buffered */
  px_buf_io io;
  long number;
  int partial; /* a line longer than the buffer is being printed in parts */
  char line[4096];
} lines;

/* Output: the number of lines printed, once the command closed stdout. */
PX_ASYNC_FN(lines) {
  PX_BEGIN();
  for (;;) {
    PX_AWAIT(px_buf_read_line_init(&self->io, self->out, self->line,
                                   sizeof self->line));
    if (self->io.base.error == PX_EMSGSIZE) {
      /* A line longer than our buffer: print what is buffered and go on
       * reading the rest of it. */
      size_t n;
      const void *part = px_buf_reader_peek(self->out, &n);
      if (!self->partial) printf("%ld: ", ++self->number);
      fwrite(part, 1, n, stdout);
      px_buf_reader_consume(self->out, n);
      self->partial = 1;
      continue;
    }
    if (self->io.base.error < 0) PX_FAIL(self->io.base.error);
    size_t len = (size_t)self->io.base.output.u64;
    if (len == 0) break; /* end of stream: the command closed stdout */
    if (self->line[len - 1] == '\n') self->line[--len] = '\0';
    if (!self->partial) printf("%ld: ", ++self->number);
    printf("%s\n", self->line);
    self->partial = 0;
    /* Streamed, not collected: each line reaches the reader at once. */
    fflush(stdout);
  }
  PX_RETURN(px_i64(self->number));
  PX_END();
}

/* ---- The whole run: output, then the exit status, under a time limit --- */

typedef struct run_cmd {
  px_async px;
  px_child *child;
  px_duration limit;
  px_instant deadline;
  px_duration left; /* of the limit, for the wait after stdout closed */
  lines out;
  px_timeout timeout;
  px_child_wait wait;
  int timed_out;
} run_cmd;

/* Output: the command's status as px_child_wait gives it. */
PX_ASYNC_FN(run_cmd) {
  PX_BEGIN();
  self->deadline = px_now() + self->limit;
  PX_AWAIT(px_timeout_init(&self->timeout, PX_FUTURE(&self->out),
                           self->limit));
  if (self->timeout.base.error == PX_ETIMEDOUT) {
    self->timed_out = 1;
  } else {
    if (self->timeout.base.error < 0) PX_FAIL(self->timeout.base.error);
    /* stdout is closed; the exit gets what is left of the limit (a
     * command may close stdout and go on running). */
    self->left = px_now() < self->deadline ? self->deadline - px_now() : 0;
    PX_AWAIT(px_timeout_init(&self->timeout,
                             px_child_wait_init(&self->wait, self->child),
                             self->left));
    if (self->timeout.base.error != PX_ETIMEDOUT) {
      if (self->timeout.base.error < 0) PX_FAIL(self->timeout.base.error);
      PX_RETURN(px_i64(self->wait.base.output.i64));
    }
    self->timed_out = 1;
  }
  /* Out of time: kill, then reap (SIGKILL cannot be ignored). */
  px_child_kill(self->child, SIGKILL);
  PX_TRY_AWAIT(px_child_wait_init(&self->wait, self->child));
  PX_RETURN(px_i64(self->wait.base.output.i64));
  PX_END();
}

static int usage(void) {
  fprintf(stderr, "usage: run [-t SECONDS] [--] PROGRAM [ARGS...]\n");
  return 2;
}

int main(int argc, char **argv) {
  double secs = 10;
  int i = 1;
  if (i < argc && strcmp(argv[i], "-t") == 0) {
    char *end = NULL;
    if (i + 1 >= argc) return usage();
    secs = strtod(argv[i + 1], &end);
    if (end == argv[i + 1] || *end != '\0' || !(secs > 0) || secs > 1e6)
      return usage();
    i += 2;
  }
  if (i < argc && strcmp(argv[i], "--") == 0) i++;
  if (i >= argc) return usage();

  px_command cmd = PX_COMMAND_INIT;
  cmd.program = argv[i];
  cmd.argv = (const char *const *)&argv[i];
  cmd.stdio[1] = PX_STDIO_PIPE;
  cmd.kill_on_drop = 1; /* whatever happens to us, the command ends too */
  px_child *child;
  int err = px_process_spawn(&cmd, &child);
  if (err < 0) {
    fprintf(stderr, "run: cannot run %s: %s\n", argv[i], px_strerror(err));
    return 127;
  }
  px_buf_reader *out;
  err = px_buf_reader_new(px_child_take_stdio(child, 1), 0, &out);
  if (err < 0) {
    fprintf(stderr, "run: %s\n", px_strerror(err));
    px_child_close(child);
    return 1;
  }

  /* Not px_run: the stream and the child's pidfd are registered with the
   * runtime's reactor, so they are closed before the runtime is freed. */
  px_runtime *rt = NULL;
  err = px_runtime_new(&rt, NULL);
  run_cmd r = PX_ASYNC_NEW(run_cmd, .child = child,
                           .limit = (px_duration)(secs * 1e9));
  r.out = PX_ASYNC_NEW(lines, .out = out);
  if (err == 0) err = px_runtime_block_on(rt, PX_FUTURE(&r));
  px_buf_reader_close(out);
  px_child_close(child);
  px_runtime_free(rt);
  if (err < 0) {
    fprintf(stderr, "run: %s\n", px_strerror(err));
    return 1;
  }
  if (r.timed_out) {
    fprintf(stderr, "run: %s timed out after %g s\n", argv[i], secs);
    return 124;
  }
  int64_t status = r.px.base.output.i64;
  return status >= 0 ? (int)status : 128 + (int)-status;
}
