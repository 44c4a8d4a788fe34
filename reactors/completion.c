/*
 * Completion-style operations (reactor.h, px__op): what the I/O layer does
 * over a backend that performs reads, writes and accepts itself (io_uring)
 * instead of reporting readiness.
 *
 * The rule that makes a dropped future safe: the kernel only ever sees
 * memory of the op, which belongs to the registration (px__io.op) and
 * outlives any future. A read receives into the op's buffer, or into
 * buffers of the backend's pool queued in the op (px__chunk, a multishot
 * receive), and copies out; bytes the caller had no room for, or that
 * arrive after the future was dropped, stay in the op for the next read.
 * An accept's connection that completes after its future was dropped
 * waits in the op for the next accept, as do those a multishot accept
 * brings ahead of the accepts (queued in the op's buffer). A write copies
 * the caller's bytes into the op and is done (write behind, like a socket
 * buffer): the next write, flush or shutdown waits until they are out and
 * reports a failure. A buffer is the op's only while bytes wait in it
 * (spare_take). When the registration goes
 * (close, or the runtime freed first) an op in flight is orphaned: a read
 * or an accept is cancelled, a write is let finish and closes the
 * descriptor after it, as close(2) lets the kernel's socket buffer drain;
 * the backend frees an orphan at its completion, and its destroy cancels
 * and waits for whatever is still in flight.
 *
 * Locking: every field but the buffer's bytes is guarded by the core's
 * mutex of op->reactor, which the backend holds while it handles
 * completions. Wakers are cloned and dropped outside it (dropping a task's
 * last reference runs foreign code that may close a stream, which takes
 * the mutex); waking under it is what every backend's dispatch does.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "reactors/core.h"
#include "reactors/reactor.h"

#define MIN_BUF PX__OP_MIN_BUF
#define MAX_BUF 65536u
/* Spare write buffers a reactor keeps (256 KiB): enough for the sends of
 * one turn of a busy server to reuse those of the last. */
#define MAX_SPARE 64u

static pthread_mutex_t *mu_of(px__op *op) {
  return &px__reactor_core_of(op->reactor)->mu;
}

void px__op_lock(px__op *op) { pthread_mutex_lock(mu_of(op)); }
void px__op_unlock(px__op *op) { pthread_mutex_unlock(mu_of(op)); }

px__list *px__reactor_inflight(px__reactor *r) {
  return &px__reactor_core_of(r)->inflight;
}

static size_t buf_size(size_t want) {
  if (want < MIN_BUF) return MIN_BUF;
  return want > MAX_BUF ? MAX_BUF : want;
}

/* Gives op's unread chunks back to the pool. Mutex held. */
static void recycle_chunks(px__op *op) {
  while (op->chunks != NULL) {
    px__chunk *c = op->chunks;
    op->chunks = c->next;
    px__reactor_ops_of(op->reactor)->recycle(op->reactor, c);
  }
  op->chunks_end = NULL;
  op->nchunks = 0;
}

/* ACCEPT (or its POLL_IN wait): whether a multishot accept's connections
 * are queued in buf, as ints in [off, len). */
static bool has_accepted(const px__op *op) {
  return (op->kind == PX__OP_ACCEPT || op->kind == PX__OP_POLL_IN) &&
         op->off < op->len;
}

/* Closes the connections queued in op: nobody will take them, and their
 * clients should hear so now, not when the op is freed. */
static void close_accepted(px__op *op) {
  while (has_accepted(op)) {
    int fd;
    memcpy(&fd, op->buf + op->off, sizeof fd);
    op->off += sizeof fd;
    close(fd);
  }
}

/* Queues connection fd in op's buffer, which grows as needed (a multishot
 * accept is stopped long before it matters: io_uring.c). false: no memory. */
