/*
 * The platform layer's portable parts and fallbacks (platform.h): each
 * function uses the system's own call where PX_HAVE_* says it has one, and
 * POSIX otherwise. --config=portable builds every fallback on Linux.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include "platform/platform.h"

#if PX_HAVE_RAW_SOCKET_IO
#include <sys/syscall.h>
#endif

/* ---- The futex fallback: a table of condition variables --------------- */

#if !PX_HAVE_FUTEX

/*
 * Waiters sleep on the bucket their word's address hashes to. The wait
 * checks the word under the bucket's mutex and a wake takes that mutex
 * before broadcasting, so a wake that follows a change of the word cannot
 * slip between a waiter's check and its sleep: the futex's guarantee. Words
 * share buckets, so a wake is a broadcast and a waiter may wake for
 * another word; the contract allows spurious returns. (macOS's __ulock and
 * FreeBSD's _umtx_op would avoid both; a build there could use them here.)
 */
#define BUCKETS 64u

typedef struct bucket {
  pthread_mutex_t mu;
  pthread_cond_t cond;
} bucket;

static bucket buckets[BUCKETS];
static pthread_once_t buckets_once = PTHREAD_ONCE_INIT;

static void buckets_make(void) {
  for (unsigned i = 0; i < BUCKETS; i++) {
    pthread_mutex_init(&buckets[i].mu, NULL);
    px__cond_init_monotonic(&buckets[i].cond); /* px__futex_wait_ms */
  }
}

/* fork: a thread of the parent's that waited in a bucket leaves the child
 * a copy of the condition variable that counts a waiter that does not
 * exist (a broadcast on it would wait for that waiter for ever: the
 * child's first runtime woke its slow-poll watchdog so and hung), and one
 * inside a bucket's mutex leaves it locked. The child, whose one thread
 * is in none of them, makes the buckets anew. (No prepare handler taking
 * the mutexes: a thread holding another atfork handler's lock while
 * waking a word would deadlock the fork.) */
static void buckets_init(void) {
  buckets_make();
  pthread_atfork(NULL, NULL, buckets_make);
}

static bucket *bucket_of(const px__futex_word *word) {
  pthread_once(&buckets_once, buckets_init);
  /* Words are at least 4-byte aligned, and hot ones sit on cache lines of
   * their own: drop the low bits that never differ. */
  uintptr_t a = (uintptr_t)word >> 4;
  a ^= a >> 7;
  return &buckets[a % BUCKETS];
}

/* Sleeps on word's bucket while *word == expected, until a wake or, with
 * a deadline, until then. */
static void bucket_wait(px__futex_word *word, int expected,
                        const struct timespec *deadline) {
  bucket *b = bucket_of(word);
  pthread_mutex_lock(&b->mu);
  if (atomic_load_explicit(word, memory_order_seq_cst) == expected) {
    if (deadline != NULL)
      pthread_cond_timedwait(&b->cond, &b->mu, deadline);
    else
      pthread_cond_wait(&b->cond, &b->mu);
  }
  pthread_mutex_unlock(&b->mu);
}

void px__futex_wait(px__futex_word *word, int expected) {
  bucket_wait(word, expected, NULL);
}

void px__futex_wait_ms(px__futex_word *word, int expected, uint32_t ms) {
  struct timespec deadline = px__cond_deadline(ms);
  bucket_wait(word, expected, &deadline);
}

void px__futex_wake(px__futex_word *word, int n) {
  (void)n; /* every waiter of the bucket: some may wait for other words */
  bucket *b = bucket_of(word);
  pthread_mutex_lock(&b->mu);
  pthread_cond_broadcast(&b->cond);
  pthread_mutex_unlock(&b->mu);
}

#endif

/* ---- Descriptors ------------------------------------------------------ */

int px__fd_set_nonblock_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) return -1;
  return 0;
}

/* Closes fd keeping errno, for the error paths below. */
static int close_keep_errno(int fd) {
  int saved = errno;
  close(fd);
  errno = saved;
  return -1;
}

/* What every socket of ours gets after it is born (the fallbacks). */
static int finish_socket(int fd, bool nonblock, bool born_with_flags) {
  if (!born_with_flags) {
    int rc = nonblock ? px__fd_set_nonblock_cloexec(fd)
                      : fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (rc < 0) return close_keep_errno(fd);
  }
#if PX_HAVE_SO_NOSIGPIPE
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) < 0)
    return close_keep_errno(fd);
#endif
  return fd;
}

int px__socket(int domain, int type, int protocol) {
#if PX_HAVE_SOCK_FLAGS
  int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
#else
  /* Between socket() and fcntl() a fork+exec in another thread inherits
   * the descriptor: the race SOCK_CLOEXEC exists to close, and which
   * systems without it live with. */
  int fd = socket(domain, type, protocol);
#endif
  if (fd < 0) return -1;
  return finish_socket(fd, true, PX_HAVE_SOCK_FLAGS);
}

int px__accept(int fd, bool nonblock) {
#if PX_HAVE_ACCEPT4
  int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0));
#else
  int c = accept(fd, NULL, NULL);
#endif
  if (c < 0) return -1;
  return finish_socket(c, nonblock, PX_HAVE_ACCEPT4);
}

int px__pipe(int fds[2], bool nonblock) {
#if PX_HAVE_PIPE2
  return pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
#else
  if (pipe(fds) < 0) return -1;
  for (int i = 0; i < 2; i++) {
    int rc = nonblock ? px__fd_set_nonblock_cloexec(fds[i])
                      : fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    if (rc == 0) continue;
    int saved = errno;
    close(fds[0]);
    close(fds[1]);
    errno = saved;
    return -1;
  }
  return 0;
#endif
}

