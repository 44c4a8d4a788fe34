/*
 * Child processes (pollux/process.h): vfork + exec with an error pipe to
 * start them (see start), a pidfd or the SIGCHLD reaper (reaper.h) to
 * learn when they end.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "platform/platform.h"
#include "pollux/process.h"
#include "process/process_internal.h"
#include "process/reaper.h"
#include "reactors/fd_future.h"

/* pidfd_open(2): Linux 5.3. Other systems, and the portable build
 * (--config=portable: PX_PORTABLE=1, every POSIX fallback), take the
 * SIGCHLD path. */
#if !defined(PX_PORTABLE)
#define PX_PORTABLE 0
#endif
#if defined(__linux__) && defined(SYS_pidfd_open) && !PX_PORTABLE
#define HAVE_PIDFD 1
#else
#define HAVE_PIDFD 0
#endif

struct px_child {
  px__io io; /* the pidfd (pidfd path); io.fd is -1 on the SIGCHLD path */
  px__proc *proc;
  px_stream *stdio[3];
  bool kill_on_drop;
};

/* ---- Which path reaps ------------------------------------------------- */

/* -1: not decided yet; 0: SIGCHLD; 1: pidfd where the kernel has it. */
static atomic_int g_reaper_mode = -1;

void px__process_set_reaper(int mode) { atomic_store(&g_reaper_mode, mode); }

static bool want_pidfd(void) {
  int mode = atomic_load(&g_reaper_mode);
  if (mode < 0) {
    const char *env = getenv("PX_PROCESS_REAPER");
    mode = env != NULL && strcmp(env, "sigchld") == 0 ? PX__REAPER_SIGCHLD
                                                      : PX__REAPER_PIDFD;
    int expected = -1;
    if (!atomic_compare_exchange_strong(&g_reaper_mode, &expected, mode))
      mode = expected;
  }
  return HAVE_PIDFD && mode == PX__REAPER_PIDFD;
}

static int open_pidfd(pid_t pid) {
#if HAVE_PIDFD
  /* Always close-on-exec. Safe after the spawn: the pid cannot be reused
   * before we reap it, and nobody else reaps it. */
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

/* ---- Spawning --------------------------------------------------------- */

/*
 * Moves fd above 0..2. The child's ends are dup2'ed onto 0, 1 and 2, in
 * that order; an end that already sat on one of those numbers could be
 * overwritten before its own dup2, or dup2'ed onto itself, which keeps
 * close-on-exec set (the parent's stdin was closed, say).
 */
static int above_stdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int saved = errno;
  close(fd);
  errno = saved;
  return moved;
}

/* The descriptors of one spawn: ours (wrapped as streams) and the
 * child's (closed in the parent once the child has them). */
typedef struct spawn_fds {
  int child[3];
  px_stream *parent[3];
} spawn_fds;

static void fds_close(spawn_fds *s) {
  for (int i = 0; i < 3; i++) {
    if (s->child[i] >= 0) close(s->child[i]);
    s->child[i] = -1;
    px_stream_close(s->parent[i]);
    s->parent[i] = NULL;
  }
}

static int open_one(spawn_fds *s, int i, px_stdio how) {
  if (how == PX_STDIO_INHERIT) return 0;
  if (how == PX_STDIO_NULL) {
    s->child[i] = above_stdio(open("/dev/null", O_RDWR | O_CLOEXEC));
    return s->child[i] < 0 ? px_err_from_errno(errno) : 0;
  }
  /* Both ends close-on-exec; the child's loses it in its dup2. Blocking:
   * the child expects ordinary stdio; ours becomes non-blocking when
   * wrapped (the two ends are separate open files, with separate flags). */
  int p[2];
  if (px__pipe(p, false) < 0) return px_err_from_errno(errno);
  int mine = i == 0 ? p[1] : p[0];
  s->child[i] = above_stdio(i == 0 ? p[0] : p[1]);
  if (s->child[i] < 0) {
    int err = px_err_from_errno(errno);
    close(mine);
    return err;
  }
  int err = px_fd_wrap(mine, &s->parent[i]);
  if (err < 0) close(mine);
  return err;
}