static bool queue_accepted(px__op *op, int fd) {
  if (op->len + sizeof fd > op->cap && op->off > 0) {
    memmove(op->buf, op->buf + op->off, op->len - op->off);
    op->len -= op->off;
    op->off = 0;
  }
  if (op->len + sizeof fd > op->cap) {
    size_t cap = op->cap == 0 ? 16 * sizeof fd : 2 * op->cap;
    unsigned char *nb = px__alloc(cap);
    if (nb == NULL) return false;
    if (op->len > 0) memcpy(nb, op->buf, op->len);
    if (op->buf != NULL) px__free(op->buf, op->cap);
    op->buf = nb;
    op->cap = cap;
  }
  memcpy(op->buf + op->len, &fd, sizeof fd);
  op->len += sizeof fd;
  return true;
}

/*
 * An op's buffer is the op's only while bytes are in it: a send's until
 * they are out, a one-shot receive's until they were read. Then it goes
 * back to the reactor's spares (or, beyond those or larger than MIN_BUF,
 * to the allocator), and the next write or one-shot receive takes one. An
 * idle connection then holds no buffer, whatever it did before (a
 * receive falls back to one-shot ones while the pool is short), and a
 * server's sends cycle through a few warm buffers instead of one per
 * connection. Mutex held for both.
 */
/* The spares are a stack linked through each buffer's first bytes. */
static void *spare_pop(px__reactor_core *c) {
  void *b = c->spare_bufs;
  memcpy(&c->spare_bufs, b, sizeof(void *));
  c->nspare--;
  return b;
}

static int spare_take(px__op *op) {
  px__reactor_core *c = px__reactor_core_of(op->reactor);
  op->buf = op->cap == MIN_BUF && c->spare_bufs != NULL ? spare_pop(c)
                                                       : px__alloc(op->cap);
  return op->buf != NULL ? 0 : PX_ENOMEM;
}

static void spare_give(px__op *op) {
  px__reactor_core *c = px__reactor_core_of(op->reactor);
  if (op->buf == NULL) return;
  if (op->cap == MIN_BUF && c->nspare < MAX_SPARE) {
    memcpy(op->buf, &c->spare_bufs, sizeof(void *));
    c->spare_bufs = op->buf;
    c->nspare++;
  } else {
    px__free(op->buf, op->cap);
  }
  /* op->cap stays: px__op_get reads it without the mutex (its owner's
   * thread, the only one that changes it, and only while the op is idle),
   * so the next buffer is made that size, as large as the largest
   * operation so far asked for. */
  op->buf = NULL;
}

void px__op_spares_free(px__reactor *r) {
  px__reactor_core *c = px__reactor_core_of(r);
  while (c->spare_bufs != NULL) px__free(spare_pop(c), MIN_BUF);
}

/* A send's bytes are all out (or failed): the op is empty again. */
static void send_done(px__op *op) {
  op->off = op->len = 0;
  spare_give(op);
}

/* Mutex held when it has chunks (every caller but a failed px__op_get). */
static void op_free(px__op *op) {
  recycle_chunks(op);
  close_accepted(op);
  if (op->buf != NULL) px__free(op->buf, op->cap);
  px__free(op, sizeof(*op));
}

int px__op_buffer(px__op *op) {
  return op->buf == NULL && op->cap > 0 ? spare_take(op) : 0;
}

