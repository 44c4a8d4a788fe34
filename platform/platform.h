/*
 * The platform layer (internal): every call pollux makes that is not plain
 * POSIX goes through here, with a POSIX fallback beside it. libuv's
 * src/unix/internal.h is the model: one header of feature macros and small
 * wrappers, and one file per system for what has no portable equivalent
 * (linux.c: the futex; posix.c: everything else, and the fallbacks).
 *
 * What is here and why each call is not portable:
 *   - px__futex_wait/px__futex_wake: wait on a 32-bit word (Linux futex;
 *     elsewhere a table of condition variables hashed by address);
 *   - px__socket, px__accept, px__pipe: descriptors born non-blocking and
 *     close-on-exec (SOCK_NONBLOCK/SOCK_CLOEXEC, accept4, pipe2; elsewhere
 *     fcntl right after the call);
 *   - px__send, px__sendto, px__write: writes that never raise SIGPIPE
 *     (MSG_NOSIGNAL; SO_NOSIGPIPE set at birth on macOS and the BSDs;
 *     elsewhere SIGPIPE blocked in the calling thread for the call);
 *   - px__recv, px__read and the socket writes above: on Linux straight to
 *     the kernel (PX_HAVE_RAW_SOCKET_IO), without glibc's cancellation
 *     point around each call;
 *   - PX_HAVE_EVENTFD, PX_HAVE_SIGNALFD: Linux descriptors whose users
 *     (reactors/core.c, reactors/signal.c) fall back to a self-pipe;
 *   - PX__CLOCK_COARSE: a cheap clock of millisecond resolution;
 *   - px__mutex_init_adaptive: a mutex that spins before it sleeps, where
 *     the system has one (glibc);
 *   - px__cond_init_monotonic, px__cond_deadline: condition-variable waits
 *     measured on the monotonic clock where the system allows it.
 *
 * Backends are not here: epoll and io_uring are Linux-only on purpose, and
 * kqueue is the BSDs' and macOS's; a build picks one.
 *
 * PX_PORTABLE=1 (--config=portable in .bazelrc) turns every PX_HAVE_* off, so
 * the fallbacks are built and tested on Linux, where the matrix runs. The
 * fd-returning functions keep the system calls' contract (-1 and errno),
 * so the layer needs nothing from the rest of pollux.
 */
#ifndef POLLUX_PLATFORM_PLATFORM_H
#define POLLUX_PLATFORM_PLATFORM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

/* ---- What this system has ------------------------------------------- */

#if defined(__linux__) && !PX_PORTABLE
#define PX_HAVE_FUTEX 1
#define PX_HAVE_EVENTFD 1
#define PX_HAVE_SIGNALFD 1
#define PX_HAVE_PIPE2 1
#define PX_HAVE_ACCEPT4 1
#define PX_HAVE_SOCK_FLAGS 1 /* SOCK_NONBLOCK | SOCK_CLOEXEC in socket() */
#define PX_HAVE_MSG_NOSIGNAL 1
#define PX_HAVE_SIGTIMEDWAIT 1
#define PX_HAVE_CONDATTR_SETCLOCK 1
#define PX_HAVE_RAW_SOCKET_IO 1
#elif defined(__FreeBSD__) && !PX_PORTABLE
/* FreeBSD 10+ has the BSD-socket extensions Linux introduced. */
#define PX_HAVE_PIPE2 1
#define PX_HAVE_ACCEPT4 1
#define PX_HAVE_SOCK_FLAGS 1
#define PX_HAVE_MSG_NOSIGNAL 1
#define PX_HAVE_SIGTIMEDWAIT 1
#define PX_HAVE_CONDATTR_SETCLOCK 1
#elif !defined(__APPLE__) && !PX_PORTABLE
/* Other POSIX systems (NetBSD, OpenBSD, ...): the POSIX 2008 clock
 * attribute of condition variables. macOS lacks it. */
