/*
 * The slow-poll watchdog: one thread per process, while a runtime with
 * px_config.slow_poll_ms > 0 exists, that notices a task poll running that
 * long or longer, so that no poll reads a clock.
 *
 * A worker counts its task polls in its block's epoch, odd while a poll runs
 * (observe.h, px__observe_poll_begin). Every eighth of the smallest
 * threshold the watchdog looks at the epoch of each worker of each watched
 * runtime. An epoch that is odd and has not changed since a look at least a
 * threshold ago belongs to a poll that has run at least that long: the
 * watchdog marks it (slow_epoch), and the worker, as that poll ends, sees
 * the mark and gives the warning with the task's id and name. A look can
 * prove a poll long but never wrongly: a warned poll ran the threshold or
 * more. Once it has seen a poll running, the watchdog looks again exactly a
 * threshold later, so a poll is warned once it runs a threshold and an
 * eighth (and however late the OS runs the watchdog).
 *
 * Before, each poll read the coarse clock as it ended: 43 of 268
 * instructions per yield on bench/yield_many and about a tenth of its
 * yields per CPU-second (docs/OBSERVABILITY.md). Now a poll stores its
 * epoch twice and compares one word.
 *
 * An idle runtime must not keep it looking eight times a threshold: after
 * two looks in which no watched worker polled, the watchdog sleeps until a
 * poll wakes it (px__watchdog_asleep, one load per poll) or a second
 * passes. The poll path has no fence, so a poll that begins just as the
 * watchdog falls asleep may miss the wake; the second bounds that. When
 * every watched worker is parked (px__counters.waiting), it sleeps without
 * that second: a worker stops waiting before it polls again, and that
 * step, once per park, is ordered against the announcement of the sleep
 * (px__observe_parked). An idle server then wakes nobody, as tokio's
 * does; a runtime whose thread is away from it (between two block_on
 * calls) still costs a look a second.
 */
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <string.h>

#include "observe/observe.h"

/* On a line of its own: every poll reads it, nothing writes it while the
 * watchdog works. */
alignas(PX__CACHE_LINE) int px__watchdog_asleep;
/* The looks so far (the thread's own, read by tests): what an idle runtime
 * costs is how often this grows. */
uint64_t px__watchdog_looks;

/*
 * The thread runs while a watched runtime exists: the first watch starts
 * it, the last unwatch stops and joins it, so a process with no runtime has
 * no thread of pollux's (a fork then is a fork of a single-threaded
 * process, as before the watchdog). g_life orders those starts and stops
 * (runtime creation and free, never a poll); g_lock guards the list and
 * the thread's sleep.
 */
static pthread_mutex_t g_life = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
/* The thread sleeps on this word, outside g_lock: 1 once someone (a watch,
 * a poll, stop) wants it awake. A futex wait and nothing else, one system
 * call per look: a condition variable's timed wait also woke g_lock's
 * futex on the way out, two calls per look, 160 a second while a server
 * was busy (strace counted them against its requests). */
static px__futex_word g_bell;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static px__observe *g_watched; /* the runtimes with slow_poll_ms > 0 */
static bool g_started;         /* the thread runs (g_life) */
static bool g_quit;            /* the thread is to return (g_lock) */
static bool g_exiting;         /* the process exits: start no thread */
static pthread_t g_thread;

#define SLEEP_MS 1000u /* the longest sleep while a runtime is watched */

/* The interval between looks: an eighth of the smallest threshold. */
static uint64_t tick_ns(void) {
  uint64_t least = UINT64_MAX;
  for (px__observe *o = g_watched; o != NULL; o = o->wd_next)
    if (o->slow_poll_ns < least) least = o->slow_poll_ns;
  return least / 8u;
}

/* One look at every watched worker (g_lock held). Returns whether any of
 * them polled since the last look or is polling now, and lowers *next to
 * the time until a running poll, not yet marked, reaches its threshold. */
