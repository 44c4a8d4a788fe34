/*
 * px__io: the readiness record of one registered file descriptor, shared by
 * every reactor backend (tokio's ScheduledIo).
 *
 * The record answers one question for a future: "is it worth trying the
 * syscall again?". Backends report what the OS said with px__io_dispatch;
 * futures ask with px__io_poll_ready and, when the syscall still says EAGAIN,
 * take the bit back with px__io_clear_ready.
 *
 * The state word packs the readiness bits (low 8) and a tick (the other 56),
 * and every dispatch bumps the tick. That is what makes the clear safe:
 *
 *   future                          reactor thread
 *   poll_ready -> READABLE @ tick 7
 *   read() -> EAGAIN
 *                                   data arrives, dispatch -> tick 8
 *   clear_ready(@ tick 7)  -> tick moved, nothing is cleared
 *   poll_ready -> still READABLE, read() again and get the data
 *
 * Without the tick the clear would erase the new event, and with an
 * edge-triggered backend no second event would ever come: a lost wake-up.
 *
 * The two waker slots (one task waiting to read, one waiting to write) are
 * guarded by a one-byte spinlock. Critical sections are a few word moves,
 * never a call into a waker, so spinning is cheaper than a mutex and the
 * record stays small and allocation-free. (Registration also takes it; see
 * px__io_register.)
 *
 * One slot per direction means one waiting reader and one waiting writer
 * per descriptor: a second task waiting for the same direction evicts the
 * first one's waker. tokio adds a list of waiters for that case.
 *
 * Edge- and level-triggered backends. An edge-triggered backend (epoll,
 * kqueue with EV_CLEAR, ...) is told once, at registration, to watch both
 * directions, and reports changes; it is never called again until the
 * descriptor is deregistered. A level-triggered backend (select, poll)
 * reports a *state*, and a socket is writable almost all the time: watching
 * WRITABLE permanently would make every wait return at once, a busy loop.
 * So for those backends the interest is one-shot:
 *
 *   - registration watches nothing (ops->add with interest 0);
 *   - a future that finds its direction not ready stores its waker, and
 *     then px__io_poll_ready asks the backend, through ops->modify, to watch
 *     exactly the directions that have a waiter (rearm below);
 *   - when the backend reports a direction it dispatches it and stops
 *     watching it, under its own lock, in the same step.
 *
 * Nothing is lost by not watching: the readiness bits stay in the state
 * word until a syscall returns EAGAIN, and a backend that starts watching a
 * direction that is already ready reports it on its next wait, because it
 * reports states. EDGE backends never take this path (one feature-bit test),
 * so epoll's path is unchanged.
 */
#include <stddef.h>

#include "api/internal/px_internal.h"
#include "reactors/core.h"
#include "reactors/reactor.h"

/* The state word's layout (reactor.h). */
#define TICK_SHIFT PX__IO_TICK_SHIFT
#define READY_OF(state) ((unsigned)((state)&PX__READY_MASK))
#define TICK_OF(state) ((state) >> TICK_SHIFT)
#define DRAINED_SHIFT PX__IO_DRAINED_SHIFT
#define FLAGS_OF(state) ((state) & ((1u << TICK_SHIFT) - 1))

#define DIRECTION_BITS PX__IO_DIRECTIONS

/* The project's spinlock: the holder only moves a few words, and when it
 * is preempted a waiter yields instead of burning its time slice (see
 * px__spin_wait for why a pure spin is wrong on a loaded machine). */
static void lock(px__io *io) { px__spin_lock(&io->lock); }

static void unlock(px__io *io) { px__spin_unlock(&io->lock); }

/*
 * Moves the wakers of the directions in `mask` out of their slots. The
 * caller wakes or drops them after unlocking, because a wake may run
 * arbitrary code (schedule a task, free it when the last reference goes)
 * that must never run under our spinlock.
 */
static void take_wakers(px__io *io, unsigned mask, px_waker *reader,
                        px_waker *writer) {
  px_waker empty = PX_WAKER_EMPTY;
  *reader = empty;
  *writer = empty;
  lock(io);
  if (mask & PX__READABLE) {
    *reader = io->reader;
    io->reader = empty;
  }
  if (mask & PX__WRITABLE) {
    *writer = io->writer;
    io->writer = empty;
  }
  unlock(io);
}

void px__io_init(px__io *io, int fd) {
  px_waker empty = PX_WAKER_EMPTY;
  atomic_init(&io->state, 0);
  atomic_init(&io->lock, 0);
  io->reader = empty;
  io->writer = empty;
  io->fd = fd;
  io->interest = 0;
  io->reactor = NULL;
  io->runtime = NULL;
  io->ops = NULL;
  io->retire_mem = NULL;
  io->retire_size = 0;
  io->retire_next = NULL;
  io->op[PX__OP_IN] = NULL;
  io->op[PX__OP_OUT] = NULL;
  io->fd_lingers = false;
  io->registered.next = io->registered.prev = NULL;
}