/* ---- Writes without SIGPIPE ------------------------------------------ */

/*
 * The last resort, for pipes everywhere and for sockets where neither
 * MSG_NOSIGNAL nor SO_NOSIGPIPE exists: block SIGPIPE in this thread for the
 * one call, and take a SIGPIPE it raised off the pending set before
 * unblocking. A SIGPIPE sent to the process by someone else is consumed
 * only if our call failed with EPIPE and the signal was not already blocked.
 */
static void discard_pending_sigpipe(const sigset_t *pipe_only) {
#if PX_HAVE_SIGTIMEDWAIT
  struct timespec zero = {0, 0};
  while (sigtimedwait(pipe_only, NULL, &zero) < 0 && errno == EINTR) {
  }
#else
  /* POSIX without sigtimedwait (macOS): sigwait returns at once when the
   * signal is pending, so look first. */
  sigset_t pending;
  int sig;
  if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
    (void)sigwait(pipe_only, &sig);
#endif
}

typedef struct write_args {
  int fd;
  const void *buf;
  size_t len;
  const struct sockaddr *to; /* sendto only */
  socklen_t tolen;
  int kind; /* 0 write, 1 send, 2 sendto */
} write_args;

/* A socket write never blocks, whatever the descriptor's mode (io_uring's
 * sockets are blocking: its operations need no O_NONBLOCK). */
#ifdef MSG_DONTWAIT
#define SOCKET_DONTWAIT MSG_DONTWAIT
#else
#define SOCKET_DONTWAIT 0
#endif

static ssize_t do_write(const write_args *a, int flags) {
  if (a->kind != 0) flags |= SOCKET_DONTWAIT;
#if PX_HAVE_RAW_SOCKET_IO
  /* send is sendto without an address, in the kernel as in glibc. */
  if (a->kind == 0) return syscall(SYS_write, a->fd, a->buf, a->len);
  return syscall(SYS_sendto, a->fd, a->buf, a->len, flags, a->to, a->tolen);
#else
  switch (a->kind) {
    case 1:
      return send(a->fd, a->buf, a->len, flags);
    case 2:
      return sendto(a->fd, a->buf, a->len, flags, a->to, a->tolen);
    default:
      return write(a->fd, a->buf, a->len);
  }
#endif
}

static ssize_t write_sigpipe_blocked(const write_args *a) {
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  ssize_t n = do_write(a, 0);
  int saved = errno;
  if (n < 0 && saved == EPIPE && !sigismember(&old, SIGPIPE))
    discard_pending_sigpipe(&pipe_only);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return n;
}

/* A socket write: MSG_NOSIGNAL, or SO_NOSIGPIPE set at birth (px__socket,
 * px__accept), or the signal mask. */
static ssize_t socket_write(const write_args *a) {
#if PX_HAVE_MSG_NOSIGNAL
  return do_write(a, MSG_NOSIGNAL);
#elif PX_HAVE_SO_NOSIGPIPE
  return do_write(a, 0);
#else
  return write_sigpipe_blocked(a);
#endif
}

ssize_t px__send(int fd, const void *buf, size_t len) {
  write_args a = {fd, buf, len, NULL, 0, 1};
  return socket_write(&a);
}

ssize_t px__sendto(int fd, const void *buf, size_t len,
                   const struct sockaddr *to, socklen_t tolen) {
  write_args a = {fd, buf, len, to, tolen, 2};
  return socket_write(&a);
}

ssize_t px__write(int fd, const void *buf, size_t len) {
  write_args a = {fd, buf, len, NULL, 0, 0};
  return write_sigpipe_blocked(&a);
}

/* ---- Reads ------------------------------------------------------------ */

ssize_t px__recv(int fd, void *buf, size_t len) {
#if PX_HAVE_RAW_SOCKET_IO
  return syscall(SYS_recvfrom, fd, buf, len, 0, NULL, NULL);
#else
  return recv(fd, buf, len, 0);
#endif
}

ssize_t px__read(int fd, void *buf, size_t len) {
#if PX_HAVE_RAW_SOCKET_IO
  return syscall(SYS_read, fd, buf, len);
#else
  return read(fd, buf, len);
#endif
}

/* ---- Condition variables on the monotonic clock ------------------------ */

#if PX_HAVE_CONDATTR_SETCLOCK
#define COND_CLOCK CLOCK_MONOTONIC
#else
/* Without the attribute timed waits measure the wall clock, so a clock
 * step shortens or stretches them; nothing better exists in POSIX. */
#define COND_CLOCK CLOCK_REALTIME
#endif

int px__mutex_init_adaptive(pthread_mutex_t *mu) {
#if defined(PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP) && !PX_PORTABLE
  pthread_mutexattr_t a;
  int rc = pthread_mutexattr_init(&a);
  if (rc != 0) return rc;
  rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
  if (rc == 0) rc = pthread_mutex_init(mu, &a);
  pthread_mutexattr_destroy(&a);
  return rc;
#else
  return pthread_mutex_init(mu, NULL);
#endif
}

int px__cond_init_monotonic(pthread_cond_t *cond) {
#if PX_HAVE_CONDATTR_SETCLOCK
  pthread_condattr_t ca;
  int rc = pthread_condattr_init(&ca);
  if (rc != 0) return rc;
  rc = pthread_condattr_setclock(&ca, COND_CLOCK);
  if (rc == 0) rc = pthread_cond_init(cond, &ca);
  pthread_condattr_destroy(&ca);
  return rc;
#else
  return pthread_cond_init(cond, NULL);
#endif
}

struct timespec px__cond_deadline(uint32_t ms) {
  struct timespec ts;
  clock_gettime(COND_CLOCK, &ts);
  ts.tv_sec += ms / 1000u;
  ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}
