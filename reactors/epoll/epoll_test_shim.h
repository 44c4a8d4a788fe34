/*
 * A C shim between epoll_test.cc and the reactor internals.
 *
 * reactors/reactor.h uses C11 atomics (_Atomic, atomic_flag) in px__io,
 * which g++ does not accept in C++17, so the test cannot include it. This
 * shim keeps px__io on the C side behind an opaque handle and exposes the
 * same operations with plain types.
 */
#ifndef POLLUX_REACTORS_EPOLL_EPOLL_TEST_SHIM_H
#define POLLUX_REACTORS_EPOLL_EPOLL_TEST_SHIM_H

#include <stdbool.h>
#include <stdint.h>

#include "pollux/waker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The readiness bits of reactor.h (the shim checks they agree). */
enum { SHIM_READABLE = 1, SHIM_WRITABLE = 2, SHIM_HUP = 4, SHIM_ERROR = 8 };

typedef struct shim_reactor shim_reactor;
typedef struct shim_io shim_io;

/* px__epoll_ops.create with event_capacity `capacity` (0: NULL config). */
int shim_reactor_new(uint32_t capacity, shim_reactor **out);
void shim_reactor_free(shim_reactor *r);
int shim_poll(shim_reactor *r, int timeout_ms);
int shim_wakeup(shim_reactor *r);
const char *shim_name(void);
unsigned shim_features(void);

/* A px__io for fd, initialised and not registered. */
shim_io *shim_io_new(int fd);
/* Deregisters (if registered) and frees. */
void shim_io_free(shim_io *io);
int shim_register(shim_io *io, shim_reactor *r);
void shim_deregister(shim_io *io);
int shim_modify(shim_io *io, unsigned interest);

/* px__io_poll_ready with a context holding `waker` (may be NULL). */
bool shim_poll_ready(shim_io *io, const px_waker *waker, unsigned interest,
                     unsigned *ready, uint64_t *tick);
void shim_clear_ready(shim_io *io, unsigned ready, uint64_t tick);
void shim_dispatch(shim_io *io, unsigned ready);
void shim_wake_all(shim_io *io);
/* The readiness bits currently stored (no waker involved). */
unsigned shim_ready_bits(shim_io *io);

#ifdef __cplusplus
}
#endif

#endif
