/*
 * The HTTP/1.1 server of examples/http and examples/https (http_server.c).
 */
#ifndef POLLUX_EXAMPLES_HTTP_SERVER_H
#define POLLUX_EXAMPLES_HTTP_SERVER_H

#include "pollux.h"

/*
 * Serves HTTP on `listener` (HTTPS when `tls` is a server context) until
 * SIGINT or SIGTERM, then closes the listener. `name` prefixes the log
 * lines; host and port are only printed. Returns the process exit code.
 */
int http_serve(const char *name, px_tcp_listener *listener, const char *host,
               int port, px_tls_context *tls);

#endif
