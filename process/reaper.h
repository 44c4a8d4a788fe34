/*
 * Reaping child processes without races (internal).
 *
 * Exactly one party may call waitpid for a pid, exactly once: a second
 * call after the first reaped it could reap an unrelated child that was
 * given the same pid. So every waitpid of this library happens under one
 * process-wide lock, on a px__proc record that remembers the status once
 * reaped; px_child_kill signals under the same lock, so it never signals a
 * reused pid either. Only our own pids are waited for (waitpid(pid,
 * WNOHANG), never waitpid(-1)), which leaves other code's children alone.
 *
 * Who notices an exit:
 *   - pidfd path (Linux): the child's wait future, through the reactor
 *     (the pidfd turns readable at exit);
 *   - SIGCHLD path (portable): a handler writes to a self-pipe, a reaper
 *     thread wakes, waitpid(WNOHANG)s each listed pid and wakes the waits;
 *   - children whose handle was closed while they ran (orphans): the same
 *     reaper thread, through the orphan's pidfd or SIGCHLD.
 * The reaper thread starts on first need, and never blocks in waitpid.
 */
#ifndef POLLUX_PROCESS_REAPER_H
#define POLLUX_PROCESS_REAPER_H

#include <stdbool.h>
#include <sys/types.h>

#include "pollux/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One child, shared by its handle and the reaper thread; allocated with
 * malloc, not px__alloc, because an orphan outlives its handle (and the
 * test that made it). Fields are guarded by the reaper lock.
 */
typedef struct px__proc {
  pid_t pid;
  int pidfd;      /* the reaper's own pidfd (orphans only), or -1 */
  bool reaped;    /* waitpid returned our status, or ECHILD */
  int status;     /* the raw wait status once reaped */
  int err;        /* PX_ECHILD when something else reaped it */
  bool listed;    /* in the reaper thread's list */
  bool orphan;    /* no handle any more: the reaper frees it once reaped */
  px_waker waker; /* SIGCHLD path: the pending wait's waker */
  struct px__proc *next;
} px__proc;

void px__reaper_lock(void);
void px__reaper_unlock(void);

/* Reaps p if it has exited (WNOHANG); true when p is reaped. Locked. */
bool px__proc_reap_locked(px__proc *p);

/*
 * Starts the reaper thread if needed, and with `sigchld` the SIGCHLD
 * handler too (before a SIGCHLD-path child is spawned, so that no exit
 * goes unnoticed). 0 or a PX_E* code.
 */
int px__reaper_start(bool sigchld);

/*
 * Hands p to the reaper thread: it will be reaped (and its waker woken)
 * when its pidfd turns readable or SIGCHLD arrives. Locked.
 */
void px__reaper_add_locked(px__proc *p);

/* Takes p off the reaper's list if it is there. Locked. */
void px__reaper_remove_locked(px__proc *p);

/* Frees p (closing its pidfd). p must not be listed. */
void px__proc_free(px__proc *p);

/* The status as px_child_wait reports it: exit code, or -signal. */
long long px__proc_status(const px__proc *p);

#ifdef __cplusplus
}
#endif

#endif
