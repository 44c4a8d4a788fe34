/*
 * What the reactor backends share besides px__io (internal).
 *
 * Each backend is one file behind one ops table, but several of them keep
 * the same bookkeeping around their system interface: a mutex and a wake-up
 * descriptor in the reactor, and a table indexed by descriptor that says
 * which registration owns it. Those live here, once, so a fix to (say) the
 * way a wake-up is drained reaches every backend that uses one.
 */
#ifndef POLLUX_REACTORS_CORE_H
#define POLLUX_REACTORS_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

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

/* ---- The reactor core ----------------------------------------------- */

/*
 * The first member of every struct px__reactor made by px__reactor_new:
 * the mutex that guards the backend's table and its wake-up descriptor.
 * Being first is what lets px__reactor_wakeup and px__reactor_free reach
 * it from the opaque px__reactor pointer; each backend asserts it.
 */
typedef struct px__reactor_core {
  pthread_mutex_t mu;
  px__wakeup_fd wakeup_fd;
  /* Level-triggered backends: a poller is blocked on a copy of the table
   * (see px__reactor_unlock). Guarded by mu. */
  bool polling;
  /* Registrations closed since the last poll began (px__reactor_retire).
   * Guarded by mu. */
  px__io *retired;
  /* Every px__io registered now (px__io.registered nodes), for
   * px__reactor_detach_all. Guarded by list_mu, not mu: px__io_register
   * and _deregister update it while holding the px__io's own lock, and
   * io_uring's poll holds mu while it dispatches (taking px__io locks), so
   * taking mu there would invert the lock order and deadlock (seen as a
   * hang of tcp_test under --config=ws --config=io_uring). */
  pthread_mutex_t list_mu;
  px__list registered;
} px__reactor_core;

/*
 * Allocates a zeroed reactor of `size` bytes (a struct px__reactor whose
 * first member is a px__reactor_core), with its mutex initialized and a
 * wake-up descriptor of `kind` open. NULL with *err set on failure.
 */
px__reactor *px__reactor_new(size_t size, px__wakeup_fd_kind kind, int *err);

/* Undoes px__reactor_new, after the backend has released its own parts;
 * frees what is still retired. */
void px__reactor_free(px__reactor *r, size_t size);

/*
 * Deferred frees, an ops->retire for any backend whose events name
 * registrations: by pointer (epoll's data.ptr, kqueue's udata), or by a
 * descriptor whose table entry the poller compares with the pointer it
 * copied before waiting (poll, kqueue). (select's answers carry only the
 * two directions, for which a spurious readiness is harmless: the
 * future's syscall says EAGAIN. A hang-up is not: it stays.)
 *
 * A pointer compare alone cannot tell a closed registration from a new one
 * that was given the same memory, and the allocator's per-thread cache
 * (api/alloc.c) hands the block freed last to the next allocation of its
 * size: close a socket on one worker, accept on the same worker, and the
 * new registration has the old one's address and, being the lowest free
 * number, its descriptor too. A poller still holding an event of the old
 * socket (its hang-up, say) would deliver it to the new one. So closed
 * registrations wait on a list, and px__reactor_free_retired, called when
 * the next poll begins, frees them: polls never overlap, so by then no
 * batch of events can name them, and until then their memory is nobody
 * else's.
 */
void px__reactor_retire(px__reactor *r, px__io *io);

/* Frees the registrations retired so far; each poll calls it first. */
void px__reactor_free_retired(px__reactor *r);

/* An ops->wakeup for backends woken through the core's descriptor. */
int px__reactor_wakeup(px__reactor *r);

/*
 * Unlocks c->mu after a level-triggered backend changed what it watches.
 * A poller blocked in another thread waits on what it copied before the
 * change; when the change `widened` the watched set, that poller is woken
 * so it copies again. A narrower set needs nothing: the poller drops stale
 * answers when it dispatches.
 */
void px__reactor_unlock(px__reactor_core *c, bool widened);

/* ---- Readiness bits ------------------------------------------------- */

/*
 * Translates poll(2)'s revents, which an io_uring poll request also
 * returns, into px__io bits (PX__READABLE, ...).
 */
unsigned px__ready_from_poll(int revents);

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

#ifdef __cplusplus
}
#endif

#endif