px__op *px__op_get(px__io *io, int slot, px__op_kind kind, size_t want) {
  px__op *op = io->op[slot];
  size_t cap =
      kind == PX__OP_ACCEPT || kind == PX__OP_CONNECT ? 0 : buf_size(want);
  if (op == NULL) {
    op = px__calloc(sizeof(*op));
    if (op == NULL) return NULL;
    /* A receive's buffer is made when a one-shot receive needs it
     * (px__op_buffer): one into the backend's pool needs none, and an idle
     * connection then costs no buffer. A send's is taken by each write
     * that finds none (spare_take). */
    if (cap > 0 && kind != PX__OP_RECV && kind != PX__OP_SEND &&
        (op->buf = px__alloc(cap)) == NULL) {
      px__free(op, sizeof(*op));
      return NULL;
    }
    op->cap = cap;
    op->kind = kind;
    op->fd = io->fd;
    op->reactor = io->reactor;
    io->op[slot] = op;
    return op;
  }
  /* Grow an idle buffer that is smaller than the caller's: a 64 KiB write
   * then goes out in one send, not sixteen. Only the owner's thread gets
   * here (one reader, one writer), and an idle op is not the kernel's. */
  if (cap > op->cap) {
    px__op_lock(op);
    bool idle = op->state == PX__OP_IDLE && !op->has_result &&
                op->off >= op->len;
    px__op_unlock(op);
    if (idle && op->buf == NULL) {
      op->cap = cap; /* not made yet: made this size */
    } else if (idle) {
      unsigned char *nb = px__alloc(cap);
      if (nb != NULL) {
        px__free(op->buf, op->cap);
        op->buf = nb;
        op->cap = cap;
        op->off = op->len = 0;
      }
    }
  }
  return op;
}

int px__op_submit(px__op *op) {
  op->state = PX__OP_INFLIGHT;
  op->has_result = false;
  op->cancelling = false;
  int rc = op->reactor == NULL ? PX_EINVAL
                               : px__reactor_ops_of(op->reactor)->submit(
                                     op->reactor, op);
  if (rc != 0) {
    /* A failure, or a send the backend finished at once (rc 1): either
     * way nothing is in flight. */
    op->state = PX__OP_IDLE;
    if (rc > 0) send_done(op);
    return rc < 0 ? rc : 0;
  }
  px__list_insert_tail(px__reactor_inflight(op->reactor), &op->link);
  return 0;
}

/* Mutex held: swaps *w into op's waker slot unless it holds the same
 * target already; the caller drops *w (the old one) after unlocking. */
static void swap_waker(px__op *op, px_waker *w) {
  if (px_waker_will_wake(&op->waker, w)) return;
  px_waker old = op->waker;
  op->waker = *w;
  *w = old;
}

/* Ends an orphan: what the kernel brought is released with it. */
static void orphan_done(px__op *op, int res) {
  if (op->kind == PX__OP_ACCEPT && res >= 0) close(res);
  if (op->kind == PX__OP_SEND) {
    if (op->shut_wr && res >= 0) (void)shutdown(op->fd, SHUT_WR);
    if (op->close_fd) close(op->fd);
  }
  px_waker_drop(&op->waker); /* empty: its future was dropped before */
  op_free(op);
}

void px__op_complete(px__reactor *r, px__op *op, int res) {
  /* The rest of a short send, and what was written while it was in
   * flight, go out before anyone hears of it. A send being cancelled
   * (destroy) stops here. */
  if (op->kind == PX__OP_SEND && res > 0 && !op->cancelling) {
    op->off += (size_t)res;
    if (op->off < op->len) {
      int rc = px__reactor_ops_of(r)->submit(r, op);
      if (rc == 0) return;
      if (rc < 0) res = -EIO; /* else sent at once, or op->res says why not */
    }
  }
  if (px__list_linked(&op->link)) px__list_remove(&op->link);
  op->state = PX__OP_IDLE;
  if (op->orphan) {
    orphan_done(op, res);
    return;
  }
  if (op->kind == PX__OP_SEND) {
    /* Sent: only a failure is kept, for the next write to report. */
    if (res < 0) op->res = px_err_from_errno(-res);
    send_done(op);
    if (op->shut_wr && res >= 0 && shutdown(op->fd, SHUT_WR) < 0)
      op->res = px_err_from_errno(errno);
    op->shut_wr = false;
  } else {
    op->res = res;
    op->has_result = true;
  }
  px_waker_wake(&op->waker);
}

/* A multishot request ended (no IORING_CQE_F_MORE): its op is idle, and
 * `res` becomes the op's result when `is_result`, except -ECANCELED: the
 * backend stopped it because enough was queued, and the next call asks
 * again. Returns false when the op was an orphan's, freed now. */