#define PX_HAVE_CONDATTR_SETCLOCK 1
#endif

#ifndef PX_HAVE_FUTEX
#define PX_HAVE_FUTEX 0
#endif
#ifndef PX_HAVE_EVENTFD
#define PX_HAVE_EVENTFD 0
#endif
#ifndef PX_HAVE_SIGNALFD
#define PX_HAVE_SIGNALFD 0
#endif
#ifndef PX_HAVE_PIPE2
#define PX_HAVE_PIPE2 0
#endif
#ifndef PX_HAVE_ACCEPT4
#define PX_HAVE_ACCEPT4 0
#endif
#ifndef PX_HAVE_SOCK_FLAGS
#define PX_HAVE_SOCK_FLAGS 0
#endif
#ifndef PX_HAVE_MSG_NOSIGNAL
#define PX_HAVE_MSG_NOSIGNAL 0
#endif
#ifndef PX_HAVE_SIGTIMEDWAIT
#define PX_HAVE_SIGTIMEDWAIT 0
#endif
#ifndef PX_HAVE_CONDATTR_SETCLOCK
#define PX_HAVE_CONDATTR_SETCLOCK 0
#endif

/* Sanitizers learn of a transfer through their wrappers of the libc calls
 * (ThreadSanitizer orders a send before the recv that sees its bytes; the
 * address sanitizer checks the buffers), so a sanitized build keeps them. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PX__SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PX__SANITIZED 1
#endif
#endif
#if !defined(PX_HAVE_RAW_SOCKET_IO) || defined(PX__SANITIZED)
#undef PX_HAVE_RAW_SOCKET_IO
#define PX_HAVE_RAW_SOCKET_IO 0
#endif

/* PX__ON_VALGRIND: whether the program runs under valgrind, through
 * valgrind's client request where its header is (a few instructions, no
 * system call), else never. The io_uring reactor steps aside under it. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define PX__ON_VALGRIND (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef PX__ON_VALGRIND
#define PX__ON_VALGRIND 0
#endif

/* SO_NOSIGPIPE (macOS, the BSDs): a socket option that does what
 * MSG_NOSIGNAL does per call. Linux has no such option, so a portable build
 * on Linux exercises the last resort, blocking SIGPIPE around the call. */
#if !PX_HAVE_MSG_NOSIGNAL && defined(SO_NOSIGPIPE)
#define PX_HAVE_SO_NOSIGPIPE 1
#else
#define PX_HAVE_SO_NOSIGPIPE 0
#endif

/* The word px__futex_wait sleeps on: C11's atomic_int, or C++'s
 * std::atomic<int> (same size and representation) for the C++ tests. */
#ifdef __cplusplus
#include <atomic>
typedef std::atomic<int> px__futex_word;
#else
#include <stdatomic.h>
typedef atomic_int px__futex_word;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Clocks ----------------------------------------------------------- */

/* A monotonic clock that may be read without a system call and need only
 * be accurate to a few milliseconds (slow-poll thresholds). */
#if defined(CLOCK_MONOTONIC_COARSE) && !PX_PORTABLE
#define PX__CLOCK_COARSE CLOCK_MONOTONIC_COARSE /* Linux */
#elif defined(CLOCK_MONOTONIC_FAST) && !PX_PORTABLE
#define PX__CLOCK_COARSE CLOCK_MONOTONIC_FAST /* FreeBSD */
#else
#define PX__CLOCK_COARSE CLOCK_MONOTONIC
#endif