static int check_command(const px_command *cmd) {
  if (cmd == NULL || cmd->program == NULL || cmd->program[0] == '\0')
    return PX_EINVAL;
  for (int i = 0; i < 3; i++)
    if (cmd->stdio[i] != PX_STDIO_INHERIT && cmd->stdio[i] != PX_STDIO_NULL &&
        cmd->stdio[i] != PX_STDIO_PIPE)
      return PX_EINVAL;
  if (cmd->argv != NULL && cmd->argv[0] == NULL) return PX_EINVAL;
  return 0;
}

/* What the child needs between vfork and exec, prepared by the parent so
 * that the child allocates nothing. */
typedef struct child_plan {
  const char *program;
  char *const *argv;
  char *const *envp;
  const char *cwd;
  const int *fds; /* the child's ends, -1 where stdio is inherited */
  int err_fd;     /* the error pipe's write end (close-on-exec) */
  bool search;    /* no '/' in program: look it up in PATH */
} child_plan;

/*
 * The child, between vfork and exec. It shares the parent's memory and the
 * parent is suspended until it execs or exits, so it only makes system
 * calls (async-signal-safe ones) and touches nothing but its stack. Every
 * signal is blocked on entry (see start): the parent's handlers, which
 * would run on the parent's memory, are reset to the default before
 * anything is unblocked. A failure sends errno up the error pipe and ends
 * the child; success closes the pipe (close-on-exec), which the parent
 * reads as end of file.
 */
static void __attribute__((noreturn)) child_main(const child_plan *p) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  /* Ignored signals would stay ignored across exec: reset them too, as
   * libuv does. SIGKILL, SIGSTOP and glibc's own fail harmlessly. */
  for (int sig = 1; sig < NSIG; sig++) (void)sigaction(sig, &dfl, NULL);
  int err = 0;
  /* The ends are all above 2 (above_stdio), so no dup2 overwrites one
   * that is still to be moved; dup2 clears close-on-exec on the copy. */
  for (int i = 0; i < 3 && err == 0; i++)
    if (p->fds[i] >= 0 && dup2(p->fds[i], i) < 0) err = errno;
  if (err == 0 && p->cwd != NULL && chdir(p->cwd) < 0) err = errno;
  if (err == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (p->search)
      execvpe(p->program, p->argv, p->envp);
    else
      execve(p->program, p->argv, p->envp);
    err = errno;
  }
  while (write(p->err_fd, &err, sizeof(err)) < 0 && errno == EINTR) {
  }
  _exit(127);
}

/*
 * Starts the child: vfork, then exec in the child, with libuv's
 * close-on-exec error pipe carrying a failure (chdir, dup2, exec) back as
 * the spawn's own error. vfork rather than fork: the child runs on the
 * parent's memory until exec, so a big parent costs nothing to copy (the
 * same reason glibc's posix_spawn uses clone(CLONE_VM | CLONE_VFORK)).
 * Not posix_spawn itself: it reports exec failures through that shared
 * memory, which tools that turn vfork into fork (valgrind) lose, making a
 * missing program look like a child exiting 127. Returns 0 or a positive
 * errno.
 */
static int start(const px_command *cmd, const spawn_fds *s, pid_t *pid) {
  int ep[2];
  if (px__pipe(ep, false) < 0) return errno;
  int err_fd = above_stdio(ep[1]);
  if (err_fd < 0) {
    int e = errno;
    close(ep[0]);
    return e;
  }
  const char *fallback[2] = {cmd->program, NULL};
  child_plan plan = {
      .program = cmd->program,
      .argv = (char *const *)(cmd->argv != NULL ? cmd->argv : fallback),
      .envp = cmd->env != NULL ? (char *const *)cmd->env : environ,
      .cwd = cmd->cwd,
      .fds = s->child,
      .err_fd = err_fd,
      .search = strchr(cmd->program, '/') == NULL,
  };
  /* No handler of ours may run in the child (it would run on our memory):
   * everything is blocked across the vfork, and the child resets the
   * handlers before it unblocks. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pid_t child = vfork();
  if (child == 0) child_main(&plan);
  int fork_err = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(err_fd);
  if (child < 0) {
    close(ep[0]);
    return fork_err;
  }
  int child_err = 0;
  ssize_t n;
  while ((n = read(ep[0], &child_err, sizeof(child_err))) < 0 &&
         errno == EINTR) {
  }
  close(ep[0]);
  if (n == (ssize_t)sizeof(child_err)) {
    /* It never ran: it wrote and called _exit, so this waitpid returns at
     * once (with a real vfork the child is already a zombie here). */
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
    return child_err != 0 ? child_err : EIO;
  }
  *pid = child;
  return 0;
}

