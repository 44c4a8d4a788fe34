/* bench/common.c - see common.h. */
#include "bench/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Counting allocator --------------------------------------------- */

static atomic_size_t alloc_bytes, alloc_calls;

static void *count_alloc(void *ctx, size_t size) {
  (void)ctx;
  atomic_fetch_add_explicit(&alloc_bytes, size, memory_order_relaxed);
  atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
  return malloc(size);
}

static void count_free(void *ctx, void *ptr, size_t size) {
  (void)ctx;
  (void)size;
  free(ptr);
}

void bench_count_allocations(void) {
  static const px_allocator a = {count_alloc, count_free, NULL};
  px_set_allocator(&a);
}

px_runtime *bench_runtime_new(const char *name) {
  px_config cfg;
  px_config_init(&cfg);
  const char *env = getenv("PX_BENCH_WORKERS");
  cfg.workers = env && atoi(env) > 0 ? (uint32_t)atoi(env) : 2;
  px_runtime *rt;
  int rc = px_runtime_new(&rt, &cfg);
  if (rc < 0) {
    fprintf(stderr, "%s: runtime: %s %s\n", name, px_strerror(rc),
            px_config_error());
    exit(1);
  }
  return rt;
}

/* ---- Clocks and the result line ------------------------------------- */

static double seconds_between(const struct timespec *a,
                              const struct timespec *b) {
  return (double)(b->tv_sec - a->tv_sec) +
         (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

long bench_peak_rss_kb(void) {
  /* VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across
   * execve, so a benchmark started by a big parent (tools/bench is Python)
   * would report the parent's peak instead of its own. */
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

void bench_meter_start(bench_meter *m) {
  m->bytes = atomic_load(&alloc_bytes);
  m->calls = atomic_load(&alloc_calls);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &m->cpu);
  clock_gettime(CLOCK_MONOTONIC, &m->wall);
}

void bench_report(const bench_meter *m, const char *name, double ops,
                  const char *extra) {
  struct timespec wall, cpu;
  clock_gettime(CLOCK_MONOTONIC, &wall);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  double secs = seconds_between(&m->wall, &wall);
  double cpu_s = seconds_between(&m->cpu, &cpu);
  double bytes = (double)(atomic_load(&alloc_bytes) - m->bytes);
  double calls = (double)(atomic_load(&alloc_calls) - m->calls);
  /* Guard the divisions: a run too short for the CPU clock to tick must
   * still print numbers, not inf. */
  double cpu_div = cpu_s > 1e-9 ? cpu_s : 1e-9;
  double sec_div = secs > 1e-9 ? secs : 1e-9;
  printf("name=%s config=\"%s\" ops=%.0f seconds=%.4f ops_per_s=%.0f "
         "cpu_s=%.4f peak_rss_kb=%ld ops_per_cpu_s=%.0f bytes_per_op=%.1f "
         "allocs_per_op=%.2f%s%s\n",
         name, px_build_info(), ops, secs, ops / sec_div, cpu_s,
         bench_peak_rss_kb(), ops / cpu_div, bytes / ops, calls / ops,
         extra && *extra ? " " : "", extra ? extra : "");
  fflush(stdout);
}

long bench_arg(int argc, char **argv, long fallback, const char *usage) {
  if (argc < 2) return fallback;
  char *end;
  long v = strtol(argv[1], &end, 10);
  if (argc > 2 || end == argv[1] || *end != '\0' || v < 1) {
    fprintf(stderr, "usage: %s\n", usage);
    exit(2);
  }
  return v;
}

void bench_check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", what, px_strerror(rc));
    exit(1);
  }
}

/* ---- Latch ----------------------------------------------------------- */

void bench_latch_init(bench_latch *l, long count) {
  atomic_init(&l->remaining, count);
  pthread_mutex_init(&l->mu, NULL);
  l->waiter = (px_waker)PX_WAKER_EMPTY;
}

void bench_latch_reset(bench_latch *l, long count) {
  atomic_store(&l->remaining, count);
}