void px__io_dispatch(px__io *io, unsigned ready) {
  ready &= PX__READY_MASK;
  /* A hang-up or a pending error ends whatever either direction waits for:
   * the next read sees end of stream or the error, and so does the next
   * write. Marking both directions ready makes both waiters try. */
  if (ready & (PX__HUP | PX__ERROR)) ready |= DIRECTION_BITS;

  uint64_t cur = atomic_load_explicit(&io->state, memory_order_relaxed);
  uint64_t next;
  do {
    /* The tick wraps after 2^56 dispatches; only equality matters. */
    next = ((TICK_OF(cur) + 1) << TICK_SHIFT) | FLAGS_OF(cur) | ready;
  } while (!atomic_compare_exchange_weak_explicit(
      &io->state, &cur, next, memory_order_acq_rel, memory_order_relaxed));

  /* The new bits are published before the slots are looked at, so a waiter
   * that stored its waker after we emptied the slots re-reads the state
   * (see px__io_poll_ready) and finds the bits instead of sleeping. */
  px_waker reader, writer;
  take_wakers(io, ready, &reader, &writer);
  px_waker_wake(&reader);
  px_waker_wake(&writer);
}

/*
 * Puts *w in *slot unless the slot already wakes the same target; either
 * way the waker that is no longer needed (the old one, or *w itself) is
 * left in *w for the caller to drop after unlocking.
 */
static void slot_store(px_waker *slot, px_waker *w) {
  if (px_waker_will_wake(slot, w)) return;
  px_waker old = *slot;
  *slot = *w;
  *w = old;
}

/* Empties *slot into *out if it wakes the same target as `w`. */
static void slot_take_if(px_waker *slot, const px_waker *w, px_waker *out) {
  if (px_waker_is_empty(w) || !px_waker_will_wake(slot, w)) return;
  *out = *slot;
  slot->vtable = NULL;
  slot->data = NULL;
}

/* The directions that have a waker waiting in their slot. */
static unsigned waiting_directions(px__io *io) {
  lock(io);
  unsigned bits = (px_waker_is_empty(&io->reader) ? 0u : PX__READABLE) |
                  (px_waker_is_empty(&io->writer) ? 0u : PX__WRITABLE);
  unlock(io);
  return bits;
}

/*
 * Tells a level-triggered backend to watch the directions that have a
 * waiter (see the file comment). modify runs outside our spinlock: the
 * backend dispatches under its own lock, so calling into it while holding
 * ours could deadlock against a dispatch waiting for ours.
 *
 * Two threads may rearm the same descriptor at once (a reader task and a
 * writer task on different workers), and their modify calls may land in
 * either order, the older set last. Each caller therefore looks at the slots
 * again after its modify and repeats it if they changed: the last modify of
 * whoever saw a stale set is followed by one with the current set. A set
 * that is too large only costs one spurious event, after which the backend
 * drops the direction again.
 */
static void rearm(px__io *io) {
  const px__reactor_ops *ops = io->ops;
  px__reactor *r = io->reactor;
  if (ops == NULL || r == NULL || (ops->features & PX__REACTOR_EDGE)) return;
  unsigned want = waiting_directions(io);
  for (;;) {
    /* A level-triggered backend's modify only updates its table for a
     * descriptor it accepted at registration, so it does not fail. */
    (void)px__reactor_modify(r, io, want);
    unsigned now = waiting_directions(io);
    if (now == want) return;
    want = now;
  }
}

/* px__io_poll_ready and px__io_look when not ready at the first look: out
 * of line, so the ready case, every read that finds bytes, pays no frame. */
bool px__io_wait(px__io *io, px_context *cx, unsigned interest,
                 px__io_event *ev) {
  /* Clone before locking: a clone is a call into foreign code (a task
   * waker bumps a reference count) and must not run under the spinlock. */
  const px_waker *waker = cx != NULL ? cx->waker : NULL;
  px_waker for_reader = PX_WAKER_EMPTY, for_writer = PX_WAKER_EMPTY;
  if (interest & PX__READABLE) for_reader = px_waker_clone(waker);
  if (interest & PX__WRITABLE) for_writer = px_waker_clone(waker);
  lock(io);
  if (interest & PX__READABLE) slot_store(&io->reader, &for_reader);
  if (interest & PX__WRITABLE) slot_store(&io->writer, &for_writer);
  unlock(io);
  px_waker_drop(&for_reader);
  px_waker_drop(&for_writer);

  /* A dispatch may have run between the first look and the store above; it
   * found an empty slot and woke nobody. Because dispatch publishes its bits
   * before taking the lock, and we stored the waker under the same lock, one
   * of the two sees the other: either dispatch takes our waker, or this
   * second look sees its bits. */
  if (!px__io_snapshot(px__io_state(io), interest, ev)) {
    /* Not ready: make sure the backend watches what we now wait for (a
     * no-op for edge-triggered backends, which watch everything). */
    rearm(io);
    return false;
  }

  /* Ready after all, so the caller will not wait: take our waker back
   * rather than leave it behind. A stale waker is not only a spurious
   * wake-up later; it may hold a task alive, or point into the frame of a
   * block_on that has returned by the time some dispatch wakes it. */
  px_waker back_reader = PX_WAKER_EMPTY, back_writer = PX_WAKER_EMPTY;
  lock(io);
  if (interest & PX__READABLE) slot_take_if(&io->reader, waker, &back_reader);
  if (interest & PX__WRITABLE) slot_take_if(&io->writer, waker, &back_writer);
  unlock(io);
  px_waker_drop(&back_reader);
  px_waker_drop(&back_writer);
  return true;
}

