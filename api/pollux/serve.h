/**
 * @file
 * pollux/serve.h - a careful server's accept loop in one future: a cap on
 * connections, a pause after accept errors, a fair share of the thread
 * under a connect flood, and a graceful shutdown with a deadline (tokio's
 * Runtime::shutdown_timeout and tokio-util's CancellationToken, applied to
 * one listener).
 *
 *   static int start(px_serve_conn *c) {      // one call per connection
 *     conn f = PX_ASYNC_NEW(conn, .c = *c);  // c->stream, c->stop, c->arg
 *     return px_serve_spawn(c, PX_FUTURE(&f));
 *   }
 *   ...
 *   px_serve_opts o = {.conn = start, .max_connections = 10000,
 *                      .idle_timeout = px_secs(60), .signals = sig,
 *                      .grace = px_secs(5)};
 *   px_serve srv;
 *   int err = px_run(px_serve_init(&srv, listener, &o));
 *
 * What it does, in order:
 *   1. Takes a permit of the cap (max_connections) before each accept, so
 *      the (cap+1)th client waits in the kernel's backlog until a
 *      connection ends and gives its permit back.
 *   2. Accepts (px_tcp_accept: it spends the cooperative budget, so an
 *      accept loop run by px_run itself still lets the accepted
 *      connections run under a flood; running out of descriptors sheds
 *      connections there, see net.h, and only when no descriptor is left
 *      to shed with does it fail with PX_EMFILE). An accept error that a
 *      server should survive (PX_EMFILE, PX_ENFILE, PX_ENOBUFS, PX_ENOMEM
 *      and any other error but those listed at px_serve) pauses
 *      accepting: 5 ms, doubling
 *      up to 1 s while the errors go on, back to 5 ms after a success
 *      (Go's net/http), with a warning in the log.
 *   3. Wraps the stream in a px_deadline_stream when the options set
 *      deadlines, then calls the connection constructor, which spawns the
 *      connection's
 *      future with px_serve_spawn into the server's scope, detached: its
 *      memory goes when it ends, so the server holds memory for its live
 *      connections only.
 *   4. On shutdown (the token cancelled, or one of the signals received):
 *      closes the listener (new clients are refused), cancels the
 *      connections' stop token, waits up to `grace` for them to finish,
 *      then cancels those left and waits for them to go. A second signal
 *      during that wait ends it at once (the connections left are
 *      cancelled then), as a second Ctrl-C does in most servers.
 *   5. When a connection's future completes (not when it is cancelled),
 *      closes it gracefully (nginx's lingering_close): ends the write side
 *      (px_stream_shutdown: the client reads end of stream after all the
 *      future wrote), then reads and discards what the client still sends
 *      until its end of stream, an error or 1 s (PX_SERVE_LINGER), and
 *      only then closes. Closing with unread input would make the kernel
 *      reset the connection, which can destroy answers the client has not
 *      read yet. A drain's grace deadline cuts a linger short (the
 *      connection is cancelled then, like any other), and so does the
 *      server's drop. The linger's state (about 700 bytes) is allocated
 *      only when it begins; without the memory, the stream is closed at
 *      once.
 */
#ifndef POLLUX_SERVE_H
#define POLLUX_SERVE_H

/** @addtogroup io
 * @{
 */

#include <stddef.h>
#include <stdint.h>

#include "pollux/future.h"
#include "pollux/net.h"
#include "pollux/scope.h"
#include "pollux/signal.h"
#include "pollux/stream.h"
#include "pollux/sync.h"
#include "pollux/time.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * How long a connection whose future completed lingers at most: its write
 * side ended, discarding what the client still sends, before the server
 * closes it (see item 5 above).
 */
#define PX_SERVE_LINGER px_secs(1)

/** Private: what the server and its connections share (the cap). */
typedef struct px__serve_shared px__serve_shared;

struct px_serve;

/**
 * What the connection constructor is given for one accepted connection.
 * It lives only during the constructor's call; what the connection's
 * future needs (the stream, the stop token, arg) it copies into its frame
 * (copying the whole struct is fine: `.c = *c`).
 */
typedef struct px_serve_conn {
  /**
   * The accepted connection. It belongs to the server: px_serve closes it
   * after the connection's future ends (at once when it is cancelled; after
   * the lingering close of item 5 above when it completes), so the future
   * must not close it (px_stream_shutdown_init is fine).
   * The constructor may replace it with a stream that owns it (a
   * px_deadline_stream, a TLS stream from px_tls_server_new): the server
   * then closes that one instead, whether the connection was spawned or
   * not, and so the accepted stream through it, once.
   */
  px_stream *stream;
  /**
   * Cancelled when the server begins to shut down: a connection selects on
   * px_cancelled of it, or checks px_cancel_token_is_cancelled between
   * requests, and winds down. Valid for the whole life of the connection's
   * future (the connection holds a reference); do not drop it.
   */
  px_cancel_token *stop;
  void *arg;               /**< px_serve_opts.arg, as given */
  struct px_serve *server; /**< private */
  int spawned;             /**< private: px_serve_spawn succeeded */
} px_serve_conn;

