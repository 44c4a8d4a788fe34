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
 * is refused). -t and -c work as for http (http.c): the handshake and the
 * first request head share one deadline, min(IDLE, 10) seconds.
 */
#include <stdio.h>

#include "examples/http_server.h"
#include "pollux.h"

static int usage(void) {
  fprintf(stderr,
          "usage: https [-t IDLE_SECONDS] [-c MAX_CONNECTIONS] PORT CERT KEY "
          "[HOST]   (PORT 1..65535, CERT and KEY PEM files, HOST numeric, "
          "default 0.0.0.0; -t and -c as for http)\n");
  return 2;
}

int main(int argc, char **argv) {
  http_options o;
  int a = http_args(argc, argv, 3, 4, &o);
  if (a < 0) return usage();
  px_tls_context *tls;
  int err = px_tls_context_new(&tls, PX_TLS_SERVER);
  if (err == 0) err = px_tls_context_use_cert(tls, argv[a + 1], argv[a + 2]);
  const char *alpn[] = {"http/1.1"};
  if (err == 0) err = px_tls_context_set_alpn(tls, alpn, 1);
  if (err < 0) {
    fprintf(stderr, "https: %s\n", px_tls_context_error(tls)[0]
                                       ? px_tls_context_error(tls)
                                       : px_strerror(err));
    px_tls_context_free(tls);
    return 1;
  }
  int rc = http_serve("https", a + 3 < argc ? argv[a + 3] : "0.0.0.0", tls, &o);
  px_tls_context_free(tls);
  return rc == 2 ? usage() : rc;
}