void bench_latch_count_down(bench_latch *l) {
  if (atomic_fetch_sub_explicit(&l->remaining, 1, memory_order_acq_rel) != 1)
    return;
  pthread_mutex_lock(&l->mu);
  px_waker w = l->waiter;
  l->waiter = (px_waker)PX_WAKER_EMPTY;
  pthread_mutex_unlock(&l->mu);
  /* Wake outside the lock: waking may run executor code. */
  px_waker_wake(&w);
}

void bench_latch_destroy(bench_latch *l) {
  px_waker_drop(&l->waiter);
  pthread_mutex_destroy(&l->mu);
}

static px_poll latch_wait_poll(px_future *f, px_context *cx) {
  bench_latch_wait *w = (bench_latch_wait *)f;
  bench_latch *l = w->latch;
  pthread_mutex_lock(&l->mu);
  /* Checked under the lock: the last count_down either sees our waker or
   * ran before we looked, and then remaining is already zero. */
  int done = atomic_load(&l->remaining) == 0;
  if (!done) px_waker_set(&l->waiter, cx->waker);
  pthread_mutex_unlock(&l->mu);
  return done ? PX_READY : PX_PENDING;
}

static const px_future_vtable latch_wait_vtable = {
    sizeof(bench_latch_wait), "bench_latch_wait", latch_wait_poll, NULL};

px_future *bench_latch_wait_init(bench_latch_wait *w, bench_latch *l) {
  px_future_init(&w->base, &latch_wait_vtable);
  w->latch = l;
  return &w->base;
}

/* ---- Rounds of tasks -------------------------------------------------- */

/* Named bench_main, as each benchmark's own main future was, so that the
 * future's name in the runtime's diagnostics stays what it was. */
typedef struct {
  px_async px;
  const bench_rounds *b;
  long rounds, r;
  bench_latch *latch;
  bench_latch_wait wait;
} bench_main;

PX_ASYNC_FN(bench_main) {
  PX_BEGIN();
  for (self->r = 0; self->r < self->rounds; self->r++) {
    bench_latch_reset(self->latch, self->b->latch_count);
    PX_TRY(self->b->start(self->latch));
    PX_AWAIT(bench_latch_wait_init(&self->wait, self->latch));
  }
  PX_END();
}

static px_runtime *rounds_rt;

px_runtime *bench_rounds_runtime(void) { return rounds_rt; }

/* `rounds` rounds, started from outside the runtime: each round's tasks
 * are spawned from this thread, then block_on waits for the latch. */
static void run_outside(const bench_rounds *b, px_runtime *rt,
                        bench_latch *latch, long rounds) {
  for (long r = 0; r < rounds; r++) {
    bench_latch_reset(latch, b->latch_count);
    bench_check(b->start(latch), b->name);
    bench_latch_wait w;
    bench_check(px_runtime_block_on(rt, bench_latch_wait_init(&w, latch)),
                b->name);
  }
}

/* `rounds` rounds, started from inside one block_on. */
static void run_inside(const bench_rounds *b, px_runtime *rt,
                       bench_latch *latch, long rounds) {
  bench_main m =
      PX_ASYNC_NEW(bench_main, .b = b, .rounds = rounds, .latch = latch);
  bench_check(px_runtime_block_on(rt, PX_FUTURE(&m)), b->name);
}

void bench_run_rounds(const bench_rounds *b) {
  bench_count_allocations();
  px_runtime *rt = bench_runtime_new(b->name);
  rounds_rt = rt;
  bench_latch latch;
  bench_latch_init(&latch, 0);
  void (*run)(const bench_rounds *, px_runtime *, bench_latch *, long) =
      b->outside ? run_outside : run_inside;

  if (b->warmup_rounds > 0) run(b, rt, &latch, b->warmup_rounds);
  bench_meter meter;
  bench_meter_start(&meter);
  run(b, rt, &latch, b->rounds);
  bench_report(&meter, b->name, (double)b->rounds * b->ops_per_round, NULL);
  px_runtime_free(rt);
  rounds_rt = NULL;
  bench_latch_destroy(&latch);
}
