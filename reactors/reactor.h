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

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

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
#define PX__READY_MASK 0x0fu

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
/*
 * An edge-triggered backend that dispatches PX__HUP / PX__ERROR for a
 * hang-up or a pending error, which stay in the state word. Only then may a
 * short TCP transfer count as drained (PX__FD_DONE_DRAINED): a read can come
 * short because a reset or an end of stream stands behind the bytes, and
 * its edge may already have been dispatched. Reported as sticky bits, the
 * next read still tries and sees it; folded into plain readable+writable
 * (libevent does that with EPOLLHUP and EPOLLERR), the short read clears
 * the readiness and no edge is left to come. Level-triggered backends
 * report the state again at their next wait and need no bit.
 */
#define PX__REACTOR_HANGUPS 0x20u

typedef struct px__reactor px__reactor;
struct px__op;
struct px__chunk;

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
  /* The runtime whose reactor that is, once a future on io has checked it
   * (fd_future.c); NULL again at deregistration. Lets every later read and
   * write find "registered here" with two loads and no call. */
  void *runtime;
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
  /* Completion-style operations (a backend with ops->submit): the read or
   * accept in [PX__OP_IN], the write in [PX__OP_OUT], made at first use
   * and released with the registration (px__reactor_del). NULL otherwise. */
  struct px__op *op[2];
  /* Set when deregistration left the descriptor to a write still in flight
   * (px__op_release): the reactor closes it when the write ends, so the
   * owner must not (px__fd_close). */
  bool fd_lingers;
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
  /*
   * Optional, together: completion-style I/O (io_uring). submit queues
   * op's operation (a px__op in state PX__OP_INFLIGHT, see below) and
   * cancel asks for the end of one in flight; both run with the core's
   * mutex held and may leave the request queued until the next poll (one
   * submission per reactor turn), except while a poller is blocked, when
   * they hand it to the kernel at once. The backend reports each end with
   * px__op_complete, under the same mutex. submit may also finish a send
   * at once (it would have to enter the kernel anyway): it returns 1 then,
   * with op->off advanced to op->len, or op->res set to the PX_E* failure.
   * NULL: the I/O layer waits for readiness and makes the system calls
   * itself, as for every other backend.
   */
  int (*submit)(px__reactor *r, struct px__op *op);
  void (*cancel)(px__reactor *r, struct px__op *op);
  /*
   * Optional, with submit: gives a buffer of the backend's pool back once
   * its bytes were read (mutex held). A backend whose receives fill
   * buffers it provides (io_uring's multishot receive over a buffer ring)
   * hands each arrival to px__op_received as a px__chunk of its pool.
   */
  void (*recycle)(px__reactor *r, struct px__chunk *c);
  /*
   * Optional, with submit: hands the requests left queued for the next poll
   * to the kernel, without waiting (the end of block_on). Takes
   * completions as poll(0) does only on the thread whose blocking polls
   * this reactor last saw: on another thread (block_on's, under work
   * stealing) it could take the wake-up meant for a poller about to wait,
   * which would then sleep through it.
   */
  int (*flush)(px__reactor *r);
  /*
   * Optional: the backend px__reactor_create tries next when create fails
   * with PX_ENOSYS or PX_EPERM, the kernel lacking the interface or
   * forbidding it (io_uring under a seccomp filter such as many container
   * runtimes install, or with kernel.io_uring_disabled set; io_uring also
   * refuses itself under valgrind, which cannot run it): the build's
   * default then still makes runtimes there, on the OS's other backend.
   */
  const struct px__reactor_ops *fallback;
} px__reactor_ops;

/* The backend chosen by --//reactors:reactor (defined by its *_default target). */
extern const px__reactor_ops *const px__reactor_default;

/* ---- The reactor's entry points (reactors/core.c) --------------------- */

/* Makes a reactor of backend `ops`, or of its fallback (and the
 * fallback's) while the kernel refuses one; px__reactor_ops_of names the
 * one made. PX_EINVAL for NULL arguments. */
int px__reactor_create(const px__reactor_ops *ops, const px_config *cfg,
                       px__reactor **out);

/* Destroys r (NULL: nothing), with the registrations it still retires. */
void px__reactor_destroy(px__reactor *r);

/* Frees the registrations retired since the last poll, then waits as
 * ops->poll does. PX_EINVAL for NULL. */
int px__reactor_poll(px__reactor *r, int timeout_ms);

/* ops->flush where the backend has one, else nothing to do: 0. */
int px__reactor_flush(px__reactor *r);

/* Makes a concurrent or the next poll return at once. PX_EINVAL for NULL. */
int px__reactor_wakeup(px__reactor *r);

