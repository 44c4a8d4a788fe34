/*
 * The reactor core: the entry points every caller goes through, the
 * descriptor table, deferred frees, wake-up descriptors and the helpers
 * backends share. See reactors/core.h.
 */
#include "reactors/core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "api/internal/px_internal.h"
#include "platform/platform.h"
#if PX_HAVE_EVENTFD
#include <sys/eventfd.h>
#endif

#define TABLE_INITIAL_CAPACITY 64u

static int open_pipe(px__wakeup_fd *w) {
  int p[2];
  if (px__pipe(p, true) < 0) return px_err_from_errno(errno);
  w->rd = p[0];
  w->wr = p[1];
  return 0;
}

int px__wakeup_fd_open(px__wakeup_fd *w, px__wakeup_fd_kind kind) {
  w->rd = w->wr = -1;
  switch (kind) {
    case PX__WAKEUP_FD_NONE:
      return 0;
    case PX__WAKEUP_FD_EVENTFD:
#if PX_HAVE_EVENTFD
      /* One descriptor instead of two, and one read drains it. */
      w->rd = w->wr = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      return w->rd < 0 ? px_err_from_errno(errno) : 0;
#else
      return open_pipe(w);
#endif
    case PX__WAKEUP_FD_PIPE:
      return open_pipe(w);
  }
  return PX_EINVAL;
}

void px__wakeup_fd_close(px__wakeup_fd *w) {
  if (w->wr >= 0 && w->wr != w->rd) close(w->wr);
  if (w->rd >= 0) close(w->rd);
  w->rd = w->wr = -1;
}

int px__wakeup_fd_signal(const px__wakeup_fd *w) {
  /* An eventfd takes exactly 8 bytes; a pipe takes any number. */
  uint64_t one = 1;
  ssize_t n;
  do {
    n = write(w->wr, &one, sizeof(one));
  } while (n < 0 && errno == EINTR);
  /* EAGAIN: the pipe is full, so a wake-up is already pending, which is
   * all a caller needs. An eventfd's counter full (2^64 - 1 writes that
   * nobody read: an edge-triggered waiter never reads) raises no new
   * event, so it is emptied and written again. */
  if (n < 0 && errno == EAGAIN && w->rd == w->wr) {
    px__wakeup_fd_drain(w);
    n = write(w->wr, &one, sizeof(one));
  }
  if (n < 0 && errno != EAGAIN) return px_err_from_errno(errno);
  return 0;
}