static bool end_multishot(px__op *op, int res, bool is_result) {
  if (px__list_linked(&op->link)) px__list_remove(&op->link);
  op->state = PX__OP_IDLE;
  op->multishot = false;
  if (op->orphan) {
    orphan_done(op, res);
    return false;
  }
  if (is_result && res != -ECANCELED) {
    op->res = res;
    op->has_result = true;
  }
  return true;
}

size_t px__op_received(px__reactor *r, px__op *op, px__chunk *c, int res,
                       bool more) {
  if (c != NULL) {
    c->next = NULL;
    c->off = 0;
    if (op->orphan) {
      px__reactor_ops_of(r)->recycle(r, c); /* nobody will read it */
    } else {
      *(op->chunks_end != NULL ? op->chunks_end : &op->chunks) = c;
      op->chunks_end = &c->next;
      op->nchunks++;
    }
  }
  /* The request ended: the next read asks again, unless it ended the
   * stream (after the chunks before it are read); a restart is no end. */
  if (!more && !end_multishot(op, res, res != PX__RECV_RESTART && res <= 0))
    return 0;
  if (c != NULL || !more) px_waker_wake(&op->waker);
  return op->nchunks;
}

size_t px__op_accepted(px__reactor *r, px__op *op, int res, bool more) {
  (void)r;
  /* A connection nobody will take, or that there is no memory to keep,
   * is closed: its client hears so at once instead of waiting. */
  if (res >= 0 && (op->orphan || !queue_accepted(op, res))) close(res);
  /* Ended: the next accept that finds the queue empty starts another,
   * unless it failed. (A connection in res is handled above.) */
  if (!more && !end_multishot(op, res < 0 ? res : -ECANCELED, res < 0))
    return 0;
  if (res >= 0 || !more) px_waker_wake(&op->waker);
  return (op->len - op->off) / sizeof(int);
}

void px__io_release_ops(px__reactor *r, px__io *io) {
  for (int i = 0; i < 2; i++) {
    px__op *op = io->op[i];
    if (op == NULL) continue;
    io->op[i] = NULL;
    px_waker_drop(&op->waker); /* net.h: its futures were dropped first */
    close_accepted(op);
    if (op->state == PX__OP_IDLE) {
      /* A connection accepted for nobody goes with the listener. */
      if (op->kind == PX__OP_ACCEPT && op->has_result && op->res >= 0)
        close(op->res);
      op_free(op);
      continue;
    }
    op->orphan = true;
    if (op->kind == PX__OP_SEND) {
      /* Bytes a write already reported as written still go out; the
       * descriptor stays open (and its number taken) until they have. */
      op->close_fd = true;
      io->fd_lingers = true;
    } else if (!op->cancelling) {
      op->cancelling = true;
      px__reactor_ops_of(r)->cancel(r, op);
    }
  }
}

/* ---- The I/O layer's side -------------------------------------------- */

/* Copies what op holds unread into buf. Once all is taken the buffer goes
 * back (spare_give): nothing is in flight into it while bytes wait there,
 * and a completed receive's op is idle. Mutex held. */
static size_t take_bytes(px__op *op, void *buf, size_t len) {
  size_t avail = op->len - op->off;
  size_t n = avail < len ? avail : len;
  if (n > 0) memcpy(buf, op->buf + op->off, n); /* else op->buf may be NULL */
  op->off += n;
  if (op->off >= op->len) spare_give(op);
  return n;
}

/*
 * Runs `step` on op under the mutex with cx's waker at hand: a step that
 * answers PX_PENDING leaves the waker for op's completion. The clone and
 * the drop of whatever waker it replaces happen outside the mutex.
 */
typedef struct step_args {
  void *buf;
  size_t len;
  size_t *n;
  int *fd;
} step_args;

static int with_op(px__op *op, px_context *cx,
                   int (*step)(px__op *op, step_args *a), step_args *a) {
  px_waker w = px_waker_clone(cx->waker);
  px__op_lock(op);
  int rc = step(op, a);
  if (rc == PX_PENDING) swap_waker(op, &w);
  px__op_unlock(op);
  px_waker_drop(&w);
  return rc;
}

