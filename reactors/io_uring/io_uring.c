/*
 * The io_uring reactor: readiness through IORING_OP_POLL_ADD (liburing),
 * and, for sockets, the I/O itself (submit/cancel below: IORING_OP_RECV,
 * multishot into the receive pool, IORING_OP_SEND, IORING_OP_ACCEPT
 * (multishot), IORING_OP_CONNECT on px__op records, whose rules are in
 * reactors/completion.c and docs/BACKENDS.md). Their CQEs carry OP_BIT and
 * the px__op's address: an op is freed only after its CQE, so that pointer
 * is always good. Requests are queued under the mutex and submitted by the
 * next poll's io_uring_enter, which also waits (one system call per turn).
 *
 * The readiness part:
 *
 * io_uring is Linux's completion interface: requests go into a submission
 * queue (SQ), results come back in a completion queue (CQ), both rings
 * shared with the kernel. pollux asks it for readiness, not for the I/O
 * itself, so it fits the same reactor interface as epoll: each registration
 * is one *multishot* poll request (IORING_POLL_ADD_MULTI, Linux 5.13+) for
 * POLLIN | POLLOUT | POLLRDHUP. A multishot poll stays armed and posts a
 * completion (CQE, flagged IORING_CQE_F_MORE) every time the descriptor's
 * wait queue is woken with a matching event: edge-triggered, like EPOLLET,
 * so one submission per registration and the px__io record keeps the edges.
 *
 * Why not one-shot polls re-armed after each completion, which older
 * kernels support? A re-armed one-shot poll reports the *state* again, so a
 * writable socket would complete over and over: it is level-triggered, and
 * edge-triggered backends are never told when a waiter wants a direction
 * again (reactors/readiness.c). create therefore checks that multishot polls work
 * and fails with PX_ENOSYS on a kernel without them. The kernel may still
 * end a multishot poll (a CQE without IORING_CQE_F_MORE, e.g. when the CQ
 * overflowed); such a poll is re-armed, which reports the current state
 * once more, so nothing is lost.
 *
 * del submits IORING_OP_POLL_REMOVE for the request. Removal completes
 * asynchronously and CQEs of the old request may already be queued, so a
 * CQE must never lead to a px__io that is gone. Its user_data is therefore
 * not a pointer but the descriptor and a generation number, looked up in a
 * table (descriptor -> px__io, generation): a CQE whose generation is not
 * the current one belongs to a request that was removed, and is dropped.
 * Nothing is allocated per registration.
 *
 * A removal can fail: when it meets the poll in the middle of handling a
 * wake-up, the kernel answers -EALREADY and the multishot poll lives on,
 * holding a reference to the descriptor's file. The descriptor is closed
 * right after del, so the socket would never really close (the peer waits
 * for a FIN that never comes). Each removal's CQE is therefore checked and
 * a failed one is sent again; and a CQE with IORING_CQE_F_MORE from a
 * request that was removed also asks for its removal once more.
 *
 * Wake-ups: an eventfd with its own multishot poll in the ring. Timeouts:
 * io_uring_wait_cqe_timeout, which with IORING_FEAT_EXT_ARG (Linux 5.11+,
 * also checked by create) passes the timeout to the kernel directly instead
 * of queueing a timeout request, so waiting never touches the SQ.
 *
 * Threading: a mutex guards the SQ, the records and CQ processing. add,
 * modify and del queue requests under it from any thread, also while
 * another thread waits (waiting does not touch the SQ); the poller, the
 * thread whose poll last could block, submits them, waking from its wait
 * for it, since a request's completions are task work of the thread that
 * submitted it (hand_in says why that matters). The poller waits without
 * the mutex and handles CQEs under it, so once del has returned no CQE of
 * that registration is dispatched.
 * One thread polls at a time (the executor sees to it): another thread
 * taking CQEs could take the wake-up of one about to wait, which would
 * then sleep through it. A thread that only needs its requests submitted
 * calls flush, which takes CQEs only on the poller's own thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "platform/platform.h"
#include "reactors/core.h"
#include "reactors/reactor.h"

#define MIN_ENTRIES 8u
#define MAX_ENTRIES 256u
#define ENOMEM_RETRIES 20
/*
 * Completions run as task work of the thread that submitted the request.
 * By default the kernel interrupts that thread (an IPI, and a signal-like
 * detour on its way back to user space) for each one; under load that was
 * the reactor's largest cost (a spinlock in io_run_task_work, the return
 * from the interrupt: ~20% of the server's CPU in perf). With COOP_TASKRUN
 * the work waits for the thread's next entry into the kernel instead, which
 * comes soon: a poll, a send, a timer tick; a thread asleep (in a poll or a
 * futex) is still woken for it, so nothing is lost, only batched. The
 * TASKRUN flag tells a non-blocking poll that work is waiting (ur_poll).
 */
#define COOP_FLAGS (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG)

/* user_data values that are not a registration's (generation 0, so below
 * 2^32). The eventfd's poll is TAG_WAKE in the low byte and a sequence
 * number above it: the poll moves to each new poller (move_wake), and the
 * CQEs of the one it replaced must not be taken for the current one's. */