int px_process_spawn(const px_command *cmd, px_child **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  int err = check_command(cmd);
  if (err < 0) return err;

  bool pidfd = want_pidfd();
  /* The SIGCHLD path needs its handler in place before the child can
   * exit. */
  if (!pidfd && (err = px__reaper_start(true)) < 0) return err;

  px_child *c = px__calloc(sizeof(*c));
  px__proc *p = calloc(1, sizeof(*p));
  if (c == NULL || p == NULL) {
    px__free(c, sizeof(*c));
    free(p);
    return PX_ENOMEM;
  }
  p->pidfd = -1;
  spawn_fds s = {{-1, -1, -1}, {NULL, NULL, NULL}};
  for (int i = 0; i < 3 && err == 0; i++) err = open_one(&s, i, cmd->stdio[i]);
  pid_t pid = -1;
  if (err == 0) {
    int rc = start(cmd, &s, &pid);
    if (rc != 0) err = px_err_from_errno(rc);
  }
  if (err < 0) {
    fds_close(&s);
    px__free(c, sizeof(*c));
    free(p);
    return err;
  }
  for (int i = 0; i < 3; i++) {
    if (s.child[i] >= 0) close(s.child[i]);
    c->stdio[i] = s.parent[i];
  }
  p->pid = pid;
  c->proc = p;
  c->kill_on_drop = cmd->kill_on_drop;
  int fd = pidfd ? open_pidfd(pid) : -1;
  px__io_init(&c->io, fd);
  if (fd < 0) {
    /* No pidfd after all (an old kernel: ENOSYS; out of descriptors):
     * this child takes the SIGCHLD path. Its exit, if it came before the
     * handler, is found by the look px__reaper_add_locked asks for. */
    err = pidfd ? px__reaper_start(true) : 0;
    if (err < 0) {
      /* Nothing could ever reap it: better dead than a zombie. */
      kill(pid, SIGKILL);
    }
    px__reaper_lock();
    px__reaper_add_locked(p);
    px__reaper_unlock();
  }
  *out = c;
  return 0;
}

/* ---- Accessors -------------------------------------------------------- */

pid_t px_child_pid(const px_child *c) {
  return c == NULL ? PX_EINVAL : c->proc->pid;
}

px_stream *px_child_stdio(px_child *c, int fd) {
  if (c == NULL || fd < 0 || fd > 2) return NULL;
  return c->stdio[fd];
}

px_stream *px_child_take_stdio(px_child *c, int fd) {
  px_stream *s = px_child_stdio(c, fd);
  if (s != NULL) c->stdio[fd] = NULL;
  return s;
}

/* ---- Waiting ---------------------------------------------------------- */

/* Reaps under the lock; 1 with *status, 0 while running, or an error. */
static int try_reap(px__proc *p, int64_t *status) {
  px__reaper_lock();
  bool done = px__proc_reap_locked(p);
  int err = p->err;
  if (done && err == 0) *status = px__proc_status(p);
  px__reaper_unlock();
  return !done ? 0 : err < 0 ? err : 1;
}

int px_child_try_wait(px_child *c, int64_t *status) {
  if (c == NULL || status == NULL) return PX_EINVAL;
  return try_reap(c->proc, status);
}

static int wait_attempt(px_future *self) {
  px_child_wait *f = (px_child_wait *)self;
  int64_t status = 0;
  int r = try_reap(f->child->proc, &status);
  if (r == 0) return PX__FD_WOULD_BLOCK;
  if (r < 0) return r;
  self->output.i64 = status;
  return PX__FD_DONE;
}

/* Bit of the future's state: a SIGCHLD-path wait left its waker in the
 * record (the pidfd path's own bit is fd_io's). */
#define PARKED 0x2u