/* Submits an idle op: PX_PENDING, or the submission's error. */
static int start(px__op *op) {
  int err = px__op_submit(op);
  return err < 0 ? err : PX_PENDING;
}

/* Copies what op's chunks hold into buf, as much as fits, and gives each
 * emptied one back. Mutex held. */
static size_t take_chunks(px__op *op, unsigned char *buf, size_t len) {
  size_t n = 0;
  while (n < len && op->chunks != NULL) {
    px__chunk *c = op->chunks;
    size_t k = c->len - c->off;
    if (k > len - n) k = len - n;
    memcpy(buf + n, c->data + c->off, k);
    c->off += (uint32_t)k;
    n += k;
    if (c->off < c->len) break;
    op->chunks = c->next;
    op->nchunks--;
    if (op->chunks == NULL) op->chunks_end = NULL;
    px__reactor_ops_of(op->reactor)->recycle(op->reactor, c);
  }
  return n;
}

static int read_step(px__op *op, step_args *a) {
  if (op->off < op->len) {
    *a->n = take_bytes(op, a->buf, a->len);
    return PX_READY;
  }
  if (op->chunks != NULL) {
    *a->n = take_chunks(op, a->buf, a->len);
    return PX_READY;
  }
  if (op->has_result) {
    op->has_result = false;
    if (op->res < 0) return px_err_from_errno(-op->res);
    op->off = 0;
    op->len = (size_t)op->res; /* 0: end of stream */
    *a->n = take_bytes(op, a->buf, a->len);
    return PX_READY;
  }
  if (op->state != PX__OP_IDLE) return PX_PENDING;
  op->off = op->len = 0;
  return start(op);
}

int px__op_read(px__io *io, px_context *cx, void *buf, size_t len,
                size_t *n) {
  px__op *op = px__op_get(io, PX__OP_IN, PX__OP_RECV, len);
  if (op == NULL) return PX_ENOMEM;
  step_args a = {buf, len, n, NULL};
  return with_op(op, cx, read_step, &a);
}

static int write_step(px__op *op, step_args *a) {
  /* The bytes of an earlier write failed to go out. The failure stays: a
   * connection that could not send (reset, shut down) never sends again,
   * and writing behind must not make later writes look fine. */
  if (op->res < 0) return op->res;
  bool idle = op->state == PX__OP_IDLE;
  if (idle) op->off = op->len = 0;
  /* While a send is in flight the kernel reads [off, its end) only: what
   * is written meanwhile goes after len, and out with the next send. */
  size_t room = op->cap - op->len;
  if (room == 0) return PX_PENDING;
  if (op->buf == NULL) {
    int err = spare_take(op);
    if (err < 0) return err;
  }
  size_t k = a->len < room ? a->len : room;
  memcpy(op->buf + op->len, a->buf, k);
  op->len += k;
  if (idle) {
    int err = px__op_submit(op);
    if (err < 0) {
      op->len -= k;
      return err;
    }
    /* Sent at once by the backend, and failed there. */
    if (op->res < 0) return op->res;
  }
  *a->n = k;
  return PX_READY;
}

int px__op_write(px__io *io, px_context *cx, const void *buf, size_t len,
                 size_t *n) {
  px__op *op = px__op_get(io, PX__OP_OUT, PX__OP_SEND, len);
  if (op == NULL) return PX_ENOMEM;
  step_args a = {(void *)(uintptr_t)buf, len, n, NULL};
  return with_op(op, cx, write_step, &a);
}

static int flush_step(px__op *op, step_args *a) {
  (void)a;
  if (op->state != PX__OP_IDLE) return PX_PENDING;
  return op->res < 0 ? op->res : PX_READY; /* stays, as in write_step */
}

