/*
 * https - the HTTP example (http.c) over TLS: the same server, the same
 * connection code (http_server.c works on px_stream), with each accepted
 * connection wrapped in a TLS stream and handshaken first.
 *
 *   bazel run //examples:https -- 8443 cert.pem key.pem              (0.0.0.0)
 *   bazel run //examples:https -- 8443 cert.pem key.pem 127.0.0.1
 *   curl --cacert ca.pem https://localhost:8443/
 *
 * cert.pem is the server's certificate chain (leaf first), key.pem its
 * private key, both PEM. ALPN offers http/1.1 (a client asking only for h2
 * is refused). A client gets 10 seconds for its handshake.
 */
#include <stdio.h>
#include <stdlib.h>

#include "examples/http_server.h"
#include "pollux.h"

static int usage(const char *why) {
  fprintf(stderr,
          "https: %s\n"
          "usage: https PORT CERT KEY [HOST]   (PORT 1..65535, CERT and KEY "
          "PEM files, HOST numeric, default 0.0.0.0)\n",
          why);
  return 2;
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) return usage("wrong number of arguments");
  char *end = NULL;
  long port = strtol(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || port < 1 || port > 65535)
    return usage("PORT must be a number from 1 to 65535");
  const char *host = argc == 5 ? argv[4] : "0.0.0.0";

  px_tls_context *tls;
  int err = px_tls_context_new(&tls, PX_TLS_SERVER);
  if (err == 0) err = px_tls_context_use_cert(tls, argv[2], argv[3]);
  const char *alpn[] = {"http/1.1"};
  if (err == 0) err = px_tls_context_set_alpn(tls, alpn, 1);
  if (err < 0) {
    fprintf(stderr, "https: %s\n", px_tls_context_error(tls)[0]
                                       ? px_tls_context_error(tls)
                                       : px_strerror(err));
    px_tls_context_free(tls);
    return 1;
  }

  px_tcp_listener *listener;
  err = px_tcp_bind(host, (uint16_t)port, &listener);
  if (err < 0) px_tls_context_free(tls);
  if (err == PX_EINVAL) return usage("HOST must be a numeric address");
  if (err < 0) {
    fprintf(stderr, "https: listen on %s:%ld: %s\n", host, port,
            px_strerror(err));
    return 1;
  }
  int rc = http_serve("https", listener, host, (int)port, tls);
  px_tls_context_free(tls);
  return rc;
}
