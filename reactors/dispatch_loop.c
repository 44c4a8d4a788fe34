/*
 * dispatch_loop: the reactor's hot path alone, for instruction counts under
 * callgrind. One socket pair registered with a backend; each round writes a
 * byte, waits in the reactor, dispatches, reads until EAGAIN and clears the
 * readiness, then stores a waker again, as a future does. Every backend is
 * linked in, so one binary compares them:
 *
 *   bazel build -c opt //reactors:dispatch_loop
 *   valgrind --tool=callgrind bazel-bin/reactors/dispatch_loop epoll 20000
 *
 * Instructions per round are the difference of two runs (N1 and N2 rounds)
 * divided by N2 - N1, which cancels start-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reactors/reactor.h"

extern const px__reactor_ops px__epoll_ops, px__select_ops, px__poll_ops,
    px__libevent_ops, px__kqueue_ops, px__io_uring_ops;

static const px__reactor_ops *const backends[] = {
    &px__epoll_ops,    &px__select_ops, &px__poll_ops,
    &px__libevent_ops, &px__kqueue_ops, &px__io_uring_ops,
};

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: dispatch_loop BACKEND ROUNDS\n");
    return 2;
  }
  const px__reactor_ops *ops = NULL;
  for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
    if (strcmp(backends[i]->name, argv[1]) == 0) ops = backends[i];
  long rounds = atol(argv[2]);
  if (ops == NULL || rounds <= 0) {
    fprintf(stderr, "dispatch_loop: unknown backend or bad count\n");
    return 2;
  }
  px__reactor *r = NULL;
  int rc = px__reactor_create(ops, NULL, &r);
  if (rc < 0) {
    fprintf(stderr, "dispatch_loop: %s: create failed (%d)\n", ops->name, rc);
    return 1;
  }
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) < 0) return 1;
  px__io io;
  px__io_init(&io, fds[0]);
  if (px__io_register(&io, r) < 0) return 1;
  px_waker w = px_waker_noop();
  px_context cx = {.waker = &w, .runtime = NULL};
  px__io_event ev;
  (void)px__io_poll_ready(&io, &cx, PX__READABLE, &ev); /* arms the waiter */
  char buf[64];
  for (long i = 0; i < rounds; i++) {
    if (write(fds[1], "x", 1) != 1) return 1;
    while (!px__io_poll_ready(&io, &cx, PX__READABLE, &ev))
      if (px__reactor_poll(r, -1) < 0) return 1;
    while (read(fds[0], buf, sizeof buf) > 0) {
    }
    px__io_clear_ready(&io, ev);
    (void)px__io_poll_ready(&io, &cx, PX__READABLE, &ev); /* waits again */
  }
  px__io_deregister(&io);
  close(fds[0]);
  close(fds[1]);
  px__reactor_destroy(r);
  printf("%s: %ld rounds\n", ops->name, rounds);
  return 0;
}