int px__op_flush(px__io *io, px_context *cx) {
  px__op *op = io->op[PX__OP_OUT];
  if (op == NULL) return PX_READY;
  return with_op(op, cx, flush_step, NULL);
}

bool px__op_shutdown_later(px__io *io) {
  px__op *op = io->op[PX__OP_OUT];
  if (op == NULL) return false;
  px__op_lock(op);
  bool later = op->state != PX__OP_IDLE;
  if (later) op->shut_wr = true;
  px__op_unlock(op);
  return later;
}

static int accept_step(px__op *op, step_args *a) {
  if (op->has_result && op->kind == PX__OP_POLL_IN) {
    /* The wait of px__op_accept_wait ended: accept again. */
    op->has_result = false;
    op->kind = PX__OP_ACCEPT;
  }
  if (has_accepted(op)) {
    /* Accepted ahead by a multishot accept, before any failure after. */
    memcpy(a->fd, op->buf + op->off, sizeof *a->fd);
    op->off += sizeof *a->fd;
    if (op->off == op->len) op->off = op->len = 0;
    return PX_READY;
  }
  if (op->has_result) {
    op->has_result = false;
    if (op->res < 0) return px_err_from_errno(-op->res);
    *a->fd = op->res;
    return PX_READY;
  }
  if (op->state != PX__OP_IDLE) return PX_PENDING;
  op->addrlen = sizeof(op->addr);
  return start(op);
}

int px__op_accept(px__io *io, px_context *cx, int *fd) {
  px__op *op = px__op_get(io, PX__OP_IN, PX__OP_ACCEPT, 0);
  if (op == NULL) return PX_ENOMEM;
  step_args a = {NULL, 0, NULL, fd};
  return with_op(op, cx, accept_step, &a);
}

static int accept_wait_step(px__op *op, step_args *a) {
  (void)a;
  if (op->state != PX__OP_IDLE || op->has_result) return PX_PENDING;
  op->kind = PX__OP_POLL_IN;
  int rc = start(op);
  if (rc < 0) op->kind = PX__OP_ACCEPT;
  return rc;
}

int px__op_accept_wait(px__io *io, px_context *cx) {
  px__op *op = io->op[PX__OP_IN];
  if (op == NULL) return PX_EINVAL;
  return with_op(op, cx, accept_wait_step, NULL);
}

static int connect_step(px__op *op, step_args *a) {
  if (op->has_result) {
    op->has_result = false;
    return op->res < 0 ? px_err_from_errno(-op->res) : PX_READY;
  }
  if (op->state != PX__OP_IDLE) return PX_PENDING;
  if (a->len > sizeof(op->addr)) return PX_EINVAL;
  memcpy(&op->addr, a->buf, a->len);
  op->addrlen = (socklen_t)a->len;
  return start(op);
}

int px__op_connect(px__io *io, px_context *cx, const struct sockaddr *addr,
                   socklen_t len) {
  px__op *op = px__op_get(io, PX__OP_OUT, PX__OP_CONNECT, 0);
  if (op == NULL) return PX_ENOMEM;
  if (op->kind != PX__OP_CONNECT) return PX_EINVAL; /* already writing */
  step_args a = {(void *)(uintptr_t)addr, len, NULL, NULL};
  int rc = with_op(op, cx, connect_step, &a);
  if (rc == PX_PENDING) return rc;
  /* Over, or never started: the slot becomes the writes' (a fresh op with
   * a buffer, made by the first write). */
  px__op_lock(op);
  bool idle = op->state == PX__OP_IDLE;
  px_waker w = px_waker_take(&op->waker);
  if (idle) io->op[PX__OP_OUT] = NULL;
  px__op_unlock(op);
  px_waker_drop(&w);
  if (idle) op_free(op);
  return rc;
}

void px__op_forget(px__io *io, int slot) {
  px__op *op = io->op[slot];
  if (op == NULL) return;
  px__op_lock(op);
  px_waker w = px_waker_take(&op->waker);
  px__op_unlock(op);
  px_waker_drop(&w);
}