#define TAG_WAKE 1u   /* the eventfd's poll: wake_tag */
#define TAG_CANCEL 2u /* an IORING_OP_ASYNC_CANCEL: its own CQE is ignored */
/* Set in the user_data of a completion-style operation, whose other bits
 * are its px__op's address (user-space addresses stay below bit 47). A
 * poll's generation stays below 2^30, so its user_data never has it. */
#define OP_BIT (UINT64_C(1) << 62)
/* Set in the user_data of a removal, whose other bits name its target. */
#define REMOVE_BIT (UINT64_C(1) << 63)

/*
 * The receive pool: buffers registered with the kernel as a buffer ring
 * (Linux 5.19+), which multishot receives (Linux 6.0+) fill as bytes
 * arrive: one request per connection for as long as it reads, instead of
 * one per read, and no buffer tied up by a connection that waits. A
 * buffer goes back to the ring once its bytes were read (pool_recycle).
 * A connection that does not read keeps receiving into the pool, up to
 * RECV_AHEAD buffers. While the pool is low (under POOL_LOW free: many
 * such connections, or a burst of them all sending at once) each read asks
 * for one receive that takes a buffer only when its bytes come, so that a
 * connection waiting holds none; when the pool runs dry all the same the
 * kernel ends the receives it cannot fill, and the next read of each is a
 * one-shot receive into a buffer of the op's (px__op.pool_dry). Without a
 * pool (an older kernel) every read is such a one-shot receive.
 */
#define POOL_BUFS 256u       /* a power of two (the ring's size) */
#define POOL_BUF_SIZE 4096u  /* per buffer: a request, a burst of them */
#define POOL_LOW (POOL_BUFS / 4)
/* Buffers one stream may fill before its receive is cancelled, so that a
 * reader that falls behind leaves the pool to the others; its next read
 * starts another once it took them. (The kernel takes what the socket
 * holds in one go, so a stream may end a little past it.) */
#define RECV_AHEAD (POOL_BUFS / 8)
#define POOL_GROUP 0         /* the buffer group of every receive */

/*
 * A listener's accept is one multishot request (Linux 5.19+) for as long as
 * connections are taken: each arrival is queued in the op until an accept
 * asks for it. The request is cancelled once ACCEPT_AHEAD wait there
 * (the kernel takes a burst whole, up to the backlog's length), so
 * a server that stops accepting (a connection cap, a pause at EMFILE) does
 * not go on taking descriptors; the backlog holds the rest, as it would
 * without io_uring, and the next accept that empties the queue starts
 * another request.
 */
#define ACCEPT_AHEAD 16

typedef struct pool {
  struct io_uring_buf_ring *ring; /* POOL_BUFS entries, page aligned */
  size_t ring_bytes;
  unsigned char *mem; /* POOL_BUFS buffers of POOL_BUF_SIZE */
  px__chunk chunks[POOL_BUFS];
  unsigned held; /* buffers holding bytes not read yet (not the kernel's) */
  bool ok;        /* registered (destroy unmaps it) */
  bool multishot; /* and the kernel takes multishot receives into it */
} pool;

/* What the core's table keeps for a registered descriptor. */
typedef struct slot {
  uint32_t gen;  /* of its current request: user_data's high half */
  unsigned mask; /* POLL* bits asked for; 0: no request in flight */
} slot;
struct px__reactor {
  px__reactor_core core; /* mu guards the SQ and the table; wake: eventfd */
  struct io_uring ring;
  bool ring_ok;
  uint32_t gen; /* the last generation handed out */
  /* Pollers waiting in the kernel now (mu): a request queued meanwhile
   * must be submitted at once, since their wait will not submit it. Never
   * more than one: only one thread polls at a time (work stealing's driver
   * lock); others hand requests over with ur_flush, which takes no CQE. */
  unsigned waiting;
  /* The thread whose poll began last (mu). Requests of that thread wait for
   * its next poll (single-threaded executors: always); another thread's
   * are submitted at once, since it cannot tell when the next poll comes
   * (a work-stealing worker that is not the driver). */
  pthread_t poller;
  bool has_poller;
  /* The eventfd's poll (mu): its user_data, and the thread that submitted
   * it, whose task work its completions are (see move_wake). */
  uint64_t wake_tag;
  pthread_t wake_owner;
  /* Sends of that thread waiting for its next poll (px__op.later), which
   * prepares each with everything written into it by then: one turn's
   * writes to a socket go out in one send. */
  px__list later;
  /* ur_poll walks the CQ (mu held all along): the rest of a short send
   * that a completion sends on keeps the mutex (send_now). */
  bool dispatching;
  pool pool;
  bool accept_multishot; /* false once the kernel refused one (-EINVAL) */
};

_Static_assert(offsetof(struct px__reactor, core) == 0,
               "px__reactor_new needs the core first");

static int handle(px__reactor *r, struct io_uring_cqe *cqe);
static int drain_cq(px__reactor *r);
static int submit(px__reactor *r);
static int hand_in(px__reactor *r);
static unsigned flush_sq(px__reactor *r);
static int ur_poll(px__reactor *r, int timeout_ms);
static void queue_cancel(px__reactor *r, px__op *op);
static void queue_later(px__reactor *r);

/*
 * Cancels the operations still in flight (orphans of registrations the
 * runtime detached) and waits for their CQEs: the kernel may write into
 * their memory until then, and a send that still holds its descriptor
 * closes it at its end.
 */
