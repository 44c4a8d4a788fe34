/*
 * TEST-ONLY kqueue emulation for Linux, built on epoll. See sys/event.h
 * for what it covers and why it exists; nothing here is meant for
 * production use.
 *
 * A kqueue is an outer epoll descriptor (what kqueue() returns) watching
 * three things, all level-triggered:
 *
 *   ep[0]   an inner epoll holding the EVFILT_READ knotes (EPOLLIN)
 *   ep[1]   an inner epoll holding the EVFILT_WRITE knotes (EPOLLOUT)
 *   userfd  an eventfd, readable while an EVFILT_USER knote is triggered
 *
 * Separate inner epolls keep the filters of one descriptor independent, as
 * kqueue's knotes are: epoll watches a descriptor once per epoll set, and a
 * single EPOLLIN | EPOLLOUT registration would report the read side again
 * whenever the write side changes. An EV_CLEAR knote is an EPOLLET entry
 * (reported once per change), a plain one a level-triggered entry,
 * EV_ONESHOT and EV_DISPATCH use EPOLLONESHOT. A disabled knote is taken
 * out of its epoll, since epoll reports EPOLLHUP and EPOLLERR whatever the
 * mask says.
 *
 * kevent() applies the changes, then collects what is ready from the inner
 * epolls and the triggered user knotes without blocking; if there is
 * nothing, it blocks on the outer epoll and tries again.
 *
 * The state of each kqueue lives in a registry indexed by the outer
 * descriptor. kqueue_emu_close() releases it with the descriptor. A kqueue
 * closed with plain close(), which this library never sees, keeps its
 * state and three inner descriptors until kqueue() hands out the same
 * number again (the old one must have been closed by then).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/event.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS 4096u
#define HARVEST 64

typedef struct knote {
  struct kevent kev; /* flags keep EV_CLEAR, EV_ONESHOT, EV_DISPATCH */
  bool enabled;
  bool triggered; /* EVFILT_USER only */
  struct knote *next;
} knote;

typedef struct kq {
  int fd; /* the outer epoll */
  dev_t dev;
  ino_t ino; /* recognise the same open file when asked by number */
  int ep[2];
  int userfd;
  size_t triggered; /* EVFILT_USER knotes currently triggered */
  pthread_mutex_t mu;
  knote *buckets[BUCKETS];
} kq;

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static kq **registry;
static size_t registry_cap;

/* ---- Knote table ------------------------------------------------------ */

static int kind_of(short filter) {
  switch (filter) {
    case EVFILT_READ:
      return 0;
    case EVFILT_WRITE:
      return 1;
    case EVFILT_USER:
      return 2;
    default:
      return -1;
  }
}

/* The link that points at the knote (ident, filter), or at the NULL that
 * ends its bucket. */
static knote **find(kq *k, uintptr_t ident, short filter) {
  size_t h = ((size_t)ident * 2654435761u + (unsigned short)filter) % BUCKETS;
  knote **pp = &k->buckets[h];
  while (*pp != NULL &&
         ((*pp)->kev.ident != ident || (*pp)->kev.filter != filter))
    pp = &(*pp)->next;
  return pp;
}

static void kq_free(kq *k) {
  for (size_t i = 0; i < BUCKETS; i++) {
    while (k->buckets[i] != NULL) {
      knote *next = k->buckets[i]->next;
      free(k->buckets[i]);
      k->buckets[i] = next;
    }
  }
  for (int i = 0; i < 2; i++)
    if (k->ep[i] >= 0) close(k->ep[i]);
  if (k->userfd >= 0) close(k->userfd);
  pthread_mutex_destroy(&k->mu);
  free(k);
}

/* ---- kqueue() ----------------------------------------------------------- */

