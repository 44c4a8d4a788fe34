/*
 * What the reactor backends share besides px__io: the reactor core (mutex
 * and wake-up descriptor), wake-up descriptors, and descriptor tables. See
 * reactors/core.h.
 */
#include "reactors/core.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "internal/px_internal.h"
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
  /* EAGAIN: the pipe is full or the counter far from zero, so a wake-up is
   * already pending, which is all a caller needs. */
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
  if (pthread_mutex_init(&c->list_mu, NULL) != 0) {
    pthread_mutex_destroy(&c->mu);
    px__free(c, size);
    *err = PX_ENOMEM;
    return NULL;
  }
  px__list_init(&c->registered);
  *err = px__wakeup_fd_open(&c->wakeup_fd, kind);
  if (*err < 0) {
    pthread_mutex_destroy(&c->list_mu);
    pthread_mutex_destroy(&c->mu);
    px__free(c, size);
    return NULL;
  }
  /* The core is the first member of struct px__reactor (backend.h). */
  return (px__reactor *)(void *)c;
}

void px__reactor_free(px__reactor *r, size_t size) {
  px__reactor_core *c = (px__reactor_core *)(void *)r;
  px__reactor_free_retired(r);
  px__wakeup_fd_close(&c->wakeup_fd);
  pthread_mutex_destroy(&c->list_mu);
  pthread_mutex_destroy(&c->mu);
  px__free(c, size);
}

void px__reactor_retire(px__reactor *r, px__io *io) {
  px__reactor_core *c = (px__reactor_core *)(void *)r;
  pthread_mutex_lock(&c->mu);
  io->retire_next = c->retired;
  c->retired = io;
  pthread_mutex_unlock(&c->mu);
}

void px__reactor_free_retired(px__reactor *r) {
  px__reactor_core *c = (px__reactor_core *)(void *)r;
  pthread_mutex_lock(&c->mu);
  px__io *io = c->retired;
  c->retired = NULL;
  pthread_mutex_unlock(&c->mu);
  while (io != NULL) {
    px__io *next = io->retire_next;
    px__free(io->retire_mem, io->retire_size);
    io = next;
  }
}

int px__reactor_wakeup(px__reactor *r) {
  if (r == NULL) return PX_EINVAL;
  return px__wakeup_fd_signal(&((px__reactor_core *)(void *)r)->wakeup_fd);
}

void px__reactor_unlock(px__reactor_core *c, bool widened) {
  bool wake = widened && c->polling;
  pthread_mutex_unlock(&c->mu);
  /* Outside the mutex: the poller takes it as soon as it wakes. */
  if (wake) (void)px__wakeup_fd_signal(&c->wakeup_fd);
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