static bool look(uint64_t *next) {
  uint64_t now = px__now_ns();
  __atomic_store_n(&px__watchdog_looks,
                   __atomic_load_n(&px__watchdog_looks, __ATOMIC_RELAXED) + 1,
                   __ATOMIC_RELAXED);
  bool busy = false;
  for (px__observe *o = g_watched; o != NULL; o = o->wd_next) {
    for (uint32_t i = 0; i < o->nworkers; i++) {
      px__counters *b = &o->workers[i];
      uint64_t e = __atomic_load_n(&b->epoch, __ATOMIC_RELAXED);
      if (e != b->wd_epoch) {
        /* Polled since the last look; a poll running now began before
         * `now`, so timing it from here can only make it shorter. */
        b->wd_epoch = e;
        b->wd_since = now;
        busy = true;
      }
      /* Between polls, or a poll already marked: nothing to time. */
      if (!(e & 1u) || __atomic_load_n(&b->slow_epoch, __ATOMIC_RELAXED) == e)
        continue;
      busy = true;
      uint64_t ran = now - b->wd_since;
      if (ran >= o->slow_poll_ns) {
        __atomic_store_n(&b->slow_since, b->wd_since, __ATOMIC_RELAXED);
        __atomic_store_n(&b->slow_epoch, e, __ATOMIC_RELEASE);
      } else if (o->slow_poll_ns - ran < *next) {
        *next = o->slow_poll_ns - ran;
      }
    }
  }
  return busy;
}

/* Whether every worker of every watched runtime waits (g_lock held, the
 * sleep announced). Sequentially consistent loads after the announcement's
 * sequentially consistent store: with the worker's own pair of such
 * operations (start_polling in observe.c), either this sees its
 * waiting = 0 or it sees px__watchdog_asleep and wakes the thread. */
static bool all_waiting(void) {
  for (px__observe *o = g_watched; o != NULL; o = o->wd_next)
    for (uint32_t i = 0; i < o->nworkers; i++)
      if (!__atomic_load_n(&o->workers[i].waiting, __ATOMIC_SEQ_CST))
        return false;
  return true;
}

/* Wakes the thread (its sleep in sleep_unlocked, or the next one). */
static void ring(void) {
  atomic_store(&g_bell, 1);
  px__futex_wake(&g_bell, 1);
}

/* Sleeps for at most `ms` (0: until rung) with g_lock released. The bell
 * is cleared under the lock, so a ring after the caller's last look, made
 * with or without the lock, ends this sleep. */
static void sleep_unlocked(uint32_t ms) {
  atomic_store(&g_bell, 0);
  pthread_mutex_unlock(&g_lock);
  if (ms == 0)
    px__futex_wait(&g_bell, 0);
  else
    px__futex_wait_ms(&g_bell, 0, ms);
  pthread_mutex_lock(&g_lock);
}

