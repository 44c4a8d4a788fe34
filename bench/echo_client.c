/*
 * echo_client: load for echo servers. N connections, each on its own
 * thread with a plain blocking socket, each doing M round trips of a
 * 64-byte message (write it, read all 64 bytes back, check them). Prints
 * the usual result line; tools/bench adds the server's CPU time. With -r
 * each round trip is made on a new connection (closed after it): load for
 * the accept path.
 *
 *   echo_client [-r] HOST PORT CONNECTIONS ROUNDS [SIZE]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/load_client.h"

static struct sockaddr_in server;
static long rounds;
static size_t size = 64;
static int reconnect; /* -r: a connection per round trip */

/* A connection to the server; -1 (and *failed set) when it failed. */
static int dial(long *failed) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0) {
    perror("echo_client: connect");
    *failed = 1;
    close(fd);
    return -1;
  }
  return fd;
}

static void *client(void *arg) {
  load_conn *c = arg;
  long *failed = &c->failed;
  int fd = dial(failed);
  char out[4096], in[4096];
  for (size_t i = 0; i < size; i++) out[i] = (char)('a' + i % 26);
  for (long r = 0; r < rounds && !*failed; r++) {
    /* A round's time: from before the connect (-r) or the write to the
     * last byte read. */
    uint64_t t = load_round_start();
    if (fd < 0 && (fd = dial(failed)) < 0) break;
    out[0] = (char)r; /* so a stale echo cannot pass the check */
    if (write(fd, out, size) != (ssize_t)size) *failed = 1;
    size_t got = 0;
    while (got < size && !*failed) {
      ssize_t n = read(fd, in + got, size - got);
      if (n <= 0) *failed = 1;
      else got += (size_t)n;
    }
    if (!*failed && memcmp(in, out, size) != 0) *failed = 1;
    load_round_end(c, t);
    if (reconnect) {
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) close(fd);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-r") == 0) {
    reconnect = 1;
    argv++;
    argc--;
  }
  if (argc < 5 || argc > 6) {
    fprintf(stderr,
            "usage: echo_client [-r] HOST PORT CONNECTIONS ROUNDS [SIZE]\n");
    return 2;
  }
  long conns = atol(argv[3]);
  rounds = atol(argv[4]);
  if (argc == 6) size = (size_t)atol(argv[5]);
  server.sin_family = AF_INET;
  server.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1 || conns < 1 ||
      conns > 10000 || rounds < 1 || size < 1 || size > 4096) {
    fprintf(stderr, "echo_client: bad arguments\n");
    return 2;
  }
  load_result r = load_clients_run(conns, client);
  double ops = (double)conns * (double)rounds;
  printf("name=%s config=\"client\" ops=%.0f seconds=%.4f ops_per_s=%.0f "
         "cpu_s=%.4f peak_rss_kb=%ld connections=%ld p50_us=%.1f "
         "p99_us=%.1f failed=%ld\n",
         reconnect ? "echo_connect" : "echo", ops, r.seconds, ops / r.seconds,
         r.cpu_s, r.peak_rss_kb, conns, r.p50_us, r.p99_us, r.failed);
  return r.failed ? 1 : 0;
}
