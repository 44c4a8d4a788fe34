/*
 * The reactor core (internal): what every backend would otherwise repeat.
 *
 * A backend keeps only what is specific to its system call. The core owns
 * the entry points of reactor.h (arguments checked once, there), the
 * descriptor -> registration table and its mutex (PX__REACTOR_FD_TABLE),
 * the deferred free of closed registrations (PX__REACTOR_DEFER_FREE), the
 * wake-up descriptor, the timeout conversion and the poll(2) bit
 * translation, so a fix to (say) the way a wake-up is drained reaches every
 * backend at once.
 */
#ifndef POLLUX_REACTORS_CORE_H
#define POLLUX_REACTORS_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#include "reactors/reactor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Wake-up descriptors ------------------------------------------- */

/*
 * A descriptor that makes a blocked wait return when written: a pipe
 * (rd, wr) or an eventfd (rd == wr). The backend watches rd for reading;
 * -1 means not open.
 */
typedef struct px__wakeup_fd {
  int rd;
  int wr;
} px__wakeup_fd;

typedef enum px__wakeup_fd_kind {
  PX__WAKEUP_FD_NONE,    /* the backend wakes itself some other way */
  PX__WAKEUP_FD_PIPE,    /* a self-pipe: POSIX, for the portable backends */
  PX__WAKEUP_FD_EVENTFD, /* an eventfd (PX_HAVE_EVENTFD), else a self-pipe */
} px__wakeup_fd_kind;

/* Opens w as `kind`, non-blocking and close-on-exec; 0 or a PX_E* code. */
int px__wakeup_fd_open(px__wakeup_fd *w, px__wakeup_fd_kind kind);

/* Closes what px__wakeup_fd_open opened (nothing when w holds -1). */
void px__wakeup_fd_close(px__wakeup_fd *w);

/* Makes rd readable. Any thread; a full pipe or counter is not an error. */
int px__wakeup_fd_signal(const px__wakeup_fd *w);

/* Empties rd, so that a level-triggered watch of it stops reporting. */
void px__wakeup_fd_drain(const px__wakeup_fd *w);

/* ---- Descriptor tables ---------------------------------------------- */

/*
 * An array indexed by descriptor, of elements of one size, grown (doubling)
 * to cover a descriptor on demand; new elements are zero bytes. A zeroed
 * px__fd_table is an empty one.
 */
typedef struct px__fd_table {
  unsigned char *slots;
  size_t cap; /* elements */
  size_t elem_size;
} px__fd_table;

/*
 * Gives t room for the first descriptors up front, so that a program with
 * a few sockets allocates nothing per registration after start-up.
 * Returns 0 or PX_ENOMEM.
 */
int px__fd_table_init(px__fd_table *t, size_t elem_size);

void px__fd_table_free(px__fd_table *t);

/* fd's element, or NULL when fd is negative or beyond the table. */
void *px__fd_table_at(const px__fd_table *t, int fd);

/*
 * fd's element, growing the table to cover fd first; NULL when fd is
 * negative or memory ran out (the table is then unchanged). Elements move
 * when the table grows: pointers from earlier calls are stale after it.
 */
void *px__fd_table_slot(px__fd_table *t, int fd);

/* ---- The reactor core ----------------------------------------------- */

typedef px__io *px__io_ptr; /* for px__atomic, which takes one token */

/*
 * The first member of every struct px__reactor made by px__reactor_new:
 * what the core keeps for every backend. Being first is what lets the entry
 * points (reactor.h) reach it from the opaque px__reactor pointer; each
 * backend asserts it.
 */
typedef struct px__reactor_core {
  const px__reactor_ops *ops;
  /* Guards the table, and the backend's own state where it has any. */
  pthread_mutex_t mu;
  px__wakeup_fd wakeup_fd;
  /* Level-triggered backends: a poller is blocked on a copy of what it
   * watches (see px__reactor_unlock). Guarded by mu. */
  bool polling;
  /* PX__REACTOR_FD_TABLE: descriptor -> {px__io *, ops->slot_size bytes}.
   * Guarded by mu. */
  px__fd_table table;
  /* PX__REACTOR_DEFER_FREE: registrations closed since the last poll
   * began, a lock-free stack (pushed by any thread, taken whole by the
   * poller). */
  px__atomic(px__io_ptr) retired;
  /* Every px__io registered now (px__io.registered nodes), for
   * px__reactor_detach_all. Guarded by mu, and changed in the same critical
   * section as the table: px__io_register holds the px__io's lock while it
   * adds, and a poller holds mu while it dispatches (taking px__io locks),
   * so nothing may take mu under a px__io lock once the poller can see that
   * px__io. Inserting before mu is released, in px__reactor_add, keeps the
   * order (for epoll, whose poller never takes mu, the insert takes it
   * alone). */
  px__list registered;
  /* Completion-style operations in flight (px__op.link), for destroy to
   * cancel and wait for. Guarded by mu. */
  px__list inflight;
  /* Buffers of PX__OP_MIN_BUF bytes that no operation holds now: a send
   * or a one-shot receive takes one while its bytes wait in it
   * (completion.c, which alone knows their layout). Guarded by mu; freed
   * with the reactor (px__op_spares_free). */
  void *spare_bufs;
  unsigned nspare;
} px__reactor_core;

