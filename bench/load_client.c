#include "bench/load_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static uint64_t now_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double now(clockid_t c) { return (double)now_ns(c) / 1e9; }

uint64_t load_round_start(void) { return now_ns(CLOCK_MONOTONIC); }

/* A value below 2^SUB is its own bucket; above, the bucket is the value's
 * power of two and the SUB bits that follow its top bit. */
static unsigned bucket_of(uint64_t ns) {
  if (ns < (UINT64_C(1) << LOAD_SUB_BITS)) return (unsigned)ns;
  unsigned e = 63u - (unsigned)__builtin_clzll(ns); /* e >= SUB */
  unsigned b = ((e - LOAD_SUB_BITS + 1) << LOAD_SUB_BITS) |
               (unsigned)((ns >> (e - LOAD_SUB_BITS)) &
                          ((1u << LOAD_SUB_BITS) - 1));
  return b < LOAD_BUCKETS ? b : LOAD_BUCKETS - 1;
}

/* The middle of the values bucket b holds. */
static double bucket_mid_ns(unsigned b) {
  if (b < (1u << LOAD_SUB_BITS)) return (double)b;
  unsigned e = (b >> LOAD_SUB_BITS) + LOAD_SUB_BITS - 1;
  uint64_t sub = b & ((1u << LOAD_SUB_BITS) - 1);
  uint64_t lo = (UINT64_C(1) << e) | (sub << (e - LOAD_SUB_BITS));
  uint64_t width = UINT64_C(1) << (e - LOAD_SUB_BITS);
  return (double)lo + (double)(width - 1) / 2;
}

void load_round_end(load_conn *c, uint64_t start) {
  uint64_t end = load_round_start();
  c->rounds[bucket_of(end > start ? end - start : 0)]++;
}

/* The q-quantile (0 < q <= 1) of the merged histogram, in microseconds. */
static double quantile_us(const uint64_t *h, uint64_t total, double q) {
  uint64_t want = (uint64_t)(q * (double)total + 0.999999), seen = 0;
  if (want == 0) want = 1;
  for (unsigned b = 0; b < LOAD_BUCKETS; b++) {
    seen += h[b];
    if (seen >= want) return bucket_mid_ns(b) / 1000.0;
  }
  return 0;
}

load_result load_clients_run(long conns, void *(*connection)(void *)) {
  load_result r = {0};
  pthread_t *threads = calloc((size_t)conns, sizeof *threads);
  load_conn *cs = calloc((size_t)conns, sizeof *cs);
  uint64_t *merged = calloc(LOAD_BUCKETS, sizeof *merged);
  if (threads == NULL || cs == NULL || merged == NULL) {
    fprintf(stderr, "load client: out of memory\n");
    exit(1);
  }
  double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
  long started = 0;
  for (; started < conns; started++)
    if (pthread_create(&threads[started], NULL, connection, &cs[started]) !=
        0)
      break;
  r.failed = conns - started; /* threads that could not start */
  uint64_t total = 0;
  for (long i = 0; i < started; i++) {
    pthread_join(threads[i], NULL);
    r.failed += cs[i].failed != 0;
    for (unsigned b = 0; b < LOAD_BUCKETS; b++) {
      merged[b] += cs[i].rounds[b];
      total += cs[i].rounds[b];
    }
  }
  r.seconds = now(CLOCK_MONOTONIC) - t0;
  r.cpu_s = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  r.peak_rss_kb = (long)ru.ru_maxrss;
  if (total > 0) {
    r.p50_us = quantile_us(merged, total, 0.50);
    r.p99_us = quantile_us(merged, total, 0.99);
  }
  free(threads);
  free(cs);
  free(merged);
  return r;
}
