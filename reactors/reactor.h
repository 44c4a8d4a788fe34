/*
 * The reactor interface every readiness backend implements (internal).
 *
 * A backend (epoll, ...) watches file descriptors and reports readiness by
 * calling px__io_dispatch on the registration. The registration, px__io,
 * keeps the readiness bits with a tick (tokio's ScheduledIo idea), so an
 * event that arrives between a read returning EAGAIN and the clear of the
 * readable bit is never lost: the clear only happens if the tick did not
 * move.
 */
#ifndef POLLUX_REACTORS_REACTOR_H
#define POLLUX_REACTORS_REACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "api/internal/list.h"
#include "api/internal/px_internal.h"
#include "pollux/context.h"
#include "pollux/runtime.h"
#include "pollux/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Readiness and interest bits. */
#define PX__READABLE 0x1u
#define PX__WRITABLE 0x2u
#define PX__HUP 0x4u   /* peer hung up (read side closed) */
#define PX__ERROR 0x8u /* error pending on the socket */
#define PX__READY_MASK 0xffu

/* Feature bits a backend reports. */
#define PX__REACTOR_EDGE 0x1u     /* edge-triggered: register once */
#define PX__REACTOR_O1 0x2u       /* poll cost independent of fd count */
#define PX__REACTOR_FD_LIMIT 0x4u /* refuses fds >= max_fd */
/* Events name registrations by pointer: the core frees a closed
 * registration only when the next poll begins (px__io_retire). */
#define PX__REACTOR_DEFER_FREE 0x8u
/* The core keeps the descriptor -> registration table for the backend:
 * add, modify and del run under the core's mutex with the backend's data
 * for the descriptor, and the poller checks events against the table
 * (px__reactor_lookup in core.h). */
#define PX__REACTOR_FD_TABLE 0x10u

typedef struct px__reactor px__reactor;

/*
 * One registered file descriptor. `state` packs the readiness bits (low 8)
 * and a tick (the rest) that changes on every dispatch.
 */
typedef struct px__io {
  px__atomic(uint64_t) state;
  /* Guards the two waker slots: a px__spinlock (px_internal.h), spelled
   * so that C++ tests can include this header too. */
  px__atomic(unsigned char) lock;
  px_waker reader;
  px_waker writer;
  int fd;
  unsigned interest;  /* what the backend watches (level-triggered ones) */
  px__reactor *reactor; /* set while registered */
  const struct px__reactor_ops *ops;
  /* In the reactor core's list of registrations while registered, so that
   * freeing the runtime can detach what its owner has not closed yet. */
  px__list registered;
  /* Deferred free (PX__REACTOR_DEFER_FREE, px__io_retire): the memory
   * holding this registration, and the link in the reactor's list. Never
   * touched by a dispatch, so a late event for a retired registration is
   * harmless. */
  void *retire_mem;
  size_t retire_size;
  struct px__io *retire_next;
} px__io;

/* A readiness snapshot: bits plus the tick they were seen at. */
typedef struct px__io_event {
  unsigned ready;
  uint64_t tick;
} px__io_event;

/*
 * What a backend implements: only what is specific to its system call. The
 * core (reactors/core.c) owns the entry points below, which check their
 * arguments once, so the backend functions get valid pointers, a
 * descriptor >= 0 (and below max_fd with PX__REACTOR_FD_LIMIT), and, with
 * PX__REACTOR_FD_TABLE, run add/modify/del under the core's mutex with
 * `slot`, the backend's ops->slot_size bytes for the descriptor (zeroed at
 * first use; they may move between calls, so keep no pointer into them).
 * Without the table `slot` is NULL.
 */