void px__wakeup_fd_drain(const px__wakeup_fd *w) {
  uint64_t buf[8];
  for (;;) {
    ssize_t n = read(w->rd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    /* A short read emptied it: an eventfd hands over its whole counter in
     * one read, and a pipe returns less than asked only when it has no
     * more. A wake-up written after this read leaves rd readable, so the
     * next wait returns at once and nothing is lost. */
    if (n < (ssize_t)sizeof buf) return;
  }
}

px__reactor *px__reactor_new(size_t size, px__wakeup_fd_kind kind, int *err) {
  px__reactor_core *c = px__calloc(size);
  if (c == NULL) {
    *err = PX_ENOMEM;
    return NULL;
  }
  if (pthread_mutex_init(&c->mu, NULL) != 0) {
    px__free(c, size);
    *err = PX_ENOMEM;
    return NULL;
  }
  atomic_init(&c->retired, NULL);
  px__list_init(&c->registered);
  px__list_init(&c->inflight);
  *err = px__wakeup_fd_open(&c->wakeup_fd, kind);
  if (*err < 0) {
    pthread_mutex_destroy(&c->mu);
    px__free(c, size);
    return NULL;
  }
  /* The core is the first member of struct px__reactor (core.h). */
  return (px__reactor *)(void *)c;
}

static void free_retired(px__reactor_core *c);

void px__reactor_free(px__reactor *r, size_t size) {
  px__reactor_core *c = px__reactor_core_of(r);
  free_retired(c);
  px__op_spares_free(r);
  px__fd_table_free(&c->table);
  px__wakeup_fd_close(&c->wakeup_fd);
  pthread_mutex_destroy(&c->mu);
  px__free(c, size);
}

/* ---- Entry points ----------------------------------------------------- */

typedef px__reactor_entry entry;

static size_t entry_size(const px__reactor_ops *ops) {
  size_t a = sizeof(void *);
  return sizeof(entry) + (ops->slot_size + a - 1) / a * a;
}

int px__reactor_create(const px__reactor_ops *ops, const px_config *cfg,
                       px__reactor **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  if (ops == NULL) return PX_EINVAL;
  px__reactor *r = NULL;
  int err = ops->create(cfg, &r);
  /* Only a refusal moves on: any other failure (no memory, bad limits)
   * would fail the fallback alike and its error is the one to report. */
  while ((err == PX_ENOSYS || err == PX_EPERM) && ops->fallback != NULL) {
    ops = ops->fallback;
    err = ops->create(cfg, &r);
  }
  if (err < 0) return err;
  px__reactor_core *c = px__reactor_core_of(r);
  c->ops = ops;
  if ((ops->features & PX__REACTOR_FD_TABLE) &&
      px__fd_table_init(&c->table, entry_size(ops)) < 0) {
    ops->destroy(r);
    return PX_ENOMEM;
  }
  *out = r;
  return 0;
}

void px__reactor_destroy(px__reactor *r) {
  if (r == NULL) return;
  px__reactor_core_of(r)->ops->destroy(r);
}

int px__reactor_poll(px__reactor *r, int timeout_ms) {
  if (r == NULL) return PX_EINVAL;
  px__reactor_core *c = px__reactor_core_of(r);
  /* One relaxed load when nothing was closed: the common case. */
  if (atomic_load_explicit(&c->retired, memory_order_relaxed) != NULL)
    free_retired(c);
  return c->ops->poll(r, timeout_ms);
}

int px__reactor_flush(px__reactor *r) {
  if (r == NULL) return PX_EINVAL;
  px__reactor_core *c = px__reactor_core_of(r);
  return c->ops->flush != NULL ? c->ops->flush(r) : 0;
}

int px__reactor_wakeup(px__reactor *r) {
  if (r == NULL) return PX_EINVAL;
  px__reactor_core *c = px__reactor_core_of(r);
  if (c->ops->wakeup != NULL) return c->ops->wakeup(r);
  return px__wakeup_fd_signal(&c->wakeup_fd);
}

const px__reactor_ops *px__reactor_ops_of(const px__reactor *r) {
  return ((const px__reactor_core *)(const void *)r)->ops;
}

/* ---- The descriptor table --------------------------------------------- */

static bool has_table(const px__reactor_core *c) {
  return (c->ops->features & PX__REACTOR_FD_TABLE) != 0;
}

int px__reactor_table_end(px__reactor *r) {
  size_t cap = px__reactor_core_of(r)->table.cap;
  return cap > INT_MAX ? INT_MAX : (int)cap;
}

void px__reactor_unlock(px__reactor_core *c, bool repoll) {
  bool wake = repoll && c->polling;
  pthread_mutex_unlock(&c->mu);
  /* Outside the mutex: the poller takes it as soon as it wakes. */
  if (wake) (void)px__wakeup_fd_signal(&c->wakeup_fd);
}

int px__reactor_add(px__reactor *r, px__io *io, unsigned interest) {
  px__reactor_core *c = px__reactor_core_of(r);
  const px__reactor_ops *ops = c->ops;
  if (!has_table(c)) {
    int err = ops->add(r, io, interest, NULL);
    if (err == 0) {
      io->interest = interest;
      pthread_mutex_lock(&c->mu);
      px__list_insert_tail(&c->registered, &io->registered);
      pthread_mutex_unlock(&c->mu);
    }
    return err;
  }
  /* A descriptor closed before registration would make select fail every
   * wait with EBADF and poll report POLLNVAL forever: refuse it here. */
  if (fcntl(io->fd, F_GETFD) < 0) return px_err_from_errno(errno);
  pthread_mutex_lock(&c->mu);
  int err = 0;
  entry *e = px__fd_table_slot(&c->table, io->fd);
  if (e == NULL) {
    err = PX_ENOMEM;
  } else if (e->io != NULL) {
    /* Another registration of the same number: its owner has not
     * deregistered it yet. */
    err = PX_EBUSY;
  } else {
    memset(e->slot, 0, c->table.elem_size - sizeof(entry));
    err = ops->add(r, io, interest, e->slot);
    if (err == 0) {
      e->io = io;
      io->interest = interest;
      px__list_insert_tail(&c->registered, &io->registered);
    }
  }
  px__reactor_unlock(c, err == 0 && interest != 0);
  return err;
}

int px__reactor_modify(px__reactor *r, px__io *io, unsigned interest) {
  px__reactor_core *c = px__reactor_core_of(r);
  const px__reactor_ops *ops = c->ops;
  if (!has_table(c)) {
    if (interest == io->interest) return 0;
    int err = ops->modify(r, io, interest, NULL);
    if (err == 0) io->interest = interest;
    return err;
  }
  pthread_mutex_lock(&c->mu);
  int err = 0;
  bool widened = false;
  void *slot = px__reactor_lookup(r, (uintptr_t)io->fd, io);
  if (slot == NULL) {
    err = PX_ENOENT;
  } else if (interest != io->interest) {
    /* A poller blocked in another thread waits on what it copied before
     * this change; only a wider interest needs it to start over. */
    widened = (interest & ~io->interest) != 0;
    if (ops->modify != NULL) err = ops->modify(r, io, interest, slot);
    if (err == 0) io->interest = interest;
  }
  px__reactor_unlock(c, err == 0 && widened);
  return err;
}

void px__reactor_del(px__reactor *r, px__io *io) {
  px__reactor_core *c = px__reactor_core_of(r);
  /* Errors are ignored: the descriptor is about to be closed, and close
   * removes it from every interest list anyway. */
  if (!has_table(c)) {
    (void)c->ops->del(r, io, NULL);
    pthread_mutex_lock(&c->mu);
    if (px__list_linked(&io->registered)) px__list_remove(&io->registered);
    pthread_mutex_unlock(&c->mu);
    return;
  }
  pthread_mutex_lock(&c->mu);
  if (px__list_linked(&io->registered)) px__list_remove(&io->registered);
  entry *e = px__fd_table_at(&c->table, io->fd);
  bool was_registered = false;
  if (e != NULL && e->io == io) {
    e->io = NULL;
    was_registered = true;
    /* Under the mutex, which the poller holds while it dispatches: once
     * this returns, no dispatch reaches io. */
    (void)c->ops->del(r, io, e->slot);
  }
  if (io->op[PX__OP_IN] != NULL || io->op[PX__OP_OUT] != NULL)
    px__io_release_ops(r, io);
  /* A poller blocked in select or poll in another thread holds a kernel
   * reference to every file it copied into its wait: the close that
   * follows would not release the socket (no FIN reaches the peer) until
   * that wait ends, which on an idle runtime may be never. Wake it so it
   * lets go. Even when io->interest is 0 now: dropping the waiting future
   * narrows the interest (without a wake) just before the close, while the
   * blocked poller still watches the old one. */
  px__reactor_unlock(c, was_registered);
}

px__io *px__reactor_first_registered(px__reactor *r) {
  px__reactor_core *c = px__reactor_core_of(r);
  pthread_mutex_lock(&c->mu);
  px__list *n = px__list_first(&c->registered);
  pthread_mutex_unlock(&c->mu);
  return n != NULL ? px__container_of(n, px__io, registered) : NULL;
}

/* ---- Deferred frees --------------------------------------------------- */

/*
 * A backend whose events name registrations (by pointer: epoll's data.ptr,
 * kqueue's udata; or by a descriptor whose table entry the poller compares
 * with the pointer it copied before waiting: poll, kqueue) sets
 * PX__REACTOR_DEFER_FREE. (select's answers carry only the two directions,
 * for which a spurious readiness is harmless: the future's syscall says
 * EAGAIN. A hang-up is not: it stays.)
 *
 * A pointer compare alone cannot tell a closed registration from a new one
 * that was given the same memory, and the allocator's per-thread cache
 * (api/alloc.c) hands the block freed last to the next allocation of its
 * size: close a socket on one worker, accept on the same worker, and the
 * new registration has the old one's address and, being the lowest free
 * number, its descriptor too. A poller still holding an event of the old
 * socket (its hang-up, say) would deliver it to the new one. So closed
 * registrations wait on a list that px__reactor_poll empties before it
 * waits: polls never overlap, so by then no batch of events can name them,
 * and until then their memory is nobody else's. The list is a lock-free
 * stack: closing pushes, the poller takes it whole with one exchange, and a
 * poll with nothing to free costs one load.
 */
void px__io_retire(px__reactor *r, px__io *io, void *mem, size_t size) {
  if (r == NULL ||
      !(px__reactor_core_of(r)->ops->features & PX__REACTOR_DEFER_FREE)) {
    px__free(mem, size);
    return;
  }
  px__reactor_core *c = px__reactor_core_of(r);
  io->retire_mem = mem;
  io->retire_size = size;
  px__io *head = atomic_load_explicit(&c->retired, memory_order_relaxed);
  do {
    io->retire_next = head;
  } while (!atomic_compare_exchange_weak_explicit(
      &c->retired, &head, io, memory_order_release, memory_order_relaxed));
}

static void free_retired(px__reactor_core *c) {
  px__io *io = atomic_exchange_explicit(&c->retired, NULL, memory_order_acquire);
  while (io != NULL) {
    px__io *next = io->retire_next;
    px__free(io->retire_mem, io->retire_size);
    io = next;
  }
}

/* ---- Timeouts --------------------------------------------------------- */

struct timespec *px__timeout_timespec(int timeout_ms, struct timespec *ts) {
  if (timeout_ms < 0) return NULL;
  ts->tv_sec = timeout_ms / 1000;
  ts->tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
  return ts;
}

struct timeval *px__timeout_timeval(int timeout_ms, struct timeval *tv) {
  struct timespec ts;
  if (px__timeout_timespec(timeout_ms, &ts) == NULL) return NULL;
  tv->tv_sec = ts.tv_sec;
  tv->tv_usec = (suseconds_t)(ts.tv_nsec / 1000);
  return tv;
}

unsigned px__ready_from_poll(int revents) {
  unsigned ready = 0;
  if (revents & POLLIN) ready |= PX__READABLE;
  if (revents & POLLOUT) ready |= PX__WRITABLE;
#ifdef POLLRDHUP
  /* Linux: a half-close by the peer; the next read returns 0, so it is
   * readable too. */
  if (revents & POLLRDHUP) ready |= PX__READABLE | PX__HUP;
#endif
  if (revents & POLLHUP) ready |= PX__HUP;
  /* POLLNVAL: the descriptor was closed without being deregistered. */
  if (revents & (POLLERR | POLLNVAL)) ready |= PX__ERROR;
  return ready;
}

/* Grows t to at least `need` elements; false when memory ran out. */
static bool table_grow(px__fd_table *t, size_t need) {
  if (need <= t->cap) return true;
  size_t n = t->cap ? t->cap : TABLE_INITIAL_CAPACITY;
  while (n < need) n *= 2;
  unsigned char *p = px__calloc(n * t->elem_size);
  if (p == NULL) return false;
  if (t->slots != NULL) memcpy(p, t->slots, t->cap * t->elem_size);
  px__free(t->slots, t->cap * t->elem_size);
  t->slots = p;
  t->cap = n;
  return true;
}

int px__fd_table_init(px__fd_table *t, size_t elem_size) {
  t->slots = NULL;
  t->cap = 0;
  t->elem_size = elem_size;
  return table_grow(t, TABLE_INITIAL_CAPACITY) ? 0 : PX_ENOMEM;
}

void px__fd_table_free(px__fd_table *t) {
  px__free(t->slots, t->cap * t->elem_size);
  t->slots = NULL;
  t->cap = 0;
}

void *px__fd_table_at(const px__fd_table *t, int fd) {
  if (fd < 0 || (size_t)fd >= t->cap) return NULL;
  return t->slots + (size_t)fd * t->elem_size;
}

void *px__fd_table_slot(px__fd_table *t, int fd) {
  if (fd < 0 || !table_grow(t, (size_t)fd + 1)) return NULL;
  return t->slots + (size_t)fd * t->elem_size;
}
