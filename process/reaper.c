/*
 * The reaper (see reaper.h): one lock around every waitpid, and a thread
 * that reaps children nobody awaits through the reactor: SIGCHLD-path
 * children and orphans.
 */
#include "process/reaper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/platform.h"
#include "pollux/errors.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static px__proc *g_list; /* listed records, guarded by g_lock */

/* Startup, guarded by g_start (never held together with g_lock). */
static pthread_mutex_t g_start = PTHREAD_MUTEX_INITIALIZER;
static bool g_thread_running;
static pthread_t g_thread;
/* Set at process exit: the reaper thread returns (see stop_at_exit). */
static atomic_bool g_quit;
static bool g_handler_installed;
/* The self-pipe: the handler and px__reaper_add_locked write, the reaper
 * thread reads. Written once before the thread and the handler exist. */
static int g_pipe_rd = -1;
static volatile sig_atomic_t g_pipe_wr = -1;
static struct sigaction g_old_chld;

void px__reaper_lock(void) { pthread_mutex_lock(&g_lock); }
void px__reaper_unlock(void) { pthread_mutex_unlock(&g_lock); }

bool px__proc_reap_locked(px__proc *p) {
  while (!p->reaped) {
    int st = 0;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
      p->reaped = true;
      p->status = st;
    } else if (r == 0) {
      return false;
    } else if (errno != EINTR) {
      /* ECHILD: SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere, took
       * the status. The child is gone all the same. */
      p->reaped = true;
      p->err = px_err_from_errno(errno);
    }
  }
  return true;
}

long long px__proc_status(const px__proc *p) {
  if (WIFSIGNALED(p->status)) return -(long long)WTERMSIG(p->status);
  return WEXITSTATUS(p->status);
}

/* Makes the reaper thread look again. Async-signal-safe: the handler
 * calls it. A full pipe already holds a wake-up, so a failed write is
 * fine. */
static void kick(void) {
  int saved = errno;
  char b = 0;
  if (g_pipe_wr >= 0 && write(g_pipe_wr, &b, 1) < 0) {
    /* EAGAIN: a wake-up is already waiting in the pipe. */
  }
  errno = saved;
}

static void on_sigchld(int signo, siginfo_t *info, void *uctx) {
  kick();
  /* Whoever had SIGCHLD before us still gets it. */
  if (g_old_chld.sa_flags & SA_SIGINFO) {
    if (g_old_chld.sa_sigaction != NULL)
      g_old_chld.sa_sigaction(signo, info, uctx);
  } else if (g_old_chld.sa_handler != SIG_DFL &&
             g_old_chld.sa_handler != SIG_IGN) {
    g_old_chld.sa_handler(signo);
  }
}

void px__reaper_add_locked(px__proc *p) {
  if (!p->listed) {
    p->next = g_list;
    g_list = p;
    p->listed = true;
  }
  /* An exit before the listing raised its SIGCHLD already: look now. */
  kick();
}