int kqueue(void) {
  kq *k = calloc(1, sizeof(*k));
  if (k == NULL) {
    errno = ENOMEM;
    return -1;
  }
  pthread_mutex_init(&k->mu, NULL);
  k->ep[0] = epoll_create1(EPOLL_CLOEXEC);
  k->ep[1] = epoll_create1(EPOLL_CLOEXEC);
  k->userfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  k->fd = epoll_create1(EPOLL_CLOEXEC);
  struct stat st;
  int err = 0;
  if (k->ep[0] < 0 || k->ep[1] < 0 || k->userfd < 0 || k->fd < 0 ||
      fstat(k->fd, &st) < 0) {
    err = errno;
  } else {
    k->dev = st.st_dev;
    k->ino = st.st_ino;
    int inner[3] = {k->ep[0], k->ep[1], k->userfd};
    for (int i = 0; i < 3 && err == 0; i++) {
      struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = inner[i]}};
      if (epoll_ctl(k->fd, EPOLL_CTL_ADD, inner[i], &ev) < 0) err = errno;
    }
  }
  if (err == 0) {
    pthread_mutex_lock(&registry_mu);
    size_t need = (size_t)k->fd + 1;
    if (need > registry_cap) {
      size_t n = registry_cap ? registry_cap : 64;
      while (n < need) n *= 2;
      kq **p = realloc(registry, n * sizeof(*p));
      if (p == NULL) {
        err = ENOMEM;
      } else {
        memset(p + registry_cap, 0, (n - registry_cap) * sizeof(*p));
        registry = p;
        registry_cap = n;
      }
    }
    if (err == 0) {
      /* A state under this number belongs to a kqueue closed since. */
      if (registry[k->fd] != NULL) kq_free(registry[k->fd]);
      registry[k->fd] = k;
    }
    pthread_mutex_unlock(&registry_mu);
  }
  if (err != 0) {
    if (k->fd >= 0) close(k->fd);
    kq_free(k);
    errno = err;
    return -1;
  }
  return k->fd;
}

int kqueue_emu_close(int fd) {
  struct stat st;
  kq *k = NULL;
  pthread_mutex_lock(&registry_mu);
  if (fd >= 0 && (size_t)fd < registry_cap && fstat(fd, &st) == 0 &&
      registry[fd] != NULL && registry[fd]->dev == st.st_dev &&
      registry[fd]->ino == st.st_ino) {
    k = registry[fd];
    registry[fd] = NULL;
  }
  pthread_mutex_unlock(&registry_mu);
  if (k != NULL) kq_free(k);
  return close(fd);
}

static kq *lookup(int fd) {
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) return NULL;
  pthread_mutex_lock(&registry_mu);
  kq *k = (size_t)fd < registry_cap ? registry[fd] : NULL;
  pthread_mutex_unlock(&registry_mu);
  if (k == NULL || k->dev != st.st_dev || k->ino != st.st_ino) return NULL;
  return k;
}

/* ---- Changes ------------------------------------------------------------ */

/* Puts an enabled READ/WRITE knote into its epoll, or takes it out. */
static int sync_epoll(kq *k, knote *kn, int kind, bool was_in) {
  int epfd = k->ep[kind];
  int fd = (int)kn->kev.ident;
  if (!kn->enabled) {
    if (was_in && epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) < 0 &&
        errno != ENOENT && errno != EBADF)
      return errno;
    return 0;
  }
  uint32_t events = kind == 0 ? (EPOLLIN | EPOLLRDHUP) : EPOLLOUT;
  if (kn->kev.flags & EV_CLEAR) events |= EPOLLET;
  if (kn->kev.flags & (EV_ONESHOT | EV_DISPATCH)) events |= EPOLLONESHOT;
  struct epoll_event ev = {.events = events, .data = {.u64 = kn->kev.ident}};
  int op = was_in ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(epfd, op, fd, &ev) == 0) return 0;
  /* Our table and epoll's may disagree after a close() (which removed the
   * entry) or a dup; try the other operation once. */
  int other = op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if ((errno == ENOENT || errno == EEXIST) && epoll_ctl(epfd, other, fd, &ev) == 0)
    return 0;
  return errno;
}

static void user_set_triggered(kq *k, knote *kn, bool on) {
  if (kn->triggered == on) return;
  kn->triggered = on;
  if (on) {
    if (k->triggered++ == 0) {
      uint64_t one = 1;
      (void)!write(k->userfd, &one, sizeof(one));
    }
  } else if (--k->triggered == 0) {
    uint64_t v;
    (void)!read(k->userfd, &v, sizeof(v));
  }
}