/* r's backend. */
const px__reactor_ops *px__reactor_ops_of(const px__reactor *r);

/* ---- px__io: shared by every backend (reactors/readiness.c) ----------------- */

void px__io_init(px__io *io, int fd);

/* Backends call this with what the OS reported; wakes matching waiters. */
void px__io_dispatch(px__io *io, unsigned ready);

/* Clears ev's bits unless a newer dispatch happened since ev was taken,
 * and notes those directions as drained (see px__io_look). */
void px__io_clear_ready(px__io *io, px__io_event ev);

/* Whether io's backend lets a short TCP transfer count as drained (see
 * PX__REACTOR_HANGUPS). */
static inline bool px__io_short_drains(const px__io *io) {
  unsigned f = io->ops != NULL ? io->ops->features : 0;
  return !(f & PX__REACTOR_EDGE) || (f & PX__REACTOR_HANGUPS);
}

/*
 * px__io.state's layout: the readiness bits (PX__READY_MASK), above them
 * the directions once seen drained (see px__io_look), sticky, and above
 * those a tick that every dispatch moves. Here, with the looks below,
 * because those are inline: one comes before every read and write.
 */
#define PX__IO_DRAINED_SHIFT 4
#define PX__IO_TICK_SHIFT 8
/* The bits that come and go with the OS's answers; HUP and ERROR stay. */
#define PX__IO_DIRECTIONS (PX__READABLE | PX__WRITABLE)

/* The state word, as dispatch published it (acquire). */
static inline uint64_t px__io_state(const px__io *io) {
#ifdef __cplusplus
  return io->state.load(std::memory_order_acquire);
#else
  return atomic_load_explicit(&io->state, memory_order_acquire);
#endif
}

/* Fills *ev and returns true when a bit of `interest` is set in `state`. */
static inline bool px__io_snapshot(uint64_t state, unsigned interest,
                                   px__io_event *ev) {
  unsigned ready = (unsigned)state & PX__READY_MASK;
  if ((ready & interest) == 0) return false;
  /* HUP and ERROR travel with the snapshot so callers can tell why. */
  ev->ready = ready & (interest | PX__HUP | PX__ERROR);
  ev->tick = state >> PX__IO_TICK_SHIFT;
  return true;
}

/*
 * The looks below when not ready at once: stores cx's waker for `interest`
 * (none when cx or its waker is NULL, which takes ours back out of the
 * slot) and looks again (readiness.c). Returns as px__io_poll_ready does.
 */
bool px__io_wait(px__io *io, px_context *cx, unsigned interest,
                 px__io_event *ev);

/*
 * Returns true with *ev filled when any bit of `interest` is ready;
 * otherwise stores cx's waker for that direction and returns false.
 */
static inline bool px__io_poll_ready(px__io *io, px_context *cx,
                                     unsigned interest, px__io_event *ev) {
  if (px__io_snapshot(px__io_state(io), interest, ev)) return true;
  return px__io_wait(io, cx, interest, ev);
}

/*
 * An operation's first look, before its syscall. True when the syscall is
 * worth trying, with *ev the readiness px__io_clear_ready takes back should
 * it say EAGAIN: a direction of `interest` is ready, or was never seen
 * drained (before that the state says nothing: a fresh descriptor's data
 * is often already there). False when the direction was seen drained (a
 * syscall said EAGAIN, or a TCP read came short, and its readiness was
 * cleared) and no readiness came since: a syscall would only say EAGAIN
 * (tokio's order: readiness first), so cx's waker is stored, as
 * px__io_poll_ready does. px__io_ready_at_once is the one-load part, which
 * stores no waker.
 */
static inline bool px__io_ready_at_once(px__io *io, unsigned interest,
                                        px__io_event *ev) {
  uint64_t s = px__io_state(io);
  if (px__io_snapshot(s, interest, ev)) return true;
  /* A hang-up or an error stays once seen, and the syscall is what reports
   * it (end of stream, the error): never wait past it. */
  uint64_t drained = (uint64_t)(interest & PX__IO_DIRECTIONS)
                     << PX__IO_DRAINED_SHIFT;
  if ((s & (PX__HUP | PX__ERROR)) == 0 && (s & drained) != 0) return false;
  ev->ready = interest & PX__IO_DIRECTIONS;
  ev->tick = s >> PX__IO_TICK_SHIFT;
  return true;
}

static inline bool px__io_look(px__io *io, px_context *cx, unsigned interest,
                               px__io_event *ev) {
  if (px__io_ready_at_once(io, interest, ev)) return true;
  return px__io_wait(io, cx, interest, ev);
}

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

