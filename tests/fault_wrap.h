/* The fault plan tests/fault_wrap.c follows; see there. */
#ifndef POLLUX_TESTS_FAULT_WRAP_H
#define POLLUX_TESTS_FAULT_WRAP_H

#include "api/internal/px_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fault_plan {
  px__atomic(int) eintr_every;  /* every Nth recv/send fails with EINTR (0: never) */
  px__atomic(int) short_io;     /* recv/send move a random 1..len bytes (Unix sockets) */
  px__atomic(int) emfile_next;  /* the next N accept4 calls fail with EMFILE */
  px__atomic(int) accept_fail_next;  /* the next N accept4 calls fail with accept_errno */
  px__atomic(int) accept_errno;      /* ... this errno (ENOBUFS, ENOMEM: not shed) */
  px__atomic(int) accept_failed;     /* accept calls failed that way so far */
  px__atomic(int) calls;
  px__atomic(int) recv_calls; /* every recv, faulty or not */
  px__atomic(int) eintr_injected, short_injected, emfile_injected;
  /* The next reactor wait that could block and brought events is followed
   * by a stall of this many ms (0: none), before the runtime goes on: a
   * thread stopped or preempted between the wait and its timers. */
  px__atomic(int) stall_after_wait_ms;
  px__atomic(int) stalling; /* 1 while that stall lasts */
  px__atomic(int) stalls;   /* stalls injected so far */
} fault_plan;

extern fault_plan g_fault;

#ifdef __cplusplus
}
#endif

#endif