/* The smallest buffer of a completion-style read or write, and the size of
 * the spare buffers above. */
#define PX__OP_MIN_BUF 4096u

/*
 * Allocates a zeroed reactor of `size` bytes (a struct px__reactor whose
 * first member is a px__reactor_core), with its mutex initialized and a
 * wake-up descriptor of `kind` open. NULL with *err set on failure. For a
 * backend's create.
 */
px__reactor *px__reactor_new(size_t size, px__wakeup_fd_kind kind, int *err);

/* Frees the spare buffers (completion.c); px__reactor_free calls it. */
void px__op_spares_free(px__reactor *r);

/* Undoes px__reactor_new, after the backend has released its own parts;
 * frees the table and what is still retired. For a backend's destroy. */
void px__reactor_free(px__reactor *r, size_t size);

/* r's core. */
static inline px__reactor_core *px__reactor_core_of(px__reactor *r) {
  return (px__reactor_core *)(void *)r;
}

/*
 * PX__REACTOR_FD_TABLE, with the core's mutex held: the backend's slot for
 * descriptor `fd` if `io` is the registration under it, else NULL. The one
 * identity check ("is this io still registered under this fd") every
 * poller makes before it dispatches an event it copied out of the kernel;
 * it never reads *io, which may be a registration freed since.
 */
static inline void *px__reactor_lookup(px__reactor *r, uintptr_t fd,
                                       const px__io *io);

/*
 * PX__REACTOR_FD_TABLE, with the core's mutex held: the registration under
 * `fd` (NULL when none) and, in *slot, the backend's slot for it. For
 * backends whose events name only a descriptor, and for scans.
 */
static inline px__io *px__reactor_at(px__reactor *r, int fd, void **slot);

/* PX__REACTOR_FD_TABLE: one past the highest descriptor the table covers. */
int px__reactor_table_end(px__reactor *r);

/* A table element: the registration, then the backend's slot. (Inline
 * above: the poller looks up every event it dispatches.) */
typedef struct px__reactor_entry {
  px__io *io;
  unsigned char slot[]; /* pointer-aligned: it follows a pointer */
} px__reactor_entry;

static inline void *px__reactor_lookup(px__reactor *r, uintptr_t fd,
                                       const px__io *io) {
  const px__fd_table *t = &px__reactor_core_of(r)->table;
  if (fd >= t->cap || io == NULL) return NULL;
  px__reactor_entry *e =
      (px__reactor_entry *)(void *)(t->slots + (size_t)fd * t->elem_size);
  return e->io == io ? e->slot : NULL;
}

static inline px__io *px__reactor_at(px__reactor *r, int fd, void **slot) {
  const px__fd_table *t = &px__reactor_core_of(r)->table;
  if (fd < 0 || (size_t)fd >= t->cap) return NULL;
  px__reactor_entry *e =
      (px__reactor_entry *)(void *)(t->slots + (size_t)fd * t->elem_size);
  if (e->io != NULL && slot != NULL) *slot = e->slot;
  return e->io;
}

/*
 * Unlocks c->mu after a level-triggered backend changed what it watches.
 * A poller blocked in another thread waits on what it copied before the
 * change; when `repoll` is set (the change widened the watched set, or
 * removed a descriptor about to be closed: px__reactor_del) that poller is
 * woken so it copies again. A merely narrower set needs nothing: the poller
 * drops stale answers when it dispatches.
 */
void px__reactor_unlock(px__reactor_core *c, bool repoll);

/* ---- Registration (called by readiness.c, after its checks) ---------- */

/* ops->add, under the core's table and mutex for a backend with one; sets
 * io->interest. */
int px__reactor_add(px__reactor *r, px__io *io, unsigned interest);

/* ops->modify when `interest` differs from io->interest. */
int px__reactor_modify(px__reactor *r, px__io *io, unsigned interest);

/* ops->del, and io's table entry cleared. */
void px__reactor_del(px__reactor *r, px__io *io);

/* The first registration still on r's list, or NULL (detach_all). */
px__io *px__reactor_first_registered(px__reactor *r);

/* ---- Timeouts ------------------------------------------------------- */

/*
 * The one conversion of a poll timeout in milliseconds (-1: forever) into
 * the structs system calls take: *ts filled and returned, or NULL for
 * forever. px__timeout_timeval is the same for select and libevent.
 */
struct timespec *px__timeout_timespec(int timeout_ms, struct timespec *ts);
struct timeval *px__timeout_timeval(int timeout_ms, struct timeval *tv);

/* ---- Readiness bits ------------------------------------------------- */

/*
 * Translates poll(2)'s revents, which an io_uring poll request also
 * returns, into px__io bits (PX__READABLE, ...).
 */
unsigned px__ready_from_poll(int revents);

#ifdef __cplusplus
}
#endif

#endif