/**
 * The connection constructor: builds the connection's future and hands it
 * to px_serve_spawn. Returns 0 or a negative PX_E* code. If it returns
 * without a successful px_serve_spawn (whatever it returns), the server
 * closes the stream and the connection is gone; the error is counted in
 * px_serve.conn_errors.
 */
typedef int (*px_serve_fn)(px_serve_conn *c);

/**
 * Spawns `future` as the connection `c` (only from the constructor, once):
 * the future is copied (future->vtable->size bytes, as px_spawn does), so
 * the caller's copy must not be used after success; it runs detached in
 * the server's scope and holds the connection's permit of the cap until it
 * ends. Errors: PX_EINVAL (NULL, a second spawn for `c`, a future already
 * polled or with a bad vtable), PX_ENOMEM, and px_scope_spawn's; on error
 * the caller still owns the future.
 */
int px_serve_spawn(px_serve_conn *c, const px_future *future);

/** How px_serve runs. Zero-initialise, then set what you need. */
typedef struct px_serve_opts {
  px_serve_fn conn;          /**< required: called once per accepted connection */
  void *arg;                 /**< handed to `conn` in px_serve_conn.arg */
  size_t max_connections;    /**< the cap on live connections; 0: none */
  px_cancel_token *shutdown; /**< optional: cancelling it shuts the server down (it must outlive the server) */
  px_signal *signals;        /**< optional: any signal it receives shuts the server down (it must outlive the server) */
  px_duration grace;         /**< how long live connections get to finish on shutdown */
  /**
   * Deadlines on every connection (0: none, the default): when one is set,
   * px_serve_conn.stream is a px_deadline_stream (stream.h) over the
   * accepted socket, with these limits, so an operation that waits too
   * long fails with PX_ETIMEDOUT: a silent client (idle), a slowloris
   * (read), a client that never reads (write).
   */
  px_duration idle_timeout;
  px_duration read_timeout;  /**< per read; see idle_timeout */
  px_duration write_timeout; /**< per write, flush or shutdown; see idle_timeout */
} px_serve_opts;

/**
 * The server's future (see the file's comment). It owns the listener from
 * px_serve_init on: it closes it when it stops accepting, and when it is
 * dropped (also if never polled). It runs until shut down, or until accept
 * fails with an error no pause can cure (PX_EINVAL, PX_EBADF, PX_ENOTSUP,
 * PX_ENORUNTIME, PX_ESHUTDOWN), after which it shuts down the same way.
 *
 * Output (u64): the number of connections still running at the grace
 * deadline, which had to be cancelled (0: all finished in time). Error: 0,
 * the accept error that ended it, or, before anything is accepted,
 * PX_EINVAL (NULL listener or opts, no `conn`, a cap above
 * PX_SEMAPHORE_MAX_PERMITS) or PX_ENOMEM. Dropping the future before it
 * completes cancels every connection at once.
 */
typedef struct px_serve {
  px_future base;         /**< the future header (must be first) */
  uint64_t accepted;      /**< read-only: connections accepted */
  uint64_t accept_errors; /**< read-only: accept errors met with a pause */
  uint64_t conn_errors;   /**< read-only: connections the constructor did not spawn */
  px_serve_opts opts;     /**< private: a copy of the options */
  px_tcp_listener *listener;     /**< private: NULL once closed */
  px__serve_shared *shared;      /**< private: the cap, shared with the connections */
  px_cancel_token *stop;         /**< private: the connections' stop token */
  px_scope conns;                /**< private: the live connections */
  px_tcp_accept accept;          /**< private */
  px_semaphore_acquire acquire;  /**< private */
  px_sleep pause;                /**< private: the pause after an accept error */
  px_cancelled shutdown;         /**< private: waits for opts.shutdown */
  px_signal_recv signal;         /**< private: waits for opts.signals */
  px_scope_shutdown drain;       /**< private */
  px_duration backoff;           /**< private: the next pause */
  int phase;                     /**< private */
  int have_permit;               /**< private */
  int err;                       /**< private: the error to complete with */
} px_serve;

/**
 * Prepares a server of the connections `l` accepts, as `opts` says (copied;
 * checked at the first poll), and returns its future; NULL for a NULL `f`
 * (the listener is then closed). The listener belongs to the future.
 */
px_future *px_serve_init(px_serve *f, px_tcp_listener *l, const px_serve_opts *opts);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_SERVE_H */
