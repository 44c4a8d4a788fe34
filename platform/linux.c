/*
 * Linux-only parts of the platform layer (platform.h): the futex. Built on
 * every system; empty where PX_HAVE_FUTEX is 0, and posix.c then provides
 * the fallback.
 */
#include "platform/platform.h"

#if PX_HAVE_FUTEX

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* PRIVATE: the word is never shared with another process, which lets the
 * kernel skip the lookup of the page's mapping. */
void px__futex_wait(px__futex_word *word, int expected) {
  /* The kernel compares *word with expected under its bucket lock: EAGAIN
   * when they differ, so a wake between the caller's check and this call is
   * never lost. EINTR and EAGAIN are spurious returns, which the contract
   * allows. */
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

void px__futex_wait_ms(px__futex_word *word, int expected, uint32_t ms) {
  /* FUTEX_WAIT's timeout is relative (on the monotonic clock). */
  struct timespec rel = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, &rel, NULL, 0);
}

void px__futex_wake(px__futex_word *word, int n) {
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

#else
/* ISO C forbids an empty translation unit. */
typedef int px__platform_linux_unused;
#endif
