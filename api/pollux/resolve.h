/**
 * @file
 * pollux/resolve.h - host names to addresses, without blocking the runtime.
 *
 * Name resolution (getaddrinfo: /etc/hosts, DNS, ...) blocks, so it runs on
 * the runtime's blocking pool (tokio's lookup_host does the same). A
 * numeric address ("127.0.0.1", "::1") is answered on the first poll
 * without the pool.
 *
 *   PX_TRY_AWAIT(px_lookup_host_init(&self->look, "localhost", 8080));
 *   px_addr_list *l = self->look.base.output.ptr;   // ours now
 *   for (size_t i = 0; i < l->len; i++) use(&l->addrs[i]);
 *   px_addr_list_free(l);
 *
 *   PX_TRY_AWAIT(px_tcp_connect_host_init(&self->conn, "localhost", 8080));
 *   px_stream *s = self->conn.base.output.ptr;
 *
 * Cancel safety: dropping a lookup while getaddrinfo runs detaches it; its
 * result is freed when it finishes. Nothing leaks and nothing blocks.
 */
#ifndef POLLUX_RESOLVE_H
#define POLLUX_RESOLVE_H

/** @addtogroup io
 * @{
 */

#include <stddef.h>
#include <stdint.h>

#include "pollux/blocking.h"
#include "pollux/future.h"
#include "pollux/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Private: a lookup's state shared with the pool thread running it. */
struct px__lookup;

/** The addresses a lookup found: `len` of them, in the resolver's order. */
typedef struct px_addr_list {
  size_t len;       /**< how many addresses (at least 1) */
  px_addr addrs[];  /**< the addresses, each with the port asked for */
} px_addr_list;

/** Frees a list a lookup returned. NULL is ignored. */
void px_addr_list_free(px_addr_list *l);

/**
 * Resolves a host name and a port to socket addresses (IPv4 and IPv6, in
 * the order getaddrinfo prefers). Completes with output.ptr = a
 * px_addr_list that the caller owns from then on (px_addr_list_free), or
 * NULL on error. Errors: PX_EINVAL (NULL or empty host, a
 * host longer than 253 bytes), PX_EHOSTNOTFOUND (no such name, or no
 * address for it), PX_EAGAIN (a temporary failure of the name server),
 * PX_ENOMEM, PX_ENORUNTIME, PX_ESHUTDOWN, PX_EIO (any other resolver
 * failure).
 */
typedef struct px_lookup_host {
  px_future base;           /**< the future header; output.ptr = the list */
  px_addr_list *numeric;    /**< private: a numeric host's answer */
  struct px__lookup *state; /**< private */
  px_blocking job;          /**< private: getaddrinfo on the pool */
  int err;                  /**< private: a bad argument, reported by poll */
} px_lookup_host;

/** Prepares a lookup of `host`:`port`; NULL for a NULL future. */
px_future *px_lookup_host_init(px_lookup_host *f, const char *host,
                               uint16_t port);

/**
 * Connects to a host given by name or address: resolves it
 * (px_lookup_host), then tries each address in turn until one accepts.
 * Completes with output.ptr = a connected px_stream * (close it with
 * px_tcp_close), or with the error of the last address tried (or of the
 * lookup). Dropping it mid-way closes any half-open socket.
 */
typedef struct px_tcp_connect_host {
  px_future base;         /**< the future header; output.ptr = the stream */
  px_lookup_host lookup;  /**< private */
  px_tcp_connect connect; /**< private */
  px_addr_list *addrs;    /**< private: the lookup's answer */
  size_t next;            /**< private: the next address to try */
  int phase;              /**< private: 0 lookup, 1 connecting */
} px_tcp_connect_host;

/** Prepares a connect to `host`:`port`; NULL for a NULL future. */
px_future *px_tcp_connect_host_init(px_tcp_connect_host *f, const char *host,
                                    uint16_t port);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_RESOLVE_H */
