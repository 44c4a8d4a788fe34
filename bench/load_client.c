#include "bench/load_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

load_result load_clients_run(long conns, void *(*connection)(void *)) {
  load_result r = {0};
  pthread_t *threads = calloc((size_t)conns, sizeof *threads);
  long *failed = calloc((size_t)conns, sizeof *failed);
  if (threads == NULL || failed == NULL) {
    fprintf(stderr, "load client: out of memory\n");
    exit(1);
  }
  double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
  long started = 0;
  for (; started < conns; started++)
    if (pthread_create(&threads[started], NULL, connection,
                       &failed[started]) != 0)
      break;
  r.failed = conns - started; /* threads that could not start */
  for (long i = 0; i < started; i++) {
    pthread_join(threads[i], NULL);
    r.failed += failed[i] != 0;
  }
  r.seconds = now(CLOCK_MONOTONIC) - t0;
  r.cpu_s = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  r.peak_rss_kb = (long)ru.ru_maxrss;
  free(threads);
  free(failed);
  return r;
}
