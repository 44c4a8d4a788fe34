/*
 * TEST-ONLY kqueue emulation for Linux. NOT a production kqueue.
 *
 * Linux has no kqueue(2). So that reactors/kqueue/kqueue.c, which is written
 * against the real <sys/event.h> of FreeBSD, macOS and the other BSDs, can
 * be built and run through the reactor conformance suite and the
 * integration tests on Linux, this directory provides a small kevent
 * emulation on top of epoll, installed as <sys/event.h> only for builds on
 * Linux (see reactors/kqueue/BUILD.bazel). On a BSD or macOS the system's
 * header and kernel are used and none of this is compiled.
 *
 * What is emulated (semantics follow FreeBSD's kqueue(2)):
 *   - kqueue() returns a descriptor (released by kqueue_emu_close, see
 *     below);
 *   - knotes are per (ident, filter): EVFILT_READ and EVFILT_WRITE on
 *     descriptors, EVFILT_USER on any ident;
 *   - EV_ADD (also to modify an existing knote), EV_DELETE (ENOENT when
 *     there is no such knote), EV_ENABLE, EV_DISABLE, EV_ONESHOT,
 *     EV_DISPATCH, EV_CLEAR (edge: reported again only after a new
 *     change), EV_RECEIPT, EV_ERROR in returned events for failed changes;
 *   - returned events: EV_EOF when the peer hung up or the socket has an
 *     error; data = bytes readable (FIONREAD) for EVFILT_READ, 0 for
 *     EVFILT_WRITE;
 *   - EVFILT_USER with NOTE_TRIGGER and the NOTE_FF* fflags operations;
 *   - a NULL timeout waits forever; EINTR is returned as by kevent.
 * Not emulated: other filters (EVFILT_VNODE, PROC, SIGNAL, TIMER, ...),
 * low-water marks (NOTE_LOWAT), the exact count in EVFILT_WRITE's data,
 * and the socket error in fflags with EV_EOF (Linux cannot read SO_ERROR
 * without clearing it, which would hide it from the program).
 */
#ifndef POLLUX_TESTS_KQUEUE_EMU_SYS_EVENT_H
#define POLLUX_TESTS_KQUEUE_EMU_SYS_EVENT_H

#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PX_KQUEUE_EMULATION 1 /* lets code and tests know which this is */

struct kevent {
  uintptr_t ident;  /* identifier for this event (a descriptor, mostly) */
  short filter;     /* EVFILT_* */
  unsigned short flags; /* EV_* action and returned flags */
  unsigned int fflags;  /* filter-specific flags */
  intptr_t data;        /* filter-specific data */
  void *udata;          /* opaque user data, returned as given */
};

#define EV_SET(kevp, a, b, c, d, e, f) \
  do {                                 \
    struct kevent *kev__ = (kevp);     \
    kev__->ident = (a);                \
    kev__->filter = (b);               \
    kev__->flags = (c);                \
    kev__->fflags = (d);               \
    kev__->data = (e);                 \
    kev__->udata = (f);                \
  } while (0)

/* Filters (FreeBSD's values). */
#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_USER (-11)

/* Actions. */
#define EV_ADD 0x0001
#define EV_DELETE 0x0002
#define EV_ENABLE 0x0004
#define EV_DISABLE 0x0008
/* Flags. */
#define EV_ONESHOT 0x0010
#define EV_CLEAR 0x0020
#define EV_RECEIPT 0x0040
#define EV_DISPATCH 0x0080
/* Returned values. */
#define EV_ERROR 0x4000
#define EV_EOF 0x8000

/* EVFILT_USER fflags. */
#define NOTE_FFNOP 0x00000000
#define NOTE_FFAND 0x40000000
#define NOTE_FFOR 0x80000000
#define NOTE_FFCOPY 0xc0000000
#define NOTE_FFCTRLMASK 0xc0000000
#define NOTE_FFLAGSMASK 0x00ffffff
#define NOTE_TRIGGER 0x01000000

int kqueue(void);
/*
 * Emulation only: closes a kqueue and everything behind it. A real kqueue
 * is released by close(), which this library cannot see; close() alone
 * leaves the emulation's three inner descriptors open until kqueue() hands
 * out the same number again. Code that must build against the real header
 * tests PX_KQUEUE_EMULATION before calling this.
 */
int kqueue_emu_close(int kq);
int kevent(int kq, const struct kevent *changelist, int nchanges,
           struct kevent *eventlist, int nevents,
           const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif
