/* Connection futures for tests/serve_test.cc (the async macros are C). */
#ifndef POLLUX_TESTS_SERVE_SUPPORT_H
#define POLLUX_TESTS_SERVE_SUPPORT_H

#include "api/internal/px_internal.h"
#include "pollux.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the connections of one test server did (px_serve_opts.arg). */
typedef struct serve_stats {
  int mode;                             /* enum serve_mode */
  px__atomic(int) started, live, ended; /* connections spawned, running, gone */
  px__atomic(int) saw_stop;             /* ended because the stop token fired */
  px__atomic(int) first_echo_started;   /* `started` at the first echo; -1 */
  px__atomic(int) second_spawn_rc;      /* SERVE_SPAWN_TWICE: the 2nd spawn's result */
} serve_stats;

enum serve_mode {
  SERVE_ECHO,        /* echo until end of stream or the stop token */
  SERVE_IGNORE_STOP, /* echo until end of stream, deaf to the stop token */
  SERVE_REFUSE,      /* the constructor spawns nothing and returns PX_ENOMEM */
  SERVE_SPAWN_TWICE, /* the constructor spawns, then tries again */
  SERVE_WRAP,        /* the constructor wraps the stream in a deadline stream */
  SERVE_WRAP_REFUSE, /* it wraps it, then spawns nothing (PX_ENOMEM) */
};

void serve_stats_init(serve_stats *st, int mode);

/* The connection constructor (px_serve_fn) every test uses. */
int serve_test_conn(px_serve_conn *c);

#ifdef __cplusplus
}
#endif

#endif
