/*
 * process_spawn on libuv: /bin/true started with uv_spawn (stdout and
 * stderr ignored, i.e. /dev/null) and waited for through its exit
 * callback, 8 in flight at a time, as in bench/process_spawn.c. Each exit
 * starts the next child until COUNT have run.
 *
 *   process_spawn_uv [COUNT]
 */
#include <string.h>

#include "bench/peers/libuv/common.h"

enum { IN_FLIGHT = 8 };

static uv_loop_t *loop;
static long started, finished, count;
static uv_process_t procs[IN_FLIGHT];

static void start_one(uv_process_t *p);

static void on_close(uv_handle_t *h) {
  if (started < count) start_one((uv_process_t *)h);
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

static void run(long n) {
  count = n;
  started = finished = 0;
  for (int i = 0; i < IN_FLIGHT && started < count; i++) start_one(&procs[i]);
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