static void *watchdog_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&g_lock);
  int idle_looks = 0;
  while (!g_quit) {
    if (g_watched == NULL) {
      idle_looks = 0;
      sleep_unlocked(0);
      continue;
    }
    uint64_t next = tick_ns();
    idle_looks = look(&next) ? 0 : idle_looks + 1;
    bool for_good = false;
    if (idle_looks >= 2) {
      /* Announce the sleep, then look once more: a poll that began before
       * the announcement became visible is seen here (up to the race the
       * file's comment names). */
      __atomic_store_n(&px__watchdog_asleep, 1, __ATOMIC_SEQ_CST);
      if (look(&next)) {
        __atomic_store_n(&px__watchdog_asleep, 0, __ATOMIC_RELAXED);
        idle_looks = 0;
      } else {
        next = (uint64_t)SLEEP_MS * 1000000u;
        for_good = all_waiting();
      }
    }
    /* Whole milliseconds, rounded up so as never to look early. */
    uint64_t ms = (next + 999999u) / 1000000u;
    if (ms > SLEEP_MS) ms = SLEEP_MS;
    sleep_unlocked(for_good ? 0u : ms < 1u ? 1u : (uint32_t)ms);
    __atomic_store_n(&px__watchdog_asleep, 0, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock(&g_lock);
  return NULL;
}

/* Stops and joins the thread (g_life held, the thread started). */
static void stop(void) {
  pthread_mutex_lock(&g_lock);
  g_quit = true;
  ring();
  pthread_mutex_unlock(&g_lock);
  pthread_join(g_thread, NULL);
  g_quit = false;
  g_started = false;
}

/* At exit a thread still running (a runtime never freed) is stopped and
 * joined, as process/reaper.c does: leak checkers report a running
 * thread's memory. */
static void __attribute__((destructor)) stop_at_exit(void) {
  pthread_mutex_lock(&g_life);
  g_exiting = true;
  if (g_started) stop();
  pthread_mutex_unlock(&g_life);
}

/* fork: the child has no watchdog thread, yet a copy of the locks and of
 * the bell. Taking both locks across the fork gives the child locks no
 * thread is inside; the bell starts silent; the child's next watched
 * runtime starts a thread. */
static void before_fork(void) {
  pthread_mutex_lock(&g_life);
  pthread_mutex_lock(&g_lock);
}
static void after_fork_parent(void) {
  pthread_mutex_unlock(&g_lock);
  pthread_mutex_unlock(&g_life);
}
static void after_fork_child(void) {
  g_started = false;
  g_quit = false;
  __atomic_store_n(&px__watchdog_asleep, 0, __ATOMIC_RELAXED);
  atomic_store(&g_bell, 0);
  pthread_mutex_unlock(&g_lock);
  pthread_mutex_unlock(&g_life);
}

static int g_init_rc;
static void init_once(void) {
  g_init_rc = pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* Starts the thread (g_life held): no signals (a program's handlers run on
 * its own threads), a small stack. */
static int start(void) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = pthread_create(&g_thread, &attr, watchdog_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) return rc;
#if defined(__linux__)
  pthread_setname_np(g_thread, "px-watchdog");
#endif
  g_started = true;
  return 0;
}

int px__watchdog_watch(px__observe *obs) {
  pthread_once(&g_once, init_once);
  if (g_init_rc != 0) return px_err_from_errno(g_init_rc);
  pthread_mutex_lock(&g_life);
  int rc = g_started || g_exiting ? 0 : start();
  if (rc == 0) {
    pthread_mutex_lock(&g_lock);
    obs->wd_next = g_watched;
    g_watched = obs;
    /* A sleeping watchdog learns of the runtime and its threshold now. */
    __atomic_store_n(&px__watchdog_asleep, 0, __ATOMIC_RELAXED);
    ring();
    pthread_mutex_unlock(&g_lock);
  }
  pthread_mutex_unlock(&g_life);
  if (rc != 0) {
    PX__LOG(PX__LOG_ERROR, "cannot start the slow-poll watchdog thread: %s",
            strerror(rc));
    return px_err_from_errno(rc);
  }
  return 0;
}

void px__watchdog_unwatch(px__observe *obs) {
  pthread_mutex_lock(&g_life);
  pthread_mutex_lock(&g_lock);
  for (px__observe **at = &g_watched; *at != NULL; at = &(*at)->wd_next) {
    if (*at == obs) {
      *at = obs->wd_next;
      break;
    }
  }
  bool last = g_watched == NULL;
  pthread_mutex_unlock(&g_lock);
  if (last && g_started) stop();
  pthread_mutex_unlock(&g_life);
}

void px__watchdog_wake(void) {
  pthread_mutex_lock(&g_lock);
  if (__atomic_load_n(&px__watchdog_asleep, __ATOMIC_RELAXED)) {
    __atomic_store_n(&px__watchdog_asleep, 0, __ATOMIC_RELAXED);
    ring();
  }
  pthread_mutex_unlock(&g_lock);
}
