/*
 * http - an HTTP/1.1 "Hello, World!" server (the TechEmpower plaintext test).
 *
 *   bazel run //examples:http -- 8080              (0.0.0.0:8080)
 *   bazel run //examples:http -- 8080 127.0.0.1
 *   curl http://127.0.0.1:8080/
 *
 * One task per connection. Each turn of a connection is one read and one
 * write: every complete request in what was read is parsed (clients may
 * pipeline many), the answers are appended to one output buffer in order,
 * and the buffer goes out in a single write. Connections stay open
 * (keep-alive) unless the client asks otherwise. A head over 8 KiB gets
 * 431, a malformed request 400, and the connection is then closed.
 *
 * SIGINT or SIGTERM stops the server gracefully: the accept loop ends, the
 * open connections are dropped, and the process exits 0.
 */
#include <stdio.h>
#include <stdlib.h>

#include "examples/http_server.h"
#include "pollux.h"

static int usage(const char *why) {
  fprintf(stderr,
          "http: %s\n"
          "usage: http PORT [HOST]   (PORT 1..65535, HOST numeric, default "
          "0.0.0.0)\n",
          why);
  return 2;
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) return usage("wrong number of arguments");
  char *end = NULL;
  long port = strtol(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || port < 1 || port > 65535)
    return usage("PORT must be a number from 1 to 65535");
  const char *host = argc == 3 ? argv[2] : "0.0.0.0";

  px_tcp_listener *listener;
  int err = px_tcp_bind(host, (uint16_t)port, &listener);
  if (err == PX_EINVAL) return usage("HOST must be a numeric address");
  if (err < 0) {
    fprintf(stderr, "http: listen on %s:%ld: %s\n", host, port,
            px_strerror(err));
    return 1;
  }
  return http_serve("http", listener, host, (int)port, NULL);
}