typedef struct px__reactor_ops {
  const char *name;
  unsigned features; /* PX__REACTOR_* */
  int max_fd;        /* with PX__REACTOR_FD_LIMIT: fds must be below it */
  size_t slot_size;  /* with PX__REACTOR_FD_TABLE: per-descriptor data */
  /* Makes the backend's struct px__reactor (px__reactor_new, core.h). */
  int (*create)(const px_config *cfg, px__reactor **out);
  void (*destroy)(px__reactor *r);
  /* Starts watching io->fd for the bits in `interest`. */
  int (*add)(px__reactor *r, px__io *io, unsigned interest, void *slot);
  /* Changes the watched bits; called only when they change (level-triggered
   * backends; edge-triggered ones are never asked). Optional with
   * PX__REACTOR_FD_TABLE: NULL when io->interest, which the core updates,
   * is all the backend reads. */
  int (*modify)(px__reactor *r, px__io *io, unsigned interest, void *slot);
  /* Stops watching; no dispatch for io happens after it returns. */
  int (*del)(px__reactor *r, px__io *io, void *slot);
  /*
   * Waits up to timeout_ms (-1: forever, 0: not at all) and dispatches what
   * became ready. Returns the number of registrations dispatched, or a
   * negative error; EINTR counts as 0 events, not an error.
   */
  int (*poll)(px__reactor *r, int timeout_ms);
  /* Optional: makes a concurrent or the next poll return at once, from any
   * thread. NULL: the core writes the reactor's wake-up descriptor. */
  int (*wakeup)(px__reactor *r);
} px__reactor_ops;

/* The backend chosen by --//reactors:reactor (defined by its *_default target). */
extern const px__reactor_ops *const px__reactor_default;

/* ---- The reactor's entry points (reactors/core.c) --------------------- */

/* Makes a reactor of backend `ops`. PX_EINVAL for NULL arguments. */
int px__reactor_create(const px__reactor_ops *ops, const px_config *cfg,
                       px__reactor **out);

/* Destroys r (NULL: nothing), with the registrations it still retires. */
void px__reactor_destroy(px__reactor *r);

/* Frees the registrations retired since the last poll, then waits as
 * ops->poll does. PX_EINVAL for NULL. */
int px__reactor_poll(px__reactor *r, int timeout_ms);

/* Makes a concurrent or the next poll return at once. PX_EINVAL for NULL. */
int px__reactor_wakeup(px__reactor *r);

/* r's backend. */
const px__reactor_ops *px__reactor_ops_of(const px__reactor *r);

/* ---- px__io: shared by every backend (reactors/readiness.c) ----------------- */

void px__io_init(px__io *io, int fd);

/* Backends call this with what the OS reported; wakes matching waiters. */
void px__io_dispatch(px__io *io, unsigned ready);

/*
 * Returns true with *ev filled when any bit of `interest` is ready;
 * otherwise stores cx's waker for that direction and returns false.
 */
bool px__io_poll_ready(px__io *io, px_context *cx, unsigned interest,
                       px__io_event *ev);

/* Clears ev's bits unless a newer dispatch happened since ev was taken. */
void px__io_clear_ready(px__io *io, px__io_event ev);

/* Wakes and drops both waiters (used at deregistration). */
void px__io_wake_all(px__io *io);

/*
 * Registers io with reactor r: the entry point of registration, which
 * checks the arguments for every backend (PX_EINVAL for NULL or a negative
 * descriptor, PX_ERANGE for one at or above a limited backend's max_fd).
 * Idempotent; PX_EBUSY when io is registered with another reactor.
 */
int px__io_register(px__io *io, px__reactor *r);

/*
 * True when io is registered with r: what every poll of every read and
 * write finds after the first, checked without the lock (px__io_register
 * publishes io->reactor with release order, after io->ops).
 */
static inline bool px__io_registered_with(px__io *io, px__reactor *r) {
  return __atomic_load_n(&io->reactor, __ATOMIC_ACQUIRE) == r;
}

/* Deregisters io (if registered) and drops its wakers. */
void px__io_deregister(px__io *io);

/*
 * Deregisters every px__io still registered with r (px_runtime_free, before
 * the backend goes): each is left unregistered, with its wakers dropped, so
 * a stream, listener, socket or signal stream closed after its runtime was
 * freed only closes its descriptor and frees its memory. Every backend's
 * reactor starts with a px__reactor_core (reactors/core.h).
 */
void px__reactor_detach_all(px__reactor *r);

/*
 * Frees `mem` (size bytes, the struct that contains io) once io, already
 * deregistered from reactor r (NULL if it never was registered), can no
 * longer be reached by a dispatch: at once, or, for a backend with
 * PX__REACTOR_DEFER_FREE, when r's next poll begins.
 */
void px__io_retire(px__reactor *r, px__io *io, void *mem, size_t size);

#ifdef __cplusplus
}
#endif

#endif
