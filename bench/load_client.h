/*
 * The scaffolding the //bench load clients share (echo_client,
 * tls_handshake_client): one thread per connection, timed together, and
 * the time of each round (a round trip, a handshake) in a histogram, so
 * that the report gives latency beside throughput.
 */
#ifndef POLLUX_BENCH_LOAD_CLIENT_H
#define POLLUX_BENCH_LOAD_CLIENT_H

#include <stdint.h>

/* Round times in nanoseconds, log-linear: 32 buckets per power of two
 * (each within 3.2% of the values it holds; below 64 ns one per
 * nanosecond), up to 2^40 ns (18 minutes; longer ones go in the last). */
#define LOAD_SUB_BITS 5
#define LOAD_BUCKETS ((41 - LOAD_SUB_BITS) << LOAD_SUB_BITS)

/* One connection's thread state. */
typedef struct load_conn {
  long failed; /* 0 at start; non-zero once a round went wrong */
  uint32_t rounds[LOAD_BUCKETS]; /* times of its rounds (load_round_end) */
} load_conn;

typedef struct load_result {
  double seconds; /* wall clock, first thread started to last joined */
  double cpu_s;   /* the client's own CPU time over the same span */
  long failed;    /* connections whose thread set its failure flag */
  long peak_rss_kb;
  /* Of every round of every connection: 50th and 99th percentile, in
   * microseconds (0 when no round was timed). */
  double p50_us, p99_us;
} load_result;

/* A monotonic reading, to pass to load_round_end when the round is over. */
uint64_t load_round_start(void);
void load_round_end(load_conn *c, uint64_t start);

/*
 * Runs `connection` on `conns` threads, each given its own load_conn
 * (zeroed), and waits for all of them.
 */
load_result load_clients_run(long conns, void *(*connection)(void *));

#endif