/* EVFILT_USER's fflags: the control bits say how to combine, NOTE_TRIGGER
 * fires the event. */
static void user_touch(kq *k, knote *kn, unsigned fflags) {
  unsigned ff = fflags & NOTE_FFLAGSMASK;
  switch (fflags & NOTE_FFCTRLMASK) {
    case NOTE_FFAND:
      kn->kev.fflags &= ff;
      break;
    case NOTE_FFOR:
      kn->kev.fflags |= ff;
      break;
    case NOTE_FFCOPY:
      kn->kev.fflags = ff;
      break;
    default:
      break;
  }
  if ((fflags & NOTE_TRIGGER) && kn->enabled) user_set_triggered(k, kn, true);
}

static void delete_note(kq *k, knote **pp) {
  knote *kn = *pp;
  int kind = kind_of(kn->kev.filter);
  if (kind < 2 && kn->enabled)
    (void)epoll_ctl(k->ep[kind], EPOLL_CTL_DEL, (int)kn->kev.ident, NULL);
  if (kind == 2) user_set_triggered(k, kn, false);
  *pp = kn->next;
  free(kn);
}

/* Applies one change; returns 0 or an errno value. k->mu held. */
static int apply(kq *k, const struct kevent *c) {
  int kind = kind_of(c->filter);
  if (kind < 0) return EINVAL;
  knote **pp = find(k, c->ident, c->filter);
  knote *kn = *pp;
  if (c->flags & EV_DELETE) {
    if (kn == NULL) return ENOENT;
    delete_note(k, pp);
    return 0;
  }
  bool fresh = false;
  bool was_in = kn != NULL && kn->enabled;
  if (c->flags & EV_ADD) {
    if (kn == NULL) {
      kn = calloc(1, sizeof(*kn));
      if (kn == NULL) return ENOMEM;
      kn->kev.ident = c->ident;
      kn->kev.filter = c->filter;
      kn->enabled = true;
      fresh = true;
    }
    kn->kev.flags = c->flags & (EV_CLEAR | EV_ONESHOT | EV_DISPATCH);
    kn->kev.udata = c->udata;
  } else if (kn == NULL) {
    return ENOENT;
  }
  if (c->flags & EV_ENABLE) kn->enabled = true;
  if (c->flags & EV_DISABLE) kn->enabled = false;
  if (kind < 2) {
    int err = sync_epoll(k, kn, kind, was_in);
    if (err != 0) {
      if (fresh) free(kn);
      return err;
    }
  } else {
    if (!kn->enabled) user_set_triggered(k, kn, false);
    user_touch(k, kn, c->fflags);
  }
  if (fresh) *pp = kn;
  return 0;
}

/* ---- Collecting events -------------------------------------------------- */

/* After a knote was reported: EV_ONESHOT deletes it, EV_DISPATCH disables
 * it (epoll disarmed the entry already; it is taken out to match). */
static void after_report(kq *k, knote **pp) {
  knote *kn = *pp;
  if (kn->kev.flags & EV_ONESHOT) {
    delete_note(k, pp);
  } else if (kn->kev.flags & EV_DISPATCH) {
    int kind = kind_of(kn->kev.filter);
    kn->enabled = false;
    if (kind < 2)
      (void)epoll_ctl(k->ep[kind], EPOLL_CTL_DEL, (int)kn->kev.ident, NULL);
    else
      user_set_triggered(k, kn, false);
  }
}

static int collect_user(kq *k, struct kevent *out, int room) {
  int n = 0;
  for (size_t b = 0; b < BUCKETS && n < room && k->triggered > 0; b++) {
    knote **pp = &k->buckets[b];
    while (*pp != NULL && n < room) {
      knote *kn = *pp;
      if (kn->kev.filter != EVFILT_USER || !kn->triggered || !kn->enabled) {
        pp = &kn->next;
        continue;
      }
      out[n] = kn->kev;
      out[n].data = 0;
      n++;
      if (kn->kev.flags & EV_CLEAR) {
        /* FreeBSD resets a cleared user event's state and fflags. */
        kn->kev.fflags = 0;
        user_set_triggered(k, kn, false);
      }
      knote *before = *pp;
      after_report(k, pp);
      if (*pp == before) pp = &kn->next; /* still there: move on */
    }
  }
  return n;
}