/* ---- Completion-style operations (reactors/completion.c) ------------ */

/*
 * One descriptor's operation the kernel performs itself (ops->submit):
 * receive, send or accept. Its memory, buffer included, belongs to the
 * registration, never to a future, because the kernel may write into it
 * until the completion arrives: a future dropped mid-operation leaves the
 * operation running, and what it brings (bytes, a connection) waits in the
 * op for the next read or accept of the descriptor, so nothing is lost.
 * Writes are written behind: poll_write copies the bytes into the op's
 * buffer and is done, while there is room; flush and shutdown wait until
 * they are out, and an error comes back from the next call. Everything but `buf`'s contents is
 * guarded by the core's mutex.
 */
typedef enum px__op_kind {
  PX__OP_RECV = 1,
  PX__OP_SEND,
  PX__OP_ACCEPT,
  PX__OP_POLL_IN, /* an accept's wait for readable (px__op_accept_wait) */
  PX__OP_CONNECT  /* in the OUT slot until it ends; then writes own it */
} px__op_kind;

typedef enum px__op_state {
  PX__OP_IDLE = 0, /* nothing in flight; a result may wait (RECV, ACCEPT) */
  PX__OP_INFLIGHT, /* submitted: the kernel owns buf */
} px__op_state;

/* The slots of px__io.op. */
enum { PX__OP_IN = 0, PX__OP_OUT = 1 };

/*
 * One buffer of a backend's receive pool (ops->recycle): while `len` > 0
 * it holds bytes received for one op, queued in the op's `chunks` until
 * they are read, then it goes back to the pool.
 */
typedef struct px__chunk {
  struct px__chunk *next; /* the op's next chunk, in arrival order */
  unsigned char *data;    /* the pool's memory */
  uint32_t len;           /* bytes received */
  uint32_t off;           /* bytes already read */
  uint32_t id;            /* the backend's name for the buffer */
} px__chunk;

typedef struct px__op {
  px__op_kind kind;
  px__op_state state;
  int fd;
  bool orphan;     /* its registration is gone: freed at its completion */
  bool cancelling; /* a cancel was asked for */
  bool has_result; /* RECV, ACCEPT: a completion not yet taken */
  bool shut_wr;    /* SEND: shutdown(SHUT_WR) once the bytes are out */
  bool close_fd;   /* SEND orphan: close fd once the bytes are out */
  bool multishot;  /* in flight as a multishot request that stays until a
                      completion says it ended. RECV: a receive into the
                      backend's pool, each arrival a chunk; ACCEPT: each
                      connection queued in buf (px__op_accepted) */
  bool pool_dry;   /* RECV: its last receive found the backend's pool
                      empty: the next one gets a buffer of its own */
  int res;         /* the completion's result, or a write's error */
  px_waker waker;  /* the future waiting for the completion */
  px__reactor *reactor;
  px__list link;   /* in the reactor's list of operations in flight */
  px__list later;  /* SEND: in the backend's list of sends to prepare at
                      its next poll (so one turn's writes go out as one) */
  size_t off;      /* RECV: next unread byte; SEND: next unsent byte;
                      ACCEPT: byte offset of the next queued descriptor */
  size_t len;      /* RECV: bytes received; SEND: bytes written into buf,
                      which writes append to while a send is in flight;
                      ACCEPT: bytes of buf holding queued descriptors */
  size_t cap;      /* bytes of buf (RECV: of the buffer to make, until a
                      one-shot receive makes it: px__op_buffer; SEND: of
                      the one the next write takes, while bytes wait) */
  socklen_t addrlen; /* ACCEPT: the peer's address, the kernel writes;
                        CONNECT: the address connected to, it reads */
  struct sockaddr_storage addr;
  unsigned char *buf;
  px__chunk *chunks;      /* RECV: received into the pool, not yet read */
  px__chunk **chunks_end; /* where the next chunk is linked (NULL: &chunks) */
  unsigned nchunks;       /* how many */
} px__op;

/* Whether io's reactor (io registered) performs operations itself. Inline:
 * every read and write asks. io->reactor is published after io->ops
 * (px__io_register). */
static inline bool px__io_completes(const px__io *io) {
  return io != NULL && __atomic_load_n(&io->reactor, __ATOMIC_ACQUIRE) != NULL &&
         io->ops != NULL && io->ops->submit != NULL;
}

/*
 * io's operation of `kind` in `slot`, made (or, while idle and without a
 * waiting result, grown to `want` bytes of buffer, within the op's limits)
 * on demand. NULL when memory ran out. io must be registered. Core's mutex
 * NOT held.
 */
