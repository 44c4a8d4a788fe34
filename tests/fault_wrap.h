/* The fault plan tests/fault_wrap.c follows; see there. */
#ifndef POLLUX_TESTS_FAULT_WRAP_H
#define POLLUX_TESTS_FAULT_WRAP_H

#include "api/internal/px_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fault_plan {
  px__atomic(int) eintr_every;  /* every Nth recv/send fails with EINTR (0: never) */
  px__atomic(int) short_io;     /* recv/send move a random 1..len bytes */
  px__atomic(int) emfile_next;  /* the next N accept4 calls fail with EMFILE */
  px__atomic(int) accept_fail_next;  /* the next N accept4 calls fail with accept_errno */
  px__atomic(int) accept_errno;      /* ... this errno (ENOBUFS, ENOMEM: not shed) */
  px__atomic(int) accept_failed;     /* accept calls failed that way so far */
  px__atomic(int) calls;
  px__atomic(int) eintr_injected, short_injected, emfile_injected;
} fault_plan;

extern fault_plan g_fault;

#ifdef __cplusplus
}
#endif

#endif