/* PX__CLOCK_COARSE in nanoseconds. */
static inline uint64_t px__clock_coarse_ns(void) {
  struct timespec ts;
  clock_gettime(PX__CLOCK_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- Waiting on a word (the futex) ------------------------------------ */

/*
 * Blocks while *word == expected, until px__futex_wake is called on word.
 * The compare and the sleep are one atomic step with respect to a wake, so
 * a caller that changes the word and then wakes never loses the wake-up.
 * May return spuriously (a signal, a wake meant for another word that
 * shares the fallback's bucket): callers loop on their own condition.
 */
void px__futex_wait(px__futex_word *word, int expected);

/* px__futex_wait for at most `ms` milliseconds. A return says nothing
 * about why (a wake, the time, a spurious return): callers look at the
 * word, as after any wait. */
void px__futex_wait_ms(px__futex_word *word, int expected, uint32_t ms);

/* Wakes up to `n` threads blocked in px__futex_wait on word (INT_MAX: all).
 * Call it after changing the word. */
void px__futex_wake(px__futex_word *word, int n);

/* ---- Descriptors born non-blocking and close-on-exec ------------------ */

/* fcntl's way: O_NONBLOCK and FD_CLOEXEC on fd. 0, or -1 with errno. */
int px__fd_set_nonblock_cloexec(int fd);

/*
 * socket(2) for a non-blocking, close-on-exec socket that never raises
 * SIGPIPE where the system has an option for that. -1 with errno.
 */
int px__socket(int domain, int type, int protocol);

/*
 * accept(2) of a close-on-exec socket, non-blocking when `nonblock`
 * (accept4 where it exists). -1 with errno.
 */
int px__accept(int fd, bool nonblock);

/* pipe(2) with both ends close-on-exec, and non-blocking when `nonblock`.
 * 0, or -1 with errno (nothing left open). */
int px__pipe(int fds[2], bool nonblock);

/* ---- Writes that never raise SIGPIPE ---------------------------------- */

/* send(2) on a socket; a closed peer is EPIPE, never a signal, and a full
 * buffer EAGAIN, never a wait (MSG_DONTWAIT, where the system has it). */
ssize_t px__send(int fd, const void *buf, size_t len);

/* sendto(2), the same way. */
ssize_t px__sendto(int fd, const void *buf, size_t len,
                   const struct sockaddr *to, socklen_t tolen);

/* write(2) on any descriptor (a pipe has no MSG_NOSIGNAL): SIGPIPE is
 * blocked in this thread for the call and one it raised is discarded. */
ssize_t px__write(int fd, const void *buf, size_t len);

/* ---- Reads ------------------------------------------------------------ */

/*
 * recv(2) with no flags, and read(2). Why not libc's: glibc makes every
 * call that may block a cancellation point, and once a process has a
 * second thread (pollux's slow-poll watchdog is one, even under the
 * single-threaded executors) it wraps each such call in two atomic
 * updates of the thread's cancellation state, about 65 instructions and 4
 * locked instructions per HTTP request (recv and send; callgrind, bench
 * http_min). pollux's descriptors never block, and no pollux thread is
 * ever cancelled, so on Linux these, and the socket writes above, enter
 * the kernel through syscall(2) as a single-threaded process's calls do.
 */
ssize_t px__recv(int fd, void *buf, size_t len);
ssize_t px__read(int fd, void *buf, size_t len);

/* ---- Mutexes ---------------------------------------------------------- */

/* pthread_mutex_init of a mutex that spins a little before it sleeps
 * (glibc's adaptive mutex, as Rust's std Mutex spins before its futex
 * wait), for locks held for a few instructions by threads that run at
 * once: sleeping on such a lock costs two context switches. A plain mutex
 * where the system has no adaptive kind. */
int px__mutex_init_adaptive(pthread_mutex_t *mu);

/* ---- Condition variables on the monotonic clock ------------------------ */

/* pthread_cond_init of a condition variable whose timed waits use the
 * clock px__cond_deadline measures with. */
int px__cond_init_monotonic(pthread_cond_t *cond);

/* The absolute deadline `ms` milliseconds from now, for pthread_cond_timedwait
 * on a condition variable made by px__cond_init_monotonic (monotonic where
 * the system allows the attribute, the wall clock elsewhere). */
struct timespec px__cond_deadline(uint32_t ms);

#ifdef __cplusplus
}
#endif

#endif