px__op *px__op_get(px__io *io, int slot, px__op_kind kind, size_t want);

/* Locks/unlocks the core mutex of op's reactor (op->reactor). */
void px__op_lock(px__op *op);
void px__op_unlock(px__op *op);

/* For the backend, mutex held: makes a receive's buffer (op->cap bytes),
 * which waits until a one-shot receive needs it. 0 or PX_ENOMEM. */
int px__op_buffer(px__op *op);

/* Mutex held: submits op (state becomes INFLIGHT). 0 or PX_E*. */
int px__op_submit(px__op *op);

/* For the backend, mutex held: op ended with `res` (a byte count, a
 * descriptor or -errno). Resubmits what is left of a short send. */
void px__op_complete(px__reactor *r, px__op *op, int res);

/*
 * For the backend, mutex held: a multishot receive (op->multishot)
 * brought `c` (NULL when the completion carried no bytes), and goes on
 * when `more`. When it ended, `res` says why: 0 the end of the stream,
 * -errno a failure, and PX__RECV_RESTART (the pool ran dry, or the kernel
 * cannot) or -ECANCELED (the backend cancelled it) that the next read
 * simply asks again. Returns how many chunks wait in the op now, so that
 * the backend can stop one reader from taking its whole pool.
 */
size_t px__op_received(px__reactor *r, px__op *op, px__chunk *c, int res,
                       bool more);
#define PX__RECV_RESTART (-ENOBUFS)

/*
 * For the backend, mutex held: a multishot accept (op->multishot) brought
 * the connection `res` (>= 0), queued in the op until an accept takes it,
 * or failed with -errno; it goes on when `more`. Returns how many
 * connections wait in the op now, so that the backend can stop accepting
 * ahead of a server that does not ask (ops->cancel; a -ECANCELED end is
 * not an error). The descriptors queued belong to the op: closed when the
 * registration goes.
 */
size_t px__op_accepted(px__reactor *r, px__op *op, int res, bool more);

/* For px__reactor_del, mutex held: releases io's operations (free when
 * idle; orphaned, and cancelled unless a send, when in flight). */
void px__io_release_ops(px__reactor *r, px__io *io);

/*
 * The I/O layer's calls (mutex not held; io registered, with a backend
 * that completes). Each returns PX_READY with its result, PX_PENDING with
 * cx's waker kept for the completion, or a negative PX_E* code.
 *
 * px__op_read copies up to len (> 0) bytes into buf (*n; 0: end of
 * stream). px__op_write copies up to len (> 0) bytes of buf into the op
 * and sends them behind (*n); it is PENDING only while the op's buffer is
 * full of bytes still going out, and reports their failure. px__op_flush waits until none are.
 * px__op_accept gives an accepted descriptor (*fd, non-blocking and
 * close-on-exec).
 */
int px__op_read(px__io *io, px_context *cx, void *buf, size_t len,
                size_t *n);
int px__op_write(px__io *io, px_context *cx, const void *buf, size_t len,
                 size_t *n);
int px__op_flush(px__io *io, px_context *cx);
int px__op_accept(px__io *io, px_context *cx, int *fd);

/* An accept that cannot go on now (the descriptor table is full and the
 * backlog empty: io_uring's accept fails before it looks at the backlog)
 * waits until the listener is readable; px__op_accept then accepts again.
 * PX_PENDING or a negative PX_E* code. */
int px__op_accept_wait(px__io *io, px_context *cx);

/*
 * Connects io's socket (not connected, nothing written yet) to `addr`:
 * PX_READY once connected, PX_PENDING, or the failure (PX_ECONNREFUSED,
 * ...). The address is copied into the op, so the caller's may go. Once it
 * ended the op is freed and the slot is the writes'.
 */
int px__op_connect(px__io *io, px_context *cx, const struct sockaddr *addr,
                   socklen_t len);

/* For a dropped future: takes back its waker from the op in `slot`. The
 * operation goes on; its result waits for the next call. */
void px__op_forget(px__io *io, int slot);

/* True when bytes are still going out: shutdown(SHUT_WR) then happens
 * after them, from the completion. False: nothing in flight, shut now. */
bool px__op_shutdown_later(px__io *io);

/*
 * Registers io with r like px__io_register, but, when r's backend
 * completes operations, with no readiness interest: io will only carry
 * px__op operations, so the backend need not watch it.
 */
int px__io_register_completion(px__io *io, px__reactor *r);

/* For the backend's destroy, mutex held: the operations still in flight,
 * to cancel and wait for (px__list of px__op.link). */
px__list *px__reactor_inflight(px__reactor *r);

#ifdef __cplusplus
}
#endif

#endif
