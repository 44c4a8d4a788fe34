/*
 * bench/http_parse.h - the request counting every benchmark HTTP server
 * shares (raw epoll, libuv; the tokio peer has the same in Rust): one
 * request per "\r\n\r\n", tracked across reads so pipelined and split
 * requests are both counted right. The answer is a fixed plaintext one.
 */
#ifndef POLLUX_BENCH_HTTP_PARSE_H
#define POLLUX_BENCH_HTTP_PARSE_H

#include <stddef.h>

static const char bench_http_response[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n"
    "\r\nHello, World!";
#define BENCH_HTTP_RESPONSE_LEN (sizeof bench_http_response - 1)

/* Feeds bytes; `*state` (start at 0) is how much of "\r\n\r\n" was seen.
 * Returns the number of requests completed by these bytes. */
static inline size_t bench_http_feed(int *state, const char *data, size_t n) {
  static const char end[4] = {'\r', '\n', '\r', '\n'};
  /* In a local, as the tokio peer's Rust has it: stored through `state`
   * the count would be reloaded and stored per byte, since a char may
   * alias it (the scan cost ~475 instructions per request that way). */
  int st = *state;
  size_t requests = 0;
  for (size_t i = 0; i < n; i++) {
    if (data[i] == end[st]) {
      if (++st == 4) {
        requests++;
        st = 0;
      }
    } else {
      st = data[i] == '\r' ? 1 : 0;
    }
  }
  *state = st;
  return requests;
}

#endif /* POLLUX_BENCH_HTTP_PARSE_H */