void px__reaper_remove_locked(px__proc *p) {
  if (!p->listed) return;
  for (px__proc **pp = &g_list; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  p->listed = false;
  p->next = NULL;
}

void px__proc_free(px__proc *p) {
  if (p == NULL) return;
  if (p->pidfd >= 0) close(p->pidfd);
  px_waker_drop(&p->waker);
  free(p);
}

/*
 * One pass over the list: reaps what exited, unlinks it, wakes its wait,
 * and returns the orphans to free (outside the lock). The wake happens
 * under the lock, on purpose: a wait that finds its child reaped takes the
 * lock first, so it cannot complete, and its runtime cannot be freed,
 * while a waker for it is still in our hands (block_on's waker points into
 * the runtime and owns nothing). A wake only queues a task or unparks a
 * thread; it never runs a future, so it never comes back for this lock.
 */
static px__proc *reap_pass(void) {
  px__proc *dead = NULL;
  px__proc **pp = &g_list;
  while (*pp != NULL) {
    px__proc *p = *pp;
    if (!px__proc_reap_locked(p)) {
      pp = &p->next;
      continue;
    }
    *pp = p->next;
    p->listed = false;
    p->next = NULL;
    if (p->orphan) {
      p->next = dead;
      dead = p;
    } else {
      px_waker_wake(&p->waker);
    }
  }
  return dead;
}

static void *reaper_main(void *arg) {
  (void)arg;
  /* Signals are for the application's threads; SIGCHLD reaches us
   * through the pipe whichever thread takes it. */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  struct pollfd *fds = NULL;
  size_t cap = 0;
  while (!atomic_load(&g_quit)) {
    /* Watch the pipe, and the pidfd of every listed orphan. */
    pthread_mutex_lock(&g_lock);
    size_t n = 1;
    bool by_signal = false;
    for (px__proc *p = g_list; p != NULL; p = p->next) {
      n += p->pidfd >= 0;
      by_signal |= p->pidfd < 0;
    }
    if (n > cap) {
      struct pollfd *bigger = realloc(fds, n * 2 * sizeof(*fds));
      if (bigger != NULL) {
        fds = bigger;
        cap = n * 2;
      }
    }
    size_t used = 0;
    if (cap > 0) {
      fds[used++] = (struct pollfd){.fd = g_pipe_rd, .events = POLLIN};
      for (px__proc *p = g_list; p != NULL && used < cap; p = p->next)
        if (p->pidfd >= 0)
          fds[used++] = (struct pollfd){.fd = p->pidfd, .events = POLLIN};
    }
    pthread_mutex_unlock(&g_lock);

    if (used > 0) {
      /*
       * Look again every 100 ms while a child depends on SIGCHLD: the
       * signal can be lost to us (a handler installed after ours that does
       * not chain, a px_signal or sigwait that consumes SIGCHLD, a thread
       * that takes the signal while a sanitizer defers its handlers until
       * that thread's next intercepted call), and a lost SIGCHLD must
       * delay a wait, not hang it. Also when short of memory for the set.
       */
      (void)poll(fds, used, by_signal || used < n ? 100 : -1);
    } else {
      struct timespec ts = {0, 100 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    char buf[256];
    while (read(g_pipe_rd, buf, sizeof buf) > 0) {
    }

    pthread_mutex_lock(&g_lock);
    px__proc *dead = reap_pass();
    pthread_mutex_unlock(&g_lock);
    while (dead != NULL) {
      px__proc *next = dead->next;
      px__proc_free(dead);
      dead = next;
    }
  }
  free(fds);
  return NULL;
}

/*
 * At exit the reaper thread is stopped and joined, so that the process
 * ends with no thread of ours running (leak checkers count a live
 * thread's memory as lost). Children not reaped yet are left to init,
 * which reaps whatever a dying process leaves.
 */
static void __attribute__((destructor)) stop_at_exit(void) {
  pthread_mutex_lock(&g_start);
  bool running = g_thread_running;
  g_thread_running = false;
  pthread_mutex_unlock(&g_start);
  if (!running) return;
  atomic_store(&g_quit, true);
  kick();
  pthread_join(g_thread, NULL);
}

int px__reaper_start(bool sigchld) {
  int err = 0;
  pthread_mutex_lock(&g_start);
  if (g_pipe_rd < 0) {
    int fds[2];
    if (px__pipe(fds, true) < 0) {
      err = px_err_from_errno(errno);
      goto out;
    }
    g_pipe_rd = fds[0];
    g_pipe_wr = fds[1];
  }
  if (sigchld && !g_handler_installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigchld;
    /* SA_RESTART: other threads' blocking calls are not cut short by our
     * children's exits. */
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, &g_old_chld) < 0) {
      err = px_err_from_errno(errno);
      goto out;
    }
    g_handler_installed = true;
  }
  if (!g_thread_running) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = pthread_create(&g_thread, &attr, reaper_main, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      err = px_err_from_errno(rc);
      goto out;
    }
    g_thread_running = true;
  }
out:
  pthread_mutex_unlock(&g_start);
  return err;
}