static void drain_ops(px__reactor *r) {
  px__list *all = px__reactor_inflight(r);
  pthread_mutex_lock(&r->core.mu);
  queue_later(r); /* bytes written behind get their chance */
  px__list *pos;
  px__list_foreach(pos, all) {
    px__op *op = px__container_of(pos, px__op, link);
    op->cancelling = true;
    queue_cancel(r, op);
  }
  (void)submit(r);
  for (int rounds = 0; !px__list_empty(all) && rounds < 1000; rounds++) {
    pthread_mutex_unlock(&r->core.mu);
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10000000L};
    (void)io_uring_wait_cqe_timeout(&r->ring, &cqe, &ts);
    pthread_mutex_lock(&r->core.mu);
    (void)drain_cq(r);
    queue_later(r);
    if (io_uring_sq_ready(&r->ring) > 0) (void)submit(r);
  }
  pthread_mutex_unlock(&r->core.mu);
}

/* Sets up the receive pool (see above); without it, receives are
 * one-shot. Called once the ring exists, before anything is submitted. */
static void pool_setup(px__reactor *r) {
  pool *p = &r->pool;
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  p->ring_bytes = ((POOL_BUFS * sizeof(struct io_uring_buf) + (size_t)page -
                    1) / (size_t)page) * (size_t)page;
  /* mmap: page aligned as the kernel requires, and untouched buffers cost
   * no memory. */
  void *ring = mmap(NULL, p->ring_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void *mem = mmap(NULL, (size_t)POOL_BUFS * POOL_BUF_SIZE,
                   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring == MAP_FAILED || mem == MAP_FAILED) goto fail;
  p->ring = ring;
  p->mem = mem;
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = (uint64_t)(uintptr_t)ring;
  reg.ring_entries = POOL_BUFS;
  reg.bgid = POOL_GROUP;
  if (io_uring_register_buf_ring(&r->ring, &reg, 0) < 0) goto fail;
  io_uring_buf_ring_init(p->ring);
  int mask = io_uring_buf_ring_mask(POOL_BUFS);
  for (unsigned i = 0; i < POOL_BUFS; i++) {
    px__chunk *c = &p->chunks[i];
    c->data = p->mem + (size_t)i * POOL_BUF_SIZE;
    c->id = i;
    io_uring_buf_ring_add(p->ring, c->data, POOL_BUF_SIZE, (unsigned short)i,
                          mask, (int)i);
  }
  io_uring_buf_ring_advance(p->ring, POOL_BUFS);
  p->ok = true;
  p->multishot = true;
  return;
fail:
  if (ring != MAP_FAILED) munmap(ring, p->ring_bytes);
  if (mem != MAP_FAILED) munmap(mem, (size_t)POOL_BUFS * POOL_BUF_SIZE);
  p->ring = NULL;
  p->mem = NULL;
}

/* ops->recycle: a buffer whose bytes were read goes back to the kernel.
 * mu held. */
static void pool_recycle(px__reactor *r, px__chunk *c) {
  pool *p = &r->pool;
  io_uring_buf_ring_add(p->ring, c->data, POOL_BUF_SIZE, (unsigned short)c->id,
                        io_uring_buf_ring_mask(POOL_BUFS), 0);
  io_uring_buf_ring_advance(p->ring, 1);
  p->held--;
}

static void ur_destroy(px__reactor *r) {
  if (r->ring_ok) drain_ops(r);
  /* Closing the ring cancels what is still armed. Linux does that from a
   * worker that then queues task work to the threads that used the ring,
   * which interrupts one later blocking call of theirs: an epoll_wait in
   * this thread may return EINTR once, which reactor.h already counts as
   * "0 events". */
  if (r->ring_ok) io_uring_queue_exit(&r->ring);
  if (r->pool.ok) {
    munmap(r->pool.ring, r->pool.ring_bytes);
    munmap(r->pool.mem, (size_t)POOL_BUFS * POOL_BUF_SIZE);
  }
  px__reactor_free(r, sizeof(*r));
}

/* An SQE, submitting what is queued first if the SQ is full. mu held. */
static struct io_uring_sqe *get_sqe(px__reactor *r) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
  if (sqe == NULL) {
    (void)io_uring_submit(&r->ring);
    sqe = io_uring_get_sqe(&r->ring);
  }
  return sqe;
}

/* Queues a multishot poll for `fd` with user_data `data`. mu held. */
static int queue_poll(px__reactor *r, int fd, unsigned mask, uint64_t data) {
  struct io_uring_sqe *sqe = get_sqe(r);
  if (sqe == NULL) return PX_EBUSY;
  io_uring_prep_poll_multishot(sqe, fd, mask);
  io_uring_sqe_set_data64(sqe, data);
  return 0;
}

/*
 * Submits a long-lived request (a multishot poll, receive or accept), or
 * leaves it to the poller. io_uring completes a request as task work of
 * the thread that submitted it: while that thread sleeps elsewhere (a
 * worker parked on its futex, block_on's thread) the kernel wakes it to
 * post each CQE, and only then the poller, two threads woken per
 * completion instead of one, for as long as the request lives. So another
 * thread's is published to the SQ for the poller to submit with its next
 * poll, which makes the completions its own; a poller waiting in the
 * kernel is woken for it through the eventfd, whose poll is its own too
 * (move_wake). Work stealing keeps one worker in the reactor for the same
 * reason (executors/work_stealing, parker_park): bench http_min on 2
 * workers went from 0.77x tokio multi_thread to about 1.05x. Such a
 * request only reports: nothing is lost while it waits for the poll that
 * would report it. One-shot requests (sends, removals, cancels) still go
 * in at once, so that bytes and closes leave while nobody polls. mu held.
 */
