/*
 * http - an HTTP/1.1 "Hello, World!" server (the TechEmpower plaintext test)
 * that defends itself like a production server.
 *
 *   bazel run //examples:http -- 8080              (0.0.0.0:8080)
 *   bazel run //examples:http -- -t 5 -c 100 8080 127.0.0.1
 *   curl http://127.0.0.1:8080/
 *
 * One task per connection. Each turn of a connection is one read and one
 * write: every complete request in what was read is parsed (clients may
 * pipeline many), the answers are appended to one output buffer in order,
 * and the buffer goes out in a single write. Connections stay open
 * (keep-alive) unless the client asks otherwise. A head over 8 KiB gets
 * 431, a body over 8 KiB 413, a malformed request or a missing, repeated
 * or invalid Host (RFC 9112 section 3.2; HTTP/1.0 may omit it) 400, and
 * the connection is then closed.
 *
 * Limits:
 *   -t IDLE   a connection silent between requests for IDLE seconds is
 *             closed (default 60; 0: no timeouts at all). A request's head,
 *             then its body, must each arrive within min(IDLE, 10) seconds
 *             of their start, however the bytes trickle in: a late head is
 *             closed silently (a slowloris, as nginx does), a late body
 *             gets 408 first. The first head's time includes the TLS
 *             handshake (https). A write without progress for IDLE fails.
 *   -c MAX    at most MAX connections at once (default 10000): further
 *             clients wait in the listen backlog until one ends.
 * A connection gets a 2 KiB input buffer at its first read and a 2 KiB
 * output buffer at its first answer, bigger ones only for a large request
 * or a pipelined burst: an idle connection costs about 5 KiB in all.
 *
 * SIGINT or SIGTERM stops the server gracefully: the listener closes,
 * idle connections close, a connection in the middle of a request
 * finishes it (its answer, marked Connection: close, is written in full)
 * and then closes; after 10 seconds the rest are cut. Then exit 0.
 */
#include <stdio.h>

#include "examples/http_server.h"
#include "pollux.h"

int main(int argc, char **argv) {
  http_options o;
  int a = http_args(argc, argv, 1, 2, &o);
  int rc = a < 0 ? 2 : http_serve("http", a + 1 < argc ? argv[a + 1] : "0.0.0.0", NULL, &o);
  if (rc == 2)
    fprintf(stderr, "usage: http [-t IDLE_SECONDS] [-c MAX_CONNECTIONS] PORT [HOST]"
                    "   (PORT 1..65535, HOST numeric, default 0.0.0.0)\n");
  return rc;
}
