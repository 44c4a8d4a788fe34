/**
 * @file
 * pollux/process.h - child processes (tokio::process, libuv's uv_spawn).
 *
 * px_process_spawn starts a program with its arguments, environment,
 * working directory and, for each of stdin, stdout and stderr, the parent's
 * descriptor (inherit), /dev/null, or a pipe. A piped descriptor is an
 * ordinary pollux stream on the parent's side: read and write it with the
 * same futures as a socket. The spawn itself is synchronous and reports
 * every failure to start (no such program, not executable, a bad working
 * directory) as a PX_E* code, never as a child that exits 127.
 *
 * A child is waited for with a future (px_child_wait_init) that completes
 * with its exit code, or minus the signal that killed it. Nothing blocks a
 * runtime thread: on Linux a pidfd, registered with the reactor, says when
 * the child has exited; elsewhere (and with --config=portable, or with the
 * environment variable PX_PROCESS_REAPER=sigchld) a SIGCHLD handler wakes a
 * small reaper thread. Either way only the pids this library started are
 * waited for, one by one (never waitpid(-1)), so other code in the process
 * that starts and waits for its own children is left alone, and any number
 * of runtimes may spawn children at once.
 *
 * px_child_close releases the handle. A child still running then is killed
 * (SIGKILL) when it was spawned with kill_on_drop, or left running
 * (detached) otherwise; either way it is reaped in the background, so it
 * never stays a zombie.
 *
 * Children start with every signal at its default action and none blocked
 * (the parent's px_signal streams block some), and with the parent's
 * descriptors that are not close-on-exec (every descriptor pollux opens is
 * close-on-exec).
 *
 * Do not set SIGCHLD to SIG_IGN or call waitpid(-1) elsewhere in the
 * process: either reaps our children behind our back, and their wait then
 * fails with PX_ECHILD.
 */
#ifndef POLLUX_PROCESS_H
#define POLLUX_PROCESS_H

/** @addtogroup process
 * @{
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pollux/future.h"
#include "pollux/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a child's stdin, stdout or stderr is connected to. */
typedef enum px_stdio {
  /** The parent's own descriptor (the default). */
  PX_STDIO_INHERIT = 0,
  /** /dev/null: reads see end of file, writes vanish. */
  PX_STDIO_NULL = 1,
  /** A pipe whose other end the parent gets as a stream (px_child_stdio). */
  PX_STDIO_PIPE = 2
} px_stdio;

/**
 * What to run (tokio's Command). Initialise with PX_COMMAND_INIT, then set
 * the fields that matter; every pointer must stay valid during
 * px_process_spawn only.
 */
typedef struct px_command {
  /**
   * The program: a path (anything containing '/'), or a name looked up in
   * the directories of the parent's PATH, as execvp does. Required.
   */
  const char *program;
  /**
   * The argument vector, argv[0] included, ending with NULL. NULL runs the
   * program with argv = {program, NULL}.
   */
  const char *const *argv;
  /**
   * The environment as "NAME=value" strings ending with NULL; the child
   * gets exactly these. NULL: a copy of the parent's environment.
   */
  const char *const *env;
  /** The child's working directory; NULL: the parent's. */
  const char *cwd;
  /** stdin, stdout and stderr (indexes 0, 1, 2). */
  px_stdio stdio[3];
  /**
   * When the handle is closed while the child still runs: true kills it
   * (tokio's kill_on_drop), false leaves it running. It is reaped either way.
   */
  bool kill_on_drop;
} px_command;

/** A px_command that runs nothing yet: inherit all stdio, no kill on drop. */
#define PX_COMMAND_INIT                                                  \
  {                                                                      \
    NULL, NULL, NULL, NULL, {PX_STDIO_INHERIT, PX_STDIO_INHERIT,         \
                             PX_STDIO_INHERIT},                          \
        false                                                            \
  }

/** A running (or exited, not yet closed) child process. */
typedef struct px_child px_child;

/**
 * Starts cmd's program. On success *out is the child's handle (close it
 * with px_child_close). Errors, with nothing left behind: PX_EINVAL (NULL
 * cmd, out or program, a stdio value out of range), PX_ENOENT (no such
 * program, or no such working directory), PX_EACCES (not executable, or a
 * directory that may not be entered), PX_ENOTDIR, PX_ENOEXEC (not a format
 * the kernel runs), PX_EMFILE (no descriptors for the pipes), PX_ENOMEM,
 * PX_EAGAIN (process limit). Synchronous: callable from any thread, inside
 * a runtime or not.
 */
int px_process_spawn(const px_command *cmd, px_child **out);

/** The child's process id, or PX_EINVAL for NULL. */
pid_t px_child_pid(const px_child *c);

/**
 * The parent's end of child descriptor `fd` (0: stdin, a stream to write;
 * 1: stdout, 2: stderr, streams to read) when it was spawned with
 * PX_STDIO_PIPE; NULL otherwise, for NULL c, for fd out of range, and once
 * the stream was taken. The child keeps owning it: px_child_close closes it.
 */
px_stream *px_child_stdio(px_child *c, int fd);

/**
 * Like px_child_stdio, but hands the stream over: the caller closes it
 * (px_stream_close), and px_child_close leaves it alone. Closing the stdin
 * stream is how a child is told that its input has ended.
 */
px_stream *px_child_take_stdio(px_child *c, int fd);

/**
 * Waits for the child to exit (tokio's Child::wait). Completes with
 * output.i64 = the exit code (0..255) of a child that exited, or minus the
 * number of the signal that killed it (-9 after SIGKILL). Once known, the
 * status is kept: later waits complete with it at once. Errors: PX_EINVAL
 * (NULL child), PX_ENORUNTIME (polled outside a runtime), PX_EBUSY (the
 * child's pidfd is registered with another runtime, which waited for it
 * first), PX_ECHILD (something else in the process reaped the child). Dropping a pending
 * wait is harmless; the child goes on running. One wait at a time per
 * child.
 */
typedef struct px_child_wait {
  /** The future header; output.i64 is the status once ready. */
  px_future base;
  px_child *child; /**< private */
} px_child_wait;

/** Initialises a wait for c; returns &f->base (NULL when f is NULL). */
px_future *px_child_wait_init(px_child_wait *f, px_child *c);

/**
 * Checks without waiting (tokio's try_wait): returns 1 with *status set as
 * px_child_wait's output when the child has exited, 0 while it runs, or a
 * negative error (PX_EINVAL for NULL arguments, PX_ECHILD).
 */
int px_child_try_wait(px_child *c, int64_t *status);

/**
 * Sends signal `signo` to the child (SIGKILL: tokio's start_kill). Returns
 * 0, also when the child has already exited and been waited for (nothing
 * to signal; its pid is never reused by mistake), or PX_EINVAL (NULL c, a
 * bad signal number). Await px_child_wait_init for the child's end.
 */
int px_child_kill(px_child *c, int signo);

/**
 * Closes the streams the child still owns and frees the handle. A child
 * still running is killed with SIGKILL if it was spawned with
 * kill_on_drop, and detached otherwise; either way it is reaped in the
 * background. No wait may be pending on it. As with a stream, the runtime
 * that waited for the child must outlive it (the child's pidfd is
 * registered with that runtime's reactor): close, then free the runtime.
 * NULL is ignored.
 */
void px_child_close(px_child *c);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_PROCESS_H */