static int hand_in(px__reactor *r) {
  if (!r->has_poller || pthread_equal(r->poller, pthread_self()))
    return submit(r);
  (void)flush_sq(r);
  return r->waiting > 0 ? px__wakeup_fd_signal(&r->core.wakeup_fd) : 0;
}

static int submit(px__reactor *r) {
  int n;
  do {
    n = io_uring_submit(&r->ring);
  } while (n == -EINTR);
  return n < 0 ? px_err_from_errno(-n) : 0;
}

/*
 * Checks at create time that this kernel accepts multishot polls: arm the
 * eventfd's poll, make it ready, and look at the CQE. An old kernel
 * rejects the flag with -EINVAL.
 */
static int probe_multishot(px__reactor *r) {
  int err = px__wakeup_fd_signal(&r->core.wakeup_fd);
  if (err < 0) return err;
  struct io_uring_cqe *cqe;
  int rc;
  do {
    rc = io_uring_wait_cqe(&r->ring, &cqe);
  } while (rc == -EINTR);
  if (rc < 0) return px_err_from_errno(-rc);
  int res = cqe->res;
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  io_uring_cqe_seen(&r->ring, cqe);
  px__wakeup_fd_drain(&r->core.wakeup_fd);
  if (res < 0 || !more) return PX_ENOSYS;
  return 0;
}

static int ur_create(const px_config *cfg, px__reactor **out) {
  /* valgrind (3.19) runs one thread at a time and lets the others go only
   * around the calls it knows may block, which io_uring_enter is not: a
   * thread waiting in it would stop every other (a remote spawn, the
   * blocking pool), and the kernel's writes into the rings are beyond it.
   * Step aside for the fallback, epoll, which valgrind runs. */
  if (PX__ON_VALGRIND) return PX_ENOSYS;
  /* The SQ only carries registrations and removals, a few per wait, and a
   * small ring matters: without CAP_IPC_LOCK (in a user namespace, say)
   * Linux counts ring memory against RLIMIT_MEMLOCK, often 8 MiB, and frees
   * a closed ring only later, from a worker. */
  unsigned entries = MAX_ENTRIES;
  if (cfg != NULL && cfg->event_capacity != 0) entries = cfg->event_capacity;
  if (entries < MIN_ENTRIES) entries = MIN_ENTRIES;
  if (entries > MAX_ENTRIES) entries = MAX_ENTRIES;

  int err;
  px__reactor *r = px__reactor_new(sizeof(*r), PX__WAKEUP_FD_EVENTFD, &err);
  if (r == NULL) return err;
  px__list_init(&r->later);
  /* The CQ is twice the SQ (the default). More registrations than that
   * can be ready at once; the kernel then keeps the extra completions on
   * an overflow list, or ends a multishot poll, which poll re-arms. */
  struct io_uring_params p;
  int rc;
  unsigned flags = COOP_FLAGS;
  for (int attempt = 0;; attempt++) {
    memset(&p, 0, sizeof p);
    p.flags = flags;
    rc = io_uring_queue_init_params(entries, &r->ring, &p);
    /* A kernel before 5.19 rejects the flags: do without them. */
    if (rc == -EINVAL && flags != 0) {
      flags = 0;
      continue;
    }
    /* ENOMEM right after other rings were closed is usually their memory
     * not yet given back (see above): wait a little for the worker. */
    if (rc != -ENOMEM || attempt == ENOMEM_RETRIES) break;
    struct timespec nap = {0, 2000000L};
    nanosleep(&nap, NULL);
  }
  if (rc < 0) {
    /* ENOSYS (no io_uring, or seccomp), EPERM (disabled by sysctl), ... */
    ur_destroy(r);
    return px_err_from_errno(-rc);
  }
  r->ring_ok = true;
  if (!(p.features & IORING_FEAT_EXT_ARG)) {
    ur_destroy(r);
    return PX_ENOSYS; /* see the file comment: Linux 5.11+ */
  }
  r->wake_tag = TAG_WAKE;
  r->wake_owner = pthread_self();
  err = queue_poll(r, r->core.wakeup_fd.rd, POLLIN, r->wake_tag);
  if (err == 0) err = submit(r);
  if (err == 0) err = probe_multishot(r);
  if (err < 0) {
    ur_destroy(r);
    return err;
  }
  pool_setup(r);
  r->accept_multishot = true;
  *out = r;
  return 0;
}

static unsigned poll_mask(unsigned interest) {
  unsigned mask = 0;
  if (interest & PX__READABLE) mask |= POLLIN | POLLRDHUP;
  if (interest & PX__WRITABLE) mask |= POLLOUT;
  return mask;
}

static uint64_t data_of(int fd, uint32_t gen) {
  return ((uint64_t)gen << 32) | (uint32_t)fd;
}