static px_poll wait_poll(px_future *self, px_context *cx) {
  px_child_wait *f = (px_child_wait *)self;
  px_child *c = f->child;
  if (c == NULL) return px__fd_complete(self, PX_EINVAL);
  if (c->io.fd >= 0)
    return px__fd_drive(self, cx, &c->io, PX__READABLE, wait_attempt);

  /* The SIGCHLD path: the reaper thread reaps and wakes us. */
  if (cx->runtime == NULL) return px__fd_complete(self, PX_ENORUNTIME);
  /* A child reaped earlier answers at once, every time (the pidfd path
   * spends in px__fd_drive). */
  if (!px__coop_proceed(cx)) return PX_PENDING;
  px__proc *p = c->proc;
  px_waker old = PX_WAKER_EMPTY;
  /* Under the lock the reaper thread neither reaps nor wakes (see
   * reap_pass): we see the child running and leave our waker, or see it
   * reaped with no wake of ours still in flight. */
  px__reaper_lock();
  bool done = px__proc_reap_locked(p);
  if (done) {
    old = px_waker_take(&p->waker);
  } else if (!px_waker_will_wake(&p->waker, cx->waker)) {
    old = px_waker_take(&p->waker);
    p->waker = px_waker_clone(cx->waker);
  }
  int err = p->err;
  int64_t status = done && err == 0 ? px__proc_status(p) : 0;
  px__reaper_unlock();
  px_waker_drop(&old);
  if (!done) {
    self->state |= PARKED;
    px__coop_refund(); /* waiting, not progress */
    return PX_PENDING;
  }
  self->state &= ~PARKED;
  self->output.i64 = status;
  return px__fd_complete(self, err);
}

static void wait_drop(px_future *self) {
  px_child_wait *f = (px_child_wait *)self;
  px_child *c = f->child;
  if (c == NULL) return;
  if (c->io.fd >= 0) {
    px__fd_forget_waker(self, &c->io, PX__READABLE);
  } else if (self->state & PARKED) {
    px__reaper_lock();
    px_waker old = px_waker_take(&c->proc->waker);
    px__reaper_unlock();
    px_waker_drop(&old);
  }
}

static const px_future_vtable wait_vtable = {sizeof(px_child_wait),
                                             "child_wait", wait_poll,
                                             wait_drop};

px_future *px_child_wait_init(px_child_wait *f, px_child *c) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &wait_vtable);
  f->child = c;
  return &f->base;
}

/* ---- Signals and the end of a handle ---------------------------------- */

int px_child_kill(px_child *c, int signo) {
  if (c == NULL || signo <= 0 || signo >= NSIG) return PX_EINVAL;
  int err = 0;
  /* Under the lock nobody reaps, so the pid is still our child's (a
   * zombie at worst, which ignores signals). */
  px__reaper_lock();
  if (!c->proc->reaped && kill(c->proc->pid, signo) < 0)
    err = px_err_from_errno(errno);
  px__reaper_unlock();
  return err;
}

void px_child_close(px_child *c) {
  if (c == NULL) return;
  for (int i = 0; i < 3; i++) px_stream_close(c->stdio[i]);
  px__proc *p = c->proc;
  px__reaper_lock();
  bool done = px__proc_reap_locked(p);
  if (!done && c->kill_on_drop) kill(p->pid, SIGKILL);
  if (done) px__reaper_remove_locked(p);
  px__reaper_unlock();

  if (!done) {
    /* An orphan for the reaper thread: through a pidfd of its own (ours
     * goes with the handle), or through SIGCHLD. */
    int fd = c->io.fd >= 0 ? fcntl(c->io.fd, F_DUPFD_CLOEXEC, 3) : -1;
    if (px__reaper_start(fd < 0) < 0) {
      /* No thread to reap it: nothing better than a zombie is left. */
      if (fd >= 0) close(fd);
      fd = -1;
    }
    px__reaper_lock();
    p->pidfd = fd;
    p->orphan = true;
    done = px__proc_reap_locked(p);
    if (done)
      px__reaper_remove_locked(p);
    else
      px__reaper_add_locked(p);
    px__reaper_unlock();
  }
  if (done) px__proc_free(p);
  if (c->io.fd >= 0)
    px__fd_release(&c->io, c, sizeof(*c));
  else
    px__free(c, sizeof(*c));
}
