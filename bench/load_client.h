/*
 * The scaffolding the //bench load clients share (echo_client,
 * tls_handshake_client): one thread per connection, timed together.
 */
#ifndef POLLUX_BENCH_LOAD_CLIENT_H
#define POLLUX_BENCH_LOAD_CLIENT_H

typedef struct load_result {
  double seconds; /* wall clock, first thread started to last joined */
  double cpu_s;   /* the client's own CPU time over the same span */
  long failed;    /* connections whose thread set its failure flag */
  long peak_rss_kb;
} load_result;

/*
 * Runs `connection` on `conns` threads, each given a pointer to its own
 * failure flag (a long, 0 at start; the thread sets it non-zero when a
 * round went wrong), and waits for all of them.
 */
load_result load_clients_run(long conns, void *(*connection)(void *));

#endif