/* Starts a request for io with `interest`. mu held. */
static int start(px__reactor *r, px__io *io, unsigned interest, slot *s) {
  /* Generation 0 is never used, so user_data never equals a TAG_*; 30
   * bits, so that it never has REMOVE_BIT or OP_BIT. */
  if (++r->gen == 0 || r->gen > 0x3fffffffu) r->gen = 1;
  s->gen = r->gen;
  s->mask = poll_mask(interest);
  if (s->mask == 0) return 0;
  int err = queue_poll(r, io->fd, s->mask, data_of(io->fd, s->gen));
  return err == 0 ? hand_in(r) : err;
}

/* Queues the removal of the poll whose user_data is `target`. mu held. */
static void queue_remove(px__reactor *r, uint64_t target) {
  struct io_uring_sqe *sqe = get_sqe(r);
  if (sqe == NULL) return;
  io_uring_prep_poll_remove(sqe, target);
  io_uring_sqe_set_data64(sqe, REMOVE_BIT | target);
}

/* Ends the request of the registration in `s`. mu held. */
static void stop(px__reactor *r, slot *s, int fd) {
  if (s->mask == 0) return; /* nothing in flight */
  queue_remove(r, data_of(fd, s->gen));
  (void)submit(r);
}

/* add, modify and del run under the core's mutex, with io's slot. */

static int ur_add(px__reactor *r, px__io *io, unsigned interest, void *s) {
  return start(r, io, interest & (PX__READABLE | PX__WRITABLE), s);
}

static int ur_modify(px__reactor *r, px__io *io, unsigned interest, void *s) {
  interest &= PX__READABLE | PX__WRITABLE;
  if (poll_mask(interest) == ((slot *)s)->mask) return 0;
  /* A poll's mask is fixed: replace the request. (Edge-triggered
   * registrations never come here from px__io.) */
  stop(r, s, io->fd);
  return start(r, io, interest, s);
}

static int ur_del(px__reactor *r, px__io *io, void *s) {
  stop(r, s, io->fd);
  return 0;
}

/* ---- Completion-style operations (reactor.h, px__op) ---------------- */

