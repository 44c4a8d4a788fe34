/*
 * process_spawn on libuv: /bin/true started with uv_spawn (stdout and
 * stderr ignored, i.e. /dev/null) and waited for through its exit
 * callback, in rounds of 8 as in bench/process_spawn.c: a round starts
 * when every child of the previous one has exited and its handle is
 * closed (the pollux side's latch), until COUNT have run.
 *
 *   process_spawn_uv [COUNT]
 */
#include <string.h>

#include "bench/peers/libuv/common.h"

enum { IN_FLIGHT = 8 };

static uv_loop_t *loop;
static long started, finished, closed, count;
static uv_process_t procs[IN_FLIGHT];

static void start_round(void);

static void on_close(uv_handle_t *h) {
  (void)h;
  if (++closed == started) start_round();
}

static void on_exit_cb(uv_process_t *p, int64_t status, int signo) {
  if (status != 0 || signo != 0) {
    fprintf(stderr, "process_spawn_uv: child status %lld signal %d\n",
            (long long)status, signo);
    exit(1);
  }
  finished++;
  /* The handle can be reused only once closed. */
  uv_close((uv_handle_t *)p, on_close);
}

static void start_one(uv_process_t *p) {
  static char *args[] = {"/bin/true", NULL};
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_INHERIT_FD;
  stdio[0].data.fd = 0;
  stdio[1].flags = UV_IGNORE;
  stdio[2].flags = UV_IGNORE;
  uv_process_options_t o;
  memset(&o, 0, sizeof o);
  o.file = args[0];
  o.args = args;
  o.exit_cb = on_exit_cb;
  o.stdio = stdio;
  o.stdio_count = 3;
  int rc = uv_spawn(loop, p, &o);
  if (rc != 0) {
    fprintf(stderr, "process_spawn_uv: uv_spawn: %s\n", uv_strerror(rc));
    exit(1);
  }
  started++;
}

static void start_round(void) {
  for (int i = 0; i < IN_FLIGHT && started < count; i++) start_one(&procs[i]);
}

static void run(long n) {
  count = n;
  started = finished = closed = 0;
  start_round();
  uv_run(loop, UV_RUN_DEFAULT);
}

int main(int argc, char **argv) {
  long n = uvb_arg(argc, argv, 4000, "process_spawn_uv [COUNT]");
  loop = uv_default_loop();
  run(2 * IN_FLIGHT); /* warm-up, as the pollux side's two rounds */
  uvb_meter m;
  uvb_start(&m);
  run(n);
  uvb_report(&m, "process_spawn", (double)finished, 0.0, "");
  return 0;
}
