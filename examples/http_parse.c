/*
 * A strict HTTP/1.x request parser (RFC 9112), small enough to read at once.
 *
 * Strict means it refuses what a lenient parser would guess at: bare LF line
 * ends, obsolete header folding, spaces before a colon, conflicting
 * Content-Length values, any Transfer-Encoding. Every one of those is a
 * known request-smuggling vector when a proxy and a server guess
 * differently, and refusing costs an example nothing.
 */
#include "examples/http_parse.h"

#include <ctype.h>
#include <string.h>

/* RFC 9110 token characters: what methods and header names are made of. */
static int is_tchar(unsigned char c) {
  return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Visible characters and obs-text: what a request target may hold. */
static int is_vchar(unsigned char c) { return c > 0x20 && c != 0x7f; }

/* Case-insensitive comparison of a span with a lowercase literal. */
static int span_is(const char *p, size_t n, const char *lit) {
  if (strlen(lit) != n) return 0;
  for (size_t i = 0; i < n; i++)
    if ((p[i] | 0x20) != lit[i]) return 0;
  return 1;
}

/* Is `word` one of the comma-separated tokens of a header value? */
static int list_has(const char *p, size_t n, const char *word) {
  size_t i = 0;
  while (i < n) {
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ',')) i++;
    size_t start = i;
    while (i < n && p[i] != ',' && p[i] != ' ' && p[i] != '\t') i++;
    if (i > start && span_is(p + start, i - start, word)) return 1;
  }
  return 0;
}

/* Finds the CRLF ending the line at p; returns its offset or -1. A lone LF
 * or CR inside the line is an error (-2). */
static long line_end(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n') return -2; /* LF without CR */
    if (p[i] == '\r') {
      if (i + 1 >= n) return -1;
      return p[i + 1] == '\n' ? (long)i : -2;
    }
  }
  return -1;
}

/* "METHOD SP TARGET SP HTTP/1.x": fills req; 0 or HTTP_BAD. */
static int parse_request_line(const char *p, size_t n, http_request *req) {
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)p[i])) i++;
  if (i == 0 || i >= n || p[i] != ' ') return HTTP_BAD;
  req->method = p;
  req->method_len = i;
  size_t t = ++i;
  while (i < n && is_vchar((unsigned char)p[i])) i++;
  if (i == t || i >= n || p[i] != ' ') return HTTP_BAD;
  req->target = p + t;
  req->target_len = i - t;
  i++;
  if (n - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0) return HTTP_BAD;
  if (p[i + 7] != '0' && p[i + 7] != '1') return HTTP_BAD;
  req->minor = p[i + 7] - '0';
  return 0;
}

/*
 * Host = uri-host [ ":" port ] (RFC 9110 section 7.2, RFC 3986): a name of
 * unreserved, sub-delims and %XX characters, or an IP literal in brackets,
 * then optional port digits. An empty value is allowed (no authority).
 */
static int valid_host(const char *p, size_t n) {
  size_t lit = n > 0 && p[0] == '[', i;
  for (i = lit; i < n && p[i] != (lit ? ']' : ':'); i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '%') {
      if (i + 2 >= n || !isxdigit((unsigned char)p[i + 1]) ||
          !isxdigit((unsigned char)p[i + 2]))
        return 0;
      i += 2;
    } else if (!isalnum(c) && !(c && strchr("-._~!$&'()*+,;=", c)) &&
               !(lit && c == ':')) {
      return 0;
    }
  }
  if (lit && (i == n || i++ == 1)) return 0; /* no ']', or nothing in [] */
  if (i < n && p[i++] != ':') return 0;
  while (i < n)
    if (!isdigit((unsigned char)p[i++])) return 0;
  return 1;
}

/* What the header lines seen so far said. */
typedef struct head_state {
  int seen_length, conn_close, conn_keep, hosts;
} head_state;

/* Content-Length: digits only; a repeat must agree with the first. */
static int parse_length(const char *v, size_t n, int *seen, size_t *out) {
  if (n == 0) return HTTP_BAD;
  size_t value = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return HTTP_BAD;
    if (value > ((size_t)-1 - 9) / 10) return HTTP_BAD; /* overflow */
    value = value * 10 + (size_t)(v[i] - '0');
  }
  if (*seen && value != *out) return HTTP_BAD;
  *seen = 1;
  *out = value;
  return 0;
}

/* One "Name: value" line; updates req. */
static int parse_header(const char *p, size_t n, http_request *req,
                        head_state *st) {
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)p[i])) i++;
  /* Folded lines start with whitespace; "Name :" has a space before the
   * colon. Both leave i at 0 or at a non-colon: refused. */
  if (i == 0 || i >= n || p[i] != ':') return HTTP_BAD;
  const char *name = p;
  size_t name_len = i++;
  while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
  size_t end = n;
  while (end > i && (p[end - 1] == ' ' || p[end - 1] == '\t')) end--;
  for (size_t k = i; k < end; k++) {
    unsigned char c = (unsigned char)p[k];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return HTTP_BAD;
  }
  const char *value = p + i;
  size_t value_len = end - i;
  if (span_is(name, name_len, "content-length"))
    return parse_length(value, value_len, &st->seen_length,
                        &req->content_length);
  if (span_is(name, name_len, "host")) {
    st->hosts++;
    return valid_host(value, value_len) ? 0 : HTTP_BAD;
  }
  if (span_is(name, name_len, "transfer-encoding")) return HTTP_UNSUPPORTED;
  if (span_is(name, name_len, "connection")) {
    if (list_has(value, value_len, "close")) st->conn_close = 1;
    if (list_has(value, value_len, "keep-alive")) st->conn_keep = 1;
  }
  return 0;
}

long http_parse_request(const char *buf, size_t len, size_t max_head,
                        size_t max_body, http_request *req) {
  if (buf == NULL || req == NULL) return HTTP_BAD;
  memset(req, 0, sizeof(*req));
  /* Only the first max_head bytes can hold a valid head; looking further
   * would let a client make every call scan an ever larger buffer. */
  size_t scan = len < max_head ? len : max_head;
  head_state st = {0, 0, 0, 0};
  size_t pos = 0;
  for (int line = 0;; line++) {
    long e = line_end(buf + pos, scan - pos);
    if (e == -2) return HTTP_BAD;
    if (e == -1) {
      /* Fail early on a request line that is already wrong, so garbage
       * without line ends gets its 400 instead of waiting for more. */
      if (line == 0 && scan > 0 && !is_tchar((unsigned char)buf[0]))
        return HTTP_BAD;
      return len >= max_head ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
    }
    const char *p = buf + pos;
    size_t n = (size_t)e;
    pos += n + 2;
    int err;
    if (line == 0) {
      err = parse_request_line(p, n, req);
    } else if (n == 0) {
      break; /* the blank line: end of the head */
    } else {
      err = parse_header(p, n, req, &st);
    }
    if (err < 0) return err;
  }
  if (req->content_length > max_body) return HTTP_BODY_TOO_LARGE;
  /* RFC 9112 section 3.2: exactly one Host in 1.1, at most one in 1.0. */
  if (st.hosts > 1 || (st.hosts == 0 && req->minor == 1)) return HTTP_BAD;
  /* HTTP/1.1 keeps the connection unless told to close; 1.0 the reverse. */
  req->keep_alive =
      req->minor == 1 ? !st.conn_close : (st.conn_keep && !st.conn_close);
  req->head_len = pos;
  if (len - pos < req->content_length) return HTTP_INCOMPLETE;
  return (long)(pos + req->content_length);
}
