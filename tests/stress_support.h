/* Helper futures for tests/stress_test.cc (the async macros are C). */
#ifndef POLLUX_TESTS_STRESS_SUPPORT_H
#define POLLUX_TESTS_STRESS_SUPPORT_H

#include "tests/support.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { STRESS_PAYLOAD = 512 };

/* Accepts `expected` connections, spawning an echo task for each. Owns the
 * listener and closes it when done or dropped. */
typedef struct {
  px_async px;
  px_tcp_listener *listener;
  int expected, accepted;
  px_tcp_accept acc;
} echo_server;
px_future *echo_server_new(echo_server *f, px_tcp_listener *l, int expected);

/* Accepts one connection and echoes what it reads, each read raced
 * against an idle limit in a biased select (read first: bytes that are
 * there win), as servers do; ends at end of stream or when the limit
 * passes first, and the connection is closed with the task (its client
 * then reads end of stream). Owns the listener. */
typedef struct {
  px_async px;
  px_tcp_listener *listener;
  px_duration idle;
  px_tcp_stream *s;
  px_tcp_accept acc;
  px_tcp_io rd, wr;
  px_sleep nap;
  px_select sel;
  unsigned char buf[2048];
} idle_echo;
px_future *idle_echo_new(idle_echo *f, px_tcp_listener *l, px_duration idle);

/* Spawns n clients (yielding every 128 spawns so the server keeps up). Each
 * client connects, writes a payload derived from its id, reads it back,
 * checks every byte, stores its open stream in streams[id], counts itself
 * in *ok (or *bad), and wakes *slot. */
typedef struct {
  px_async px;
  int n, i;
  uint16_t port;
  px_tcp_stream **streams;
  px__atomic(int) *ok, *bad;
  px_waker *slot;
} client_spawner;
px_future *client_spawner_new(client_spawner *f, int n, uint16_t port,
                              px_tcp_stream **streams, px__atomic(int) *ok,
                              px__atomic(int) *bad, px_waker *slot);

/* Owns a connected pair and a listener, and waits forever on a read (and a
 * 1 h sleep): shutdown must drop it and close everything without a leak. */
typedef struct {
  px_async px;
  px_tcp_listener *listener;
  px_tcp_stream *a, *b;
  unsigned char buf[16];
  px_tcp_accept acc;
  px_tcp_connect conn;
  px_tcp_io rd;
  px_sleep nap;
  px_future *both[2];
  px_join join;
} idle_sockets;
px_future *idle_sockets_new(idle_sockets *f);

#ifdef __cplusplus
}
#endif

#endif

#ifdef __cplusplus
extern "C" {
#endif
/* Sleeps `delay`, then counts itself in *fired and wakes *slot; its drop
 * counts in *drops (whether it fired or was aborted). */
typedef struct {
  px_async px;
  px_duration delay;
  px__atomic(int) *fired, *drops;
  px_waker *slot;
  px_sleep sleep;
} timer_task;
px_future *timer_task_new(timer_task *f, px_duration delay,
                          px__atomic(int) *fired, px__atomic(int) *drops,
                          px_waker *slot);
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* Polls waitpid(pid, WNOHANG) every 5 ms; output: the wait status. */
typedef struct {
  px_async px;
  int pid;
  px_sleep nap;
} wait_child;
px_future *wait_child_new(wait_child *f, int pid);
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* Completes once *value >= target, checking every millisecond. Polling a
 * counter needs no shared waker, so it is race-free with any executor. */
typedef struct {
  px_async px;
  px__atomic(int) *value;
  int target;
  px_sleep nap;
} await_count;
px_future *await_count_new(await_count *f, px__atomic(int) *value, int target);
#ifdef __cplusplus
}
#endif
