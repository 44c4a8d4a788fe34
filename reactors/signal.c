/*
 * Signals as an async stream (pollux/signal.h): a descriptor that becomes
 * readable when a signal arrives, read with the same readiness loop as any
 * socket. Linux has one built in (signalfd); other systems (and
 * --config=portable) get a self-pipe fed by a signal handler, the classic
 * portable trick.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "platform/platform.h"
#include "pollux/signal.h"
#include "reactors/fd_future.h"

#if PX_HAVE_SIGNALFD
#include <sys/signalfd.h>
#endif

#define MAX_SIGNALS 64

struct px_signal {
  int fd; /* what we read: the signalfd, or the pipe's read end */
  px__io io;
#if !PX_HAVE_SIGNALFD
  int write_fd; /* the pipe's write end, written by the handler */
  size_t n;
  int signals[MAX_SIGNALS];
  struct sigaction old[MAX_SIGNALS];
#endif
};

static int check_signals(const int *signals, size_t n) {
  if (signals == NULL || n == 0 || n > MAX_SIGNALS) return PX_EINVAL;
  for (size_t i = 0; i < n; i++) {
    int s = signals[i];
    if (s <= 0 || s >= NSIG || s == SIGKILL || s == SIGSTOP) return PX_EINVAL;
  }
  return 0;
}

#if PX_HAVE_SIGNALFD

static int open_fd(px_signal *sig, const int *signals, size_t n) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < n; i++) sigaddset(&set, signals[i]);
  /* signalfd reads signals that are pending, and a signal is only left
   * pending (instead of running its default action) while it is blocked. */
  int err = pthread_sigmask(SIG_BLOCK, &set, NULL);
  if (err != 0) return px_err_from_errno(err);
  sig->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  return sig->fd < 0 ? px_err_from_errno(errno) : 0;
}

static void close_fd(px_signal *sig) { (void)sig; }

static int read_signal(px_signal *sig, int *signo) {
  struct signalfd_siginfo info;
  ssize_t n = read(sig->fd, &info, sizeof(info));
  if (n < 0) return px__fd_after_failure();
  if ((size_t)n != sizeof(info)) return PX_EIO;
  *signo = (int)info.ssi_signo;
  return PX__FD_DONE;
}

#else /* the self-pipe */

/* The handler cannot find a px_signal by itself: one write end per signal. */
static volatile sig_atomic_t g_write_fd[NSIG];

static void on_signal(int signo) {
  /* A handler may interrupt anything, so it only does what is
   * async-signal-safe: one write. A full pipe drops the byte, which is the
   * same coalescing the kernel applies to pending signals. */
  int saved = errno;
  unsigned char b = (unsigned char)signo;
  if (g_write_fd[signo] > 0) (void)write(g_write_fd[signo], &b, 1);
  errno = saved;
}

static void close_fd(px_signal *sig);

static int open_fd(px_signal *sig, const int *signals, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (g_write_fd[signals[i]] > 0) return PX_EBUSY;
  int fds[2];
  if (px__pipe(fds, true) < 0) return px_err_from_errno(errno);
  sig->fd = fds[0];
  sig->write_fd = fds[1];
  sig->n = 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < n; i++) {
    g_write_fd[signals[i]] = fds[1];
    if (sigaction(signals[i], &sa, &sig->old[i]) < 0) {
      int err = px_err_from_errno(errno);
      g_write_fd[signals[i]] = 0;
      close_fd(sig);
      close(fds[0]);
      return err;
    }
    sig->signals[sig->n++] = signals[i];
  }
  return 0;
}

static void close_fd(px_signal *sig) {
  for (size_t i = 0; i < sig->n; i++) {
    (void)sigaction(sig->signals[i], &sig->old[i], NULL);
    g_write_fd[sig->signals[i]] = 0;
  }
  close(sig->write_fd);
}

static int read_signal(px_signal *sig, int *signo) {
  unsigned char b;
  ssize_t n = read(sig->fd, &b, 1);
  if (n < 0) return px__fd_after_failure();
  if (n == 0) return PX_EIO;
  *signo = b;
  return PX__FD_DONE;
}

#endif

int px_signal_open(px_signal **out, const int *signals, size_t n) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  int err = check_signals(signals, n);
  if (err < 0) return err;
  px_signal *sig = px__alloc(sizeof(*sig));
  if (sig == NULL) return PX_ENOMEM;
  err = open_fd(sig, signals, n);
  if (err < 0) {
    px__free(sig, sizeof(*sig));
    return err;
  }
  px__io_init(&sig->io, sig->fd);
  *out = sig;
  return 0;
}

void px_signal_close(px_signal *s) {
  if (s == NULL) return;
  close_fd(s);
  px__fd_release(&s->io, s, sizeof(*s));
}

static int recv_attempt(px_future *self) {
  px_signal_recv *f = (px_signal_recv *)self;
  int signo = 0;
  int r = read_signal(f->sig, &signo);
  if (r == PX__FD_DONE) f->base.output.i64 = signo;
  return r;
}

static px_poll recv_poll(px_future *self, px_context *cx) {
  px_signal_recv *f = (px_signal_recv *)self;
  if (f->sig == NULL) return px__fd_complete(self, PX_EINVAL);
  return px__fd_drive(self, cx, &f->sig->io, PX__READABLE, recv_attempt);
}

static void recv_drop(px_future *self) {
  px_signal_recv *f = (px_signal_recv *)self;
  if (f->sig != NULL) px__fd_forget_waker(self, &f->sig->io, PX__READABLE);
}

static const px_future_vtable recv_vtable = {
    sizeof(px_signal_recv), "signal_recv", recv_poll, recv_drop};

px_future *px_signal_recv_init(px_signal_recv *f, px_signal *s) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &recv_vtable);
  f->sig = s;
  return &f->base;
}
