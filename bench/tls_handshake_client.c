/*
 * tls_handshake_client: load for the TLS handshake benchmark
 * (https_handshake). N connections at a time, each on its own thread with
 * a blocking socket; each does M times: connect, a FULL TLS handshake (a
 * fresh SSL object with no session to resume, tickets refused), one
 * "GET / HTTP/1.1" with "Connection: close", read the answer until the
 * server's close_notify, send ours, close.
 *
 * Why not `wrk -H "Connection: close"`: wrk keeps each connection's TLS
 * session (SSL_SESS_CACHE_CLIENT, SSL_clear) and resumes it on the next
 * connect, so most of its "handshakes" skip the certificate signature, and
 * it counts a request as done whether or not the server honoured the
 * close. Here every operation is checked to be the same work on every
 * server: a full handshake (SSL_session_reused() == 0), a 200 answer with
 * "Connection: close", and a server-initiated TLS close (close_notify)
 * after it; anything else counts as a failure and the client exits 1.
 *
 *   tls_handshake_client HOST PORT CONNECTIONS ROUNDS
 *
 * Prints the usual result line; tools/bench adds the server's CPU time, so
 * requests per server CPU-second are full handshakes per CPU-second.
 * `tickets_per_op` is how many session tickets the server sent per
 * handshake (work the server does either way; it should match between
 * contenders).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/load_client.h"

static struct sockaddr_in server;
static long rounds;
static SSL_CTX *ctx;
static atomic_long tickets;

static const char k_request[] =
    "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/* Counts the server's session tickets; keeps none (returns 0), so no
 * later connection can resume. */
static int on_ticket(SSL *ssl, SSL_SESSION *session) {
  (void)ssl;
  (void)session;
  atomic_fetch_add(&tickets, 1);
  return 0;
}

/* One connection's round; returns 0 when it was the whole, expected work. */
static int one_round(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int bad = 1;
  SSL *ssl = NULL;
  if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0) goto out;
  ssl = SSL_new(ctx);
  if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) goto out;
  SSL_set_tlsext_host_name(ssl, "localhost");
  if (SSL_connect(ssl) != 1 || SSL_session_reused(ssl)) goto out;
  if (SSL_write(ssl, k_request, (int)sizeof k_request - 1) !=
      (int)sizeof k_request - 1)
    goto out;
  char in[4096];
  size_t got = 0;
  for (;;) {
    int n = SSL_read(ssl, in + got, (int)(sizeof in - 1 - got));
    if (n > 0) {
      got += (size_t)n;
      if (got == sizeof in - 1) goto out; /* a far longer answer */
      continue;
    }
    /* The server's close_notify: the clean end this load asks for. */
    if (SSL_get_error(ssl, n) != SSL_ERROR_ZERO_RETURN) goto out;
    break;
  }
  in[got] = '\0';
  if (strncmp(in, "HTTP/1.1 200 ", 13) != 0 ||
      strstr(in, "\r\nConnection: close\r\n") == NULL ||
      strstr(in, "\r\n\r\nHello, World!") == NULL)
    goto out;
  SSL_shutdown(ssl); /* our close_notify, as a polite client sends */
  bad = 0;
out:
  SSL_free(ssl);
  close(fd);
  return bad ? -1 : 0;
}

static void *client(void *arg) {
  load_conn *c = arg;
  for (long r = 0; r < rounds && c->failed == 0; r++) {
    uint64_t t = load_round_start();
    if (one_round() < 0) c->failed = 1;
    load_round_end(c, t);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr,
            "usage: tls_handshake_client HOST PORT CONNECTIONS ROUNDS\n");
    return 2;
  }
  long conns = atol(argv[3]);
  rounds = atol(argv[4]);
  server.sin_family = AF_INET;
  server.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1 || conns < 1 ||
      conns > 1000 || rounds < 1) {
    fprintf(stderr, "tls_handshake_client: bad arguments\n");
    return 2;
  }
  ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) {
    fprintf(stderr, "tls_handshake_client: SSL_CTX_new failed\n");
    return 1;
  }
  /* A load generator, not a client: the throwaway certificate is not
   * verified (wrk does not verify either). No session is ever stored, so
   * each handshake is a full one; the callback only counts tickets. */
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                          SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_ticket);
  const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);

  load_result r = load_clients_run(conns, client);
  double ops = (double)conns * (double)rounds;
  printf("name=tls_handshake config=\"client\" ops=%.0f seconds=%.4f "
         "ops_per_s=%.0f cpu_s=%.4f peak_rss_kb=%ld connections=%ld "
         "tickets_per_op=%.2f p50_us=%.1f p99_us=%.1f failed=%ld\n",
         ops, r.seconds, ops / r.seconds, r.cpu_s, r.peak_rss_kb, conns,
         (double)atomic_load(&tickets) / ops, r.p50_us, r.p99_us, r.failed);
  SSL_CTX_free(ctx);
  return r.failed ? 1 : 0;
}
