/*
 * The HTTP/1.1 server of examples/http and examples/https (http_server.c).
 */
#ifndef POLLUX_EXAMPLES_HTTP_SERVER_H
#define POLLUX_EXAMPLES_HTTP_SERVER_H

#include "pollux.h"

/* The command line's limits (http.c documents them). */
typedef struct http_options {
  uint16_t port;
  px_duration idle;    /* -t: between requests, and per write; 0: none */
  px_duration request; /* a request's head, then its body: min(idle, 10 s) */
  size_t max_conns;    /* -c: connections served at once */
} http_options;

/*
 * Parses `[-t IDLE_SECONDS] [-c MAX_CONNECTIONS] PORT ...` with between
 * min_args and max_args arguments from PORT on. Returns the index of PORT
 * in argv, or -1 for a usage error.
 */
int http_args(int argc, char **argv, int min_args, int max_args,
              http_options *o);

/*
 * Serves HTTP on host:o->port (HTTPS when `tls` is a server context) until
 * SIGINT or SIGTERM, then finishes the requests in flight. `name` prefixes
 * the log lines. Returns the exit code: 0, 1, or 2 when HOST is invalid.
 */
int http_serve(const char *name, const char *host, px_tls_context *tls,
               const http_options *o);

#endif
