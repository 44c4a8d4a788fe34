/*
 * http_parse - a small, strict HTTP/1.x request parser for examples/http.c.
 *
 * It looks at bytes already in memory and never allocates or copies: the
 * request's method and target point into the caller's buffer. It is fed
 * the whole unconsumed buffer each time, so pipelined requests are parsed
 * one after another by advancing past what each call consumed.
 */
#ifndef POLLUX_EXAMPLES_HTTP_PARSE_H
#define POLLUX_EXAMPLES_HTTP_PARSE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What http_parse_request returns besides a byte count. */
enum {
  HTTP_INCOMPLETE = 0,    /* no complete request yet: read more */
  HTTP_BAD = -400,        /* malformed, or a bad Host: answer 400 and close */
  HTTP_TOO_LARGE = -431,  /* head longer than max_head: 431 and close */
  HTTP_BODY_TOO_LARGE = -413, /* Content-Length over max_body: 413 */
  HTTP_UNSUPPORTED = -501 /* Transfer-Encoding (chunked bodies): 501 */
};

typedef struct http_request {
  const char *method; /* points into the buffer; not NUL-terminated */
  size_t method_len;
  const char *target;
  size_t target_len;
  int minor;          /* HTTP/1.minor: 0 or 1 */
  int keep_alive;     /* 1 if the connection stays open after this one */
  size_t content_length;
  size_t head_len;    /* the head's length once it is complete, else 0 */
} http_request;

/*
 * Parses the request at the start of buf[0..len). Returns the number of
 * bytes it occupies (head and body) when it is complete and valid,
 * HTTP_INCOMPLETE when more bytes are needed, or a negative HTTP_* error as
 * soon as the bytes seen make the request invalid. `max_head` bounds the
 * request line plus headers (with the blank line); `max_body` the body.
 * Host is checked as RFC 9112 section 3.2 asks: an HTTP/1.1 request without
 * one, any request with two, or a value that is not `host[:port]` is
 * HTTP_BAD (HTTP/1.0 may leave it out). A request whose head is complete
 * but whose body is not yet is HTTP_INCOMPLETE with req->head_len set.
 */
long http_parse_request(const char *buf, size_t len, size_t max_head,
                        size_t max_body, http_request *req);

#ifdef __cplusplus
}
#endif

#endif
