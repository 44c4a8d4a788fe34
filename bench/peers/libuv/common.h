/*
 * bench/peers/libuv/common.h - the result line of the libuv peers, the
 * same as bench/common.h's: tools/bench parses all of them alike.
 */
#ifndef POLLUX_BENCH_LIBUV_COMMON_H
#define POLLUX_BENCH_LIBUV_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

typedef struct uvb_meter {
  struct timespec wall, cpu;
} uvb_meter;

static inline double uvb_secs(const struct timespec *a,
                              const struct timespec *b) {
  return (double)(b->tv_sec - a->tv_sec) +
         (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* VmHWM: ru_maxrss would carry the parent's peak across execve. */
static inline long uvb_peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

static inline void uvb_start(uvb_meter *m) {
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &m->cpu);
  clock_gettime(CLOCK_MONOTONIC, &m->wall);
}

/* Bytes per op are the benchmark's own (libuv allocates nothing per
 * timer: the caller owns every uv_timer_t), so they are passed in. */
static inline void uvb_report(const uvb_meter *m, const char *name,
                              double ops, double bytes_per_op,
                              const char *extra) {
  struct timespec wall, cpu;
  clock_gettime(CLOCK_MONOTONIC, &wall);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  double secs = uvb_secs(&m->wall, &wall), cpu_s = uvb_secs(&m->cpu, &cpu);
  printf("name=%s config=\"libuv %s\" ops=%.0f seconds=%.4f ops_per_s=%.0f "
         "cpu_s=%.4f peak_rss_kb=%ld ops_per_cpu_s=%.0f bytes_per_op=%.1f "
         "allocs_per_op=0.00%s%s\n",
         name, uv_version_string(), ops, secs, ops / secs, cpu_s,
         uvb_peak_rss_kb(), ops / (cpu_s > 1e-9 ? cpu_s : 1e-9), bytes_per_op,
         extra && *extra ? " " : "", extra ? extra : "");
}

static inline long uvb_arg(int argc, char **argv, long fallback,
                           const char *usage) {
  if (argc < 2) return fallback;
  long v = atol(argv[1]);
  if (argc > 2 || v < 1) {
    fprintf(stderr, "usage: %s\n", usage);
    exit(2);
  }
  return v;
}

#endif /* POLLUX_BENCH_LIBUV_COMMON_H */