/* Queues op's request. mu held. */
static int queue_op(px__reactor *r, px__op *op) {
  /* RECV while the pool is low: one receive that takes a pool buffer only
   * when bytes arrive, so that a connection waiting holds none (handled as
   * a multishot receive that ends after one completion). */
  bool from_pool_once = false;
  if (op->kind == PX__OP_RECV) {
    bool low = POOL_BUFS - r->pool.held < POOL_LOW;
    /* After a receive found the pool empty, one into a buffer of the op,
     * taken now: the bytes waiting get somewhere to go. */
    op->multishot = r->pool.multishot && !(low && op->pool_dry);
    from_pool_once = op->multishot && low;
    op->pool_dry = false; /* it decides this receive only */
    int err = op->multishot ? 0 : px__op_buffer(op);
    if (err < 0) return err;
  }
  struct io_uring_sqe *sqe = get_sqe(r);
  if (sqe == NULL) return PX_EBUSY;
  switch (op->kind) {
    case PX__OP_RECV:
      if (from_pool_once) {
        io_uring_prep_recv(sqe, op->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = POOL_GROUP;
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST; /* as the one below */
      } else if (op->multishot) {
        /* Into the pool, for as long as the connection lives. Not
         * POLL_FIRST: with it, Linux (6.18 here) never reported an end of
         * stream that came with the bytes (a Unix peer's shutdown before
         * the first read): after the bytes the receive waited for a
         * wake-up that never came (conformance_test:
         * EndOfStreamThatCameWithTheBytes). Tried first, it receives until
         * EAGAIN or the end. */
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = POOL_GROUP;
      } else {
        io_uring_prep_recv(sqe, op->fd, op->buf, op->cap, 0);
        /* Asked for once the bytes held were taken, when a peer usually
         * waits for our answer before sending more: the socket is most
         * likely empty, so wait for data before trying (a recv tried first
         * would fail with EAGAIN and then wait anyway). */
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
      }
      break;
    case PX__OP_SEND:
      /* MSG_NOSIGNAL: a closed peer is PX_EPIPE, not a fatal SIGPIPE. */
      io_uring_prep_send(sqe, op->fd, op->buf + op->off, op->len - op->off,
                         MSG_NOSIGNAL);
      break;
    case PX__OP_ACCEPT:
      /* Multishot: no peer address (the streams do not keep it). */
      op->multishot = r->accept_multishot;
      if (op->multishot)
        io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL,
                                       SOCK_NONBLOCK | SOCK_CLOEXEC);
      else
        io_uring_prep_accept(sqe, op->fd, (struct sockaddr *)&op->addr,
                             &op->addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
      break;
    case PX__OP_POLL_IN:
      io_uring_prep_poll_add(sqe, op->fd, POLLIN);
      break;
    case PX__OP_CONNECT:
      io_uring_prep_connect(sqe, op->fd, (struct sockaddr *)&op->addr,
                            op->addrlen);
      break;
    default:
      return PX_EINVAL;
  }
  io_uring_sqe_set_data64(sqe, OP_BIT | (uint64_t)(uintptr_t)op);
  return 0;
}

/* Requests of the thread that polls go in with its next poll, which
 * submits a turn's worth in the same system call as its wait; those of any
 * other thread go in at once, but for the long-lived ones (hand_in). mu
 * held. */
static bool submit_later(px__reactor *r);

static int submit_if_waiting(px__reactor *r) {
  return submit_later(r) ? 0 : submit(r);
}

/* Whether a request of this thread can wait for the next poll: see
 * submit_if_waiting. mu held. */
static bool submit_later(px__reactor *r) {
  return r->waiting == 0 && r->has_poller &&
         pthread_equal(r->poller, pthread_self());
}

/*
 * A send of a thread that will not poll next: a system call is due now
 * either way, so it sends directly, as the readiness path would (and as
 * fast: a worker's write goes out before it returns, not when the driver
 * next looks at the ring); only what the socket does not take goes to the
 * ring. 1 when all went out or it failed (op->res), 0 when queued.
 *
 * The send runs without the mutex, which the caller holds (ur_submit): a
 * send over loopback runs the receiver's half of TCP too, microseconds in
 * which the poller waited for the mutex at its next turn (work stealing
 * under strace: 1.9 to 2.5 futex calls per HTTP request, most of them on
 * this mutex; 0.2 after). Nothing else touches op meanwhile: it is
 * INFLIGHT but in no ring, a stream is written by one task at a time
 * (stream.h), and its release waits for that task's futures. A write that
 * came in all the same (len grew) goes out by the ring below. Not while
 * ur_poll walks the CQ (the rest of a short send, px__op_complete): the
 * walk holds the mutex from its first CQE to the advance, so that no CQE
 * is seen twice (a look of another thread, ur_flush) and none refers to
 * a registration changed under it.
 */
static int send_now(px__reactor *r, px__op *op) {
  const unsigned char *p = op->buf + op->off;
  size_t len = op->len - op->off;
  int fd = op->fd;
  bool unlock = !r->dispatching;
  if (unlock) pthread_mutex_unlock(&r->core.mu);
  ssize_t n;
  do {
    n = px__send(fd, p, len);
  } while (n < 0 && errno == EINTR);
  int e = n < 0 ? errno : 0;
  if (unlock) pthread_mutex_lock(&r->core.mu);
  if (n > 0) op->off += (size_t)n;
  if (op->off == op->len) return 1;
  if (n < 0 && e != EAGAIN && e != EWOULDBLOCK) {
    op->res = px_err_from_errno(e);
    return 1;
  }
  int err = queue_op(r, op);
  return err == 0 ? submit(r) : err;
}

static int ur_submit(px__reactor *r, px__op *op) {
  if (op->kind == PX__OP_SEND) {
    if (!submit_later(r)) return send_now(r, op);
    if (!px__list_linked(&op->later))
      px__list_insert_tail(&r->later, &op->later);
    return 0;
  }
  int err = queue_op(r, op);
  if (err < 0 || submit_later(r)) return err;
  /* A multishot request completes for as long as the connection lives:
   * the poller's to submit (hand_in). */
  return op->multishot ? hand_in(r) : submit(r);
}

/* Queues the sends that waited for this poll. mu held. */
static void queue_later(px__reactor *r) {
  px__list *pos, *tmp;
  px__list_foreach_safe(pos, tmp, &r->later) {
    px__op *op = px__container_of(pos, px__op, later);
    px__list_remove(&op->later);
    if (queue_op(r, op) < 0) px__op_complete(r, op, -EBUSY);
  }
}

static void queue_cancel(px__reactor *r, px__op *op) {
  struct io_uring_sqe *sqe = get_sqe(r);
  if (sqe == NULL) return;
  io_uring_prep_cancel64(sqe, OP_BIT | (uint64_t)(uintptr_t)op, 0);
  io_uring_sqe_set_data64(sqe, TAG_CANCEL);
}

static void ur_cancel(px__reactor *r, px__op *op) {
  queue_cancel(r, op);
  (void)submit_if_waiting(r);
}

/* A multishot request this kernel does not know ends at once with
 * -EINVAL: clears the reactor's `multishot` flag and queues the op again,
 * one-shot. True when it did. mu held. */
static bool one_shot_from_now(px__reactor *r, px__op *op,
                              const struct io_uring_cqe *cqe, bool *multishot) {
  if ((cqe->flags & IORING_CQE_F_MORE) || cqe->res != -EINVAL ||
      op->cancelling)
    return false;
  *multishot = false;
  return queue_op(r, op) == 0;
}

/* Cancels a multishot request once `queued` arrivals wait unread in its op
 * (`limit`): what the kernel would take next stays where it is (the
 * socket, the backlog) until the reader catches up. mu held. */
static void stop_when_ahead(px__reactor *r, px__op *op,
                            const struct io_uring_cqe *cqe, size_t queued,
                            size_t limit) {
  /* Not after an end: an orphan's op is freed by then. */
  if (!(cqe->flags & IORING_CQE_F_MORE) || queued < limit || op->cancelling)
    return;
  op->cancelling = true;
  queue_cancel(r, op);
}

/* A CQE of a multishot receive. mu held. */
static int received(px__reactor *r, px__op *op, struct io_uring_cqe *cqe) {
  int res = cqe->res;
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  px__chunk *c = NULL;
  if (cqe->flags & IORING_CQE_F_BUFFER) {
    c = &r->pool.chunks[cqe->flags >> IORING_CQE_BUFFER_SHIFT];
    r->pool.held++;
    if (res > 0) {
      c->len = (uint32_t)res;
    } else {
      pool_recycle(r, c);
      c = NULL;
    }
  }
  /* A kernel before 6.0 knows the buffer ring but not multishot
   * receives: one-shot from now on (queue_op asks the pool). */
  if (one_shot_from_now(r, op, cqe, &r->pool.multishot)) return 0;
  /* -ENOBUFS: the pool ran dry (PX__RECV_RESTART): the next read asks
   * again, one-shot into the op's own buffer (queue_op). */
  if (res == PX__RECV_RESTART && !more) op->pool_dry = true;
  stop_when_ahead(r, op, cqe, px__op_received(r, op, c, res, more),
                  RECV_AHEAD);
  return 1;
}

/* A CQE of a multishot accept. mu held. */
static int accepted(px__reactor *r, px__op *op, struct io_uring_cqe *cqe) {
  /* A kernel before 5.19: one-shot accepts from now on. (A socket that
   * does not listen says -EINVAL too; its one-shot accept then reports
   * it, and this reactor's accepts stay one-shot: slower, not wrong.) */
  if (one_shot_from_now(r, op, cqe, &r->accept_multishot)) return 0;
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  stop_when_ahead(r, op, cqe, px__op_accepted(r, op, cqe->res, more),
                  ACCEPT_AHEAD);
  return 1;
}

/* Handles one CQE; returns 1 when a registration was dispatched. mu held. */
static int handle(px__reactor *r, struct io_uring_cqe *cqe) {
  uint64_t data = io_uring_cqe_get_data64(cqe);
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  if (data & REMOVE_BIT) {
    /* -EALREADY: the poll was busy with a wake-up and survived; ask again
     * (see the top of the file). -ENOENT: it had ended already. */
    if (cqe->res == -EALREADY) queue_remove(r, data & ~REMOVE_BIT);
    return 0;
  }
  if (data & OP_BIT) {
    px__op *op = (px__op *)(uintptr_t)(data & ~OP_BIT);
    int res = cqe->res;
    if (op->multishot)
      return op->kind == PX__OP_ACCEPT ? accepted(r, op, cqe)
                                       : received(r, op, cqe);
    /* Not expected (sockets are polled by io_uring itself), but a
     * request answered "would block" must simply go again; not a connect,
     * whose EAGAIN (a Unix listener's full backlog) means nothing is under
     * way, and which the readiness path reports as PX_EAGAIN too. */
    if (res == -EAGAIN && !op->cancelling && op->kind != PX__OP_CONNECT &&
        queue_op(r, op) == 0)
      return 0;
    px__op_complete(r, op, res);
    return 1;
  }
  if (data == TAG_CANCEL) return 0;
  if (data < (UINT64_C(1) << 32) && (data & 0xffu) == TAG_WAKE) {
    if (data != r->wake_tag) {
      /* A poll move_wake replaced: not drained here (the current one sees
       * the same count, and draining for it could leave it nothing to
       * report); one that slipped past its removal is removed again. */
      if (more) queue_remove(r, data);
      return 0;
    }
    px__wakeup_fd_drain(&r->core.wakeup_fd);
    if (!more) (void)queue_poll(r, r->core.wakeup_fd.rd, POLLIN, data);
    return 0;
  }
  int fd = (int)(uint32_t)data;
  uint32_t gen = (uint32_t)(data >> 32);
  void *sp = NULL;
  px__io *io = px__reactor_at(r, fd, &sp);
  slot *s = sp;
  /* A request that was removed (or replaced) since: drop its CQEs. One
   * that is still armed (F_MORE) slipped past its removal: remove it. */
  if (io == NULL || s->gen != gen) {
    if (more) queue_remove(r, data);
    return 0;
  }
  int dispatched = 0;
  if (cqe->res > 0) {
    px__io_dispatch(io, px__ready_from_poll(cqe->res));
    dispatched = 1;
  } else if (cqe->res < 0 && cqe->res != -ECANCELED) {
    /* The poll itself failed (EBADF: closed without deregistering). Tell
     * the waiters; re-arming would fail the same way. */
    px__io_dispatch(io, PX__ERROR);
    return 1;
  }
  /* The kernel ended the multishot poll (CQ overflow, ...): arm it again,
   * which reports the current state once more. */
  if (!more) (void)queue_poll(r, fd, s->mask, data);
  return dispatched;
}

/* Handles every CQE there is; returns how many dispatched a registration.
 * mu held all along, which r->dispatching tells send_now. */
static int drain_cq(px__reactor *r) {
  struct io_uring_cqe *cqe;
  unsigned head, seen = 0;
  int dispatched = 0;
  r->dispatching = true;
  io_uring_for_each_cqe(&r->ring, head, cqe) {
    dispatched += handle(r, cqe);
    seen++;
  }
  io_uring_cq_advance(&r->ring, seen);
  r->dispatching = false;
  return dispatched;
}

/*
 * Publishes the queued SQEs to the kernel without entering it (liburing's
 * flush, which io_uring_submit does before its system call). mu held, so
 * no other thread is filling an SQE meanwhile. Returns how many the kernel
 * has not consumed yet.
 */
static unsigned flush_sq(px__reactor *r) {
  struct io_uring_sq *sq = &r->ring.sq;
  unsigned tail = sq->sqe_tail;
  if (sq->sqe_head != tail) {
    sq->sqe_head = tail;
    io_uring_smp_store_release(sq->ktail, tail);
  }
  return tail - io_uring_smp_load_acquire(sq->khead);
}

/* Hands the sends waiting for the next poll, and whatever else is queued,
 * to the kernel (ops->flush). The poller's own thread takes CQEs too, as
 * a turn of its loop would (a single-threaded runtime between two
 * block_on calls: the failure of a send written behind is reported by the
 * next write, not by a poll that may never come); any other thread takes
 * none, see reactor.h. */
static int ur_flush(px__reactor *r) {
  pthread_mutex_lock(&r->core.mu);
  bool own = r->waiting == 0 && r->has_poller &&
             pthread_equal(r->poller, pthread_self());
  int err = 0;
  if (!own) {
    queue_later(r);
    err = submit(r);
  }
  pthread_mutex_unlock(&r->core.mu);
  if (own) {
    int n = ur_poll(r, 0);
    err = n < 0 ? n : 0;
  }
  return err;
}

/*
 * A new poller takes the eventfd's poll over: its completion is task work
 * of the thread that submitted it (see hand_in), and a wake-up that must
 * first wake another thread (block_on's, which made the ring, under work
 * stealing: each unpark of the driver woke it too) costs a second switch.
 * The old poll is removed and a new one, with the next tag, goes in with
 * this poll's wait. mu held.
 */
static void move_wake(px__reactor *r) {
  if (pthread_equal(r->wake_owner, pthread_self())) return;
  queue_remove(r, r->wake_tag);
  r->wake_tag = ((((r->wake_tag >> 8) + 1) & 0xffffffu) << 8) | TAG_WAKE;
  (void)queue_poll(r, r->core.wakeup_fd.rd, POLLIN, r->wake_tag);
  r->wake_owner = pthread_self();
}

static int ur_poll(px__reactor *r, int timeout_ms) {
  /* One system call per turn: what this turn's tasks queued is submitted
   * by the same io_uring_enter that waits for completions. */
  pthread_mutex_lock(&r->core.mu);
  /* Only a poll that may block names the poller: a busy worker's look
   * does not make that thread the one to submit for. */
  if (timeout_ms != 0) {
    move_wake(r);
    r->poller = pthread_self();
    r->has_poller = true;
  }
  queue_later(r);
  unsigned to_submit = flush_sq(r);
  bool ready = io_uring_cq_ready(&r->ring) > 0;
  bool wait = timeout_ms != 0 && !ready;
  /* Completions waiting as task work (COOP_FLAGS) need a trip into the
   * kernel even when this poll must not block. */
  bool run_work = !wait && !ready &&
                  (IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_TASKRUN);
  if (wait) r->waiting++;
  pthread_mutex_unlock(&r->core.mu);

  int rc = 0;
  if (to_submit > 0 || wait || run_work) {
    struct timespec t;
    struct __kernel_timespec ts;
    struct io_uring_getevents_arg arg = {.sigmask = 0,
                                         .sigmask_sz = _NSIG / 8,
                                         .pad = 0,
                                         .ts = 0};
    if (wait && timeout_ms > 0) {
      (void)px__timeout_timespec(timeout_ms, &t);
      ts.tv_sec = t.tv_sec;
      ts.tv_nsec = t.tv_nsec;
      arg.ts = (uint64_t)(uintptr_t)&ts;
    }
    unsigned flags = wait ? IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG
                     : run_work ? IORING_ENTER_GETEVENTS
                                : 0;
    rc = io_uring_enter2(r->ring.ring_fd, to_submit, wait ? 1 : 0, flags,
                         wait ? (void *)&arg : NULL,
                         wait ? sizeof(arg) : _NSIG / 8);
  }

  pthread_mutex_lock(&r->core.mu);
  if (wait) r->waiting--;
  int dispatched = drain_cq(r);
  /* Re-arms queued by handle() wait for the next turn's enter, which
   * comes soon: the tasks just woken queue their own requests too. A
   * blocking wait comes with them (see the top of ur_poll). */
  pthread_mutex_unlock(&r->core.mu);
  /* ETIME: the timeout passed; EINTR: a signal; EBUSY/EAGAIN: the CQ is
   * full (the CQEs just handled made room). None is the reactor's error. */
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY &&
      rc != -EAGAIN && dispatched == 0)
    return px_err_from_errno(-rc);
  return dispatched;
}

extern const px__reactor_ops px__epoll_ops;

const px__reactor_ops px__io_uring_ops = {
    .name = "io_uring",
    .features = PX__REACTOR_EDGE | PX__REACTOR_O1 | PX__REACTOR_FD_TABLE |
                PX__REACTOR_HANGUPS,
    .slot_size = sizeof(slot),
    .create = ur_create,
    .destroy = ur_destroy,
    .add = ur_add,
    .modify = ur_modify,
    .del = ur_del,
    .poll = ur_poll,
    .submit = ur_submit,
    .cancel = ur_cancel,
    .recycle = pool_recycle,
    .flush = ur_flush,
    /* epoll is on every Linux kernel io_uring could be missing from. */
    .fallback = &px__epoll_ops,
};