void px__io_clear_ready(px__io *io, px__io_event ev) {
  /* Only the direction bits are cleared: HUP and ERROR describe the
   * connection, not a moment, so they stay for later snapshots. */
  uint64_t clear = ev.ready & DIRECTION_BITS;
  uint64_t cur = atomic_load_explicit(&io->state, memory_order_relaxed);
  uint64_t next;
  do {
    /* A newer dispatch means the OS said "ready" after the syscall that
     * returned EAGAIN may have run: keep the bits so the caller retries. */
    if (TICK_OF(cur) != ev.tick) return;
    next = (cur & ~clear) | (clear << DRAINED_SHIFT);
  } while (!atomic_compare_exchange_weak_explicit(
      &io->state, &cur, next, memory_order_acq_rel, memory_order_relaxed));
}

void px__io_wake_all(px__io *io) {
  px_waker reader, writer;
  take_wakers(io, DIRECTION_BITS, &reader, &writer);
  px_waker_wake(&reader);
  px_waker_wake(&writer);
}

static int register_with(px__io *io, px__reactor *r, bool completion);

int px__io_register(px__io *io, px__reactor *r) {
  return register_with(io, r, false);
}

int px__io_register_completion(px__io *io, px__reactor *r) {
  return register_with(io, r, true);
}

static int register_with(px__io *io, px__reactor *r, bool completion) {
  /* The entry point of registration: the arguments are checked here, once,
   * for every backend. */
  if (io == NULL || r == NULL || io->fd < 0) return PX_EINVAL;
  /* Registered with r already: no lock (px__io_registered_with). */
  if (px__io_registered_with(io, r)) return 0;
  const px__reactor_ops *ops = px__reactor_ops_of(r);
  if ((ops->features & PX__REACTOR_FD_LIMIT) && io->fd >= ops->max_fd)
    return PX_ERANGE; /* valid, but out of this backend's range */
  /* Registration is lazy and idempotent: the first future to be polled
   * registers, the others find it done. A second reactor cannot take over,
   * since the first one would still deliver the events.
   *
   * The spinlock makes check-and-add atomic: with a multi-threaded executor
   * a reader task and a writer task may make their first poll on the same
   * socket at once, and only one of them may add it (the other would get
   * EEXIST). This is the one place the lock is held across a system call;
   * it happens once per socket, and nothing else can want this lock yet
   * except a dispatch for the very events the add just enabled. */
  int err = 0;
  lock(io);
  if (io->reactor != NULL) {
    if (io->reactor != r) err = PX_EBUSY;
  } else {
    /* Both directions at once: an edge-triggered backend then never needs
     * another system call for this descriptor until it is deregistered. A
     * level-triggered one starts with no interest; waiters arm it (rearm). */
    unsigned interest = (ops->features & PX__REACTOR_EDGE)
                            ? (PX__READABLE | PX__WRITABLE)
                            : 0u;
    /* Operations the backend performs need no readiness: no watch, so an
     * io_uring registration arms no poll request at all. */
    if (completion && ops->submit != NULL) interest = 0u;
    err = px__reactor_add(r, io, interest);
    if (err == 0) {
      io->ops = ops;
      __atomic_store_n(&io->reactor, r, __ATOMIC_RELEASE);
    }
  }
  unlock(io);
  return err;
}

void px__io_deregister(px__io *io) {
  if (io == NULL) return;
  if (io->reactor != NULL) {
    /* First: from here on no poll takes the fast path (fd_future.c). */
    __atomic_store_n(&io->runtime, NULL, __ATOMIC_RELAXED);
    px__reactor_del(io->reactor, io);
    __atomic_store_n(&io->reactor, NULL, __ATOMIC_RELEASE);
    io->ops = NULL;
  }
  /* Drop, not wake. Deregistration happens when the stream is closed, and
   * net.h requires every future using it to be dropped first, so whatever
   * is left in the slots belongs to futures that are gone (a waiter that was
   * cancelled, or one that found the bits on its second look). Waking those
   * would only cost tasks a spurious poll; dropping releases the task
   * references the wakers hold, which would otherwise keep finished tasks
   * alive. px__io_wake_all remains for owners that do want waiters to
   * notice (a reactor shutting down under futures that are still alive). */
  px_waker reader, writer;
  take_wakers(io, DIRECTION_BITS, &reader, &writer);
  px_waker_drop(&reader);
  px_waker_drop(&writer);
}

void px__reactor_detach_all(px__reactor *r) {
  if (r == NULL) return;
  /* No task runs any more, so nothing else registers or deregisters
   * meanwhile: each one taken off the list is deregistered as its owner's
   * close would have done (the list removal is a no-op then). */
  px__io *io;
  while ((io = px__reactor_first_registered(r)) != NULL) px__io_deregister(io);
}
