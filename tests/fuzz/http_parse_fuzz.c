/*
 * libFuzzer target: the HTTP example's request parser. Whatever the bytes,
 * the parser must not read outside them, must say "incomplete" or one of its
 * error codes or a length within the input, and a parsed request's fields
 * must point inside the input. A request that parses must also parse the
 * same way when more bytes follow it (pipelining).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "examples/http_parse.h"

static int inside(const char *p, size_t n, const char *buf, size_t len) {
  return p >= buf && p + n <= buf + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A private copy, so reading one byte too far is caught by ASan. */
  char *buf = malloc(size ? size : 1);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  http_request req;
  long r = http_parse_request(buf, size, 8192, 8192, &req);
  if (r > 0) {
    if ((size_t)r > size) abort();
    if (!inside(req.method, req.method_len, buf, size)) abort();
    if (!inside(req.target, req.target_len, buf, size)) abort();
    if (req.minor != 0 && req.minor != 1) abort();
    /* The same request followed by more bytes parses to the same length. */
    char *more = malloc(size + 16);
    if (more != NULL) {
      memcpy(more, buf, size);
      memcpy(more + size, "GET / HTTP/1.1\r\n", 16);
      http_request again;
      if (http_parse_request(more, size + 16, 8192, 8192, &again) != r) abort();
      free(more);
    }
  } else if (r != HTTP_INCOMPLETE && r != HTTP_BAD && r != HTTP_TOO_LARGE &&
             r != HTTP_BODY_TOO_LARGE && r != HTTP_UNSUPPORTED) {
    abort();
  }
  free(buf);
  return 0;
}
