/*
 * raw_epoll_http: the floor for I/O overhead. A single-threaded HTTP
 * plaintext server written straight on epoll (level-triggered, no runtime,
 * no tasks, no wakers): whatever pollux's HTTP server costs above this is
 * the price of the abstraction.
 *
 *   bazel run -c opt //bench:raw_epoll_http -- PORT
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/http_parse.h"

enum { MAX_FD = 65536, MAX_EVENTS = 256, BUF = 4096, MAX_BATCH = 64 };

/* Per-connection parse state, indexed by descriptor. */
static int parse_state[MAX_FD];

static void close_conn(int ep, int fd) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
}

/* Reads what is there and answers every complete request. Responses are
 * small, so a blocking-free write normally takes them whole; a short write
 * (a client that stopped reading) just drops the connection. */
static void serve(int ep, int fd) {
  static char in[BUF];
  static char out[MAX_BATCH * sizeof bench_http_response];
  ssize_t n = read(fd, in, sizeof in);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    close_conn(ep, fd);
    return;
  }
  size_t reqs = bench_http_feed(&parse_state[fd], in, (size_t)n);
  while (reqs > 0) {
    size_t k = reqs < MAX_BATCH ? reqs : MAX_BATCH;
    for (size_t i = 0; i < k; i++)
      memcpy(out + i * BENCH_HTTP_RESPONSE_LEN, bench_http_response,
             BENCH_HTTP_RESPONSE_LEN);
    size_t len = k * BENCH_HTTP_RESPONSE_LEN;
    if (write(fd, out, len) != (ssize_t)len) {
      close_conn(ep, fd);
      return;
    }
    reqs -= k;
  }
}

int main(int argc, char **argv) {
  int port = argc == 2 ? atoi(argv[1]) : 0;
  if (port < 1 || port > 65535) {
    fprintf(stderr, "usage: raw_epoll_http PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
      listen(lfd, 1024) < 0) {
    perror("raw_epoll_http: listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  printf("raw_epoll_http: listening on port %d\n", port);
  fflush(stdout);

  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(ep, events, MAX_EVENTS, -1);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd != lfd) {
        serve(ep, fd);
        continue;
      }
      int c;
      while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        if (c >= MAX_FD) {
          close(c);
          continue;
        }
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        parse_state[c] = 0;
        struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
      }
    }
  }
}