static int collect_fds(kq *k, int kind, struct kevent *out, int room) {
  struct epoll_event evs[HARVEST];
  int want = room < HARVEST ? room : HARVEST;
  int m = epoll_wait(k->ep[kind], evs, want, 0);
  int n = 0;
  short filter = kind == 0 ? EVFILT_READ : EVFILT_WRITE;
  for (int i = 0; i < m; i++) {
    knote **pp = find(k, (uintptr_t)evs[i].data.u64, filter);
    knote *kn = *pp;
    if (kn == NULL || !kn->enabled) continue;
    struct kevent *e = &out[n++];
    *e = kn->kev;
    e->fflags = 0;
    e->data = 0;
    int fd = (int)kn->kev.ident;
    uint32_t got = evs[i].events;
    /* The read side ends at a half-close (EPOLLRDHUP) or a full hang-up;
     * the write side at a full hang-up. Both report a pending error. */
    uint32_t eof = EPOLLHUP | EPOLLERR | (kind == 0 ? EPOLLRDHUP : 0u);
    /* FreeBSD puts the socket error in fflags. Linux can only read it with
     * getsockopt(SO_ERROR), which also clears it, and then the caller's
     * own SO_ERROR (or next syscall) would no longer see why a connect
     * failed; so fflags stays 0 here and EV_EOF alone says "look". */
    if (got & eof) e->flags |= EV_EOF;
    if (kind == 0) {
      int avail = 0;
      if (ioctl(fd, FIONREAD, &avail) == 0) e->data = avail;
    }
    after_report(k, pp);
  }
  return n;
}

static int collect(kq *k, struct kevent *out, int room) {
  int n = collect_user(k, out, room);
  for (int kind = 0; kind < 2 && n < room; kind++)
    n += collect_fds(k, kind, out + n, room - n);
  return n;
}

/* ---- kevent() ----------------------------------------------------------- */

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int kevent(int kqfd, const struct kevent *changelist, int nchanges,
           struct kevent *eventlist, int nevents,
           const struct timespec *timeout) {
  if (nchanges < 0 || nevents < 0 || (nchanges > 0 && changelist == NULL) ||
      (nevents > 0 && eventlist == NULL)) {
    errno = EINVAL;
    return -1;
  }
  kq *k = lookup(kqfd);
  if (k == NULL) {
    errno = EBADF;
    return -1;
  }
  int n = 0;
  pthread_mutex_lock(&k->mu);
  for (int i = 0; i < nchanges; i++) {
    const struct kevent *c = &changelist[i];
    int err = apply(k, c);
    if (err == 0 && !(c->flags & EV_RECEIPT)) continue;
    if (n < nevents) {
      /* Room in the event list: report it there and go on. */
      eventlist[n] = *c;
      eventlist[n].flags = EV_ERROR;
      eventlist[n].data = err;
      n++;
    } else if (err != 0) {
      pthread_mutex_unlock(&k->mu);
      errno = err;
      return -1;
    }
  }
  pthread_mutex_unlock(&k->mu);
  if (n > 0 || nevents == 0) return n;

  int64_t deadline = 0;
  if (timeout != NULL) {
    if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
        timeout->tv_nsec >= 1000000000) {
      errno = EINVAL;
      return -1;
    }
    deadline = now_ns() + (int64_t)timeout->tv_sec * 1000000000 +
               timeout->tv_nsec;
  }
  for (;;) {
    pthread_mutex_lock(&k->mu);
    n = collect(k, eventlist, nevents);
    pthread_mutex_unlock(&k->mu);
    if (n > 0) return n;
    int ms = -1;
    if (timeout != NULL) {
      int64_t left = deadline - now_ns();
      if (left <= 0) return 0;
      /* Rounded up: waking before the deadline would look like a timeout
       * that came early. */
      int64_t lms = (left + 999999) / 1000000;
      ms = lms > 1000000000 ? 1000000000 : (int)lms;
    }
    struct epoll_event ev;
    int w = epoll_wait(k->fd, &ev, 1, ms);
    if (w < 0) return -1; /* EINTR included, as kevent does */
  }
}
