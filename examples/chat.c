/*
 * chat - a broadcast chat server with graceful shutdown (tokio's
 * examples/chat.rs, in C).
 *
 *   bazel run //examples:chat -- 6142        then, in several terminals:
 *   nc 127.0.0.1 6142
 *
 * Each client first sends its name; every line it sends afterwards reaches
 * every other client as "name: line". Joins and leaves are announced.
 * SIGINT or SIGTERM stops accepting, tells every client, gives the
 * connections a grace period to finish and exits 0.
 *
 * The shared state is the list of connected peers behind one lock, each
 * with an unbounded channel of messages (chat.rs's Shared map): a
 * broadcast copies the message into every other peer's channel, and each
 * peer's task writes what its channel brings.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pollux.h"

typedef struct peer {
  px_async px;
  px_stream *stream;
  px_buf_reader *in;
  px_cancel_token *stop;
  struct peer *next; /* in the shared list once named */
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  px_value v;
  int err;
  char *msg; /* the message being written, owned */
  px_select sel;
  px_buf_io rd;
  px_mpsc_recv recv;
  px_cancelled cancelled;
  px_stream_io wr;
  char name[64];
  char line[1024];
} peer;

/* The peers that joined; a plain mutex, as no task awaits while holding it. */
static struct {
  pthread_mutex_t lock;
  peer *head;
} shared = {PTHREAD_MUTEX_INITIALIZER, NULL};

/* Sends a copy of text to every joined peer but `from`. */
static void broadcast(const peer *from, const char *text) {
  pthread_mutex_lock(&shared.lock);
  for (peer *p = shared.head; p != NULL; p = p->next) {
    if (p == from) continue;
    char *copy = strdup(text);
    if (copy != NULL && px_mpsc_try_send(p->tx, px_ptr(copy)) < 0) free(copy);
  }
  pthread_mutex_unlock(&shared.lock);
}

/* Everything a peer owns, released however its task ends (PX_DEFER). */
static void peer_free(void *arg) {
  peer *self = arg;
  pthread_mutex_lock(&shared.lock);
  for (peer **p = &shared.head; *p != NULL; p = &(*p)->next) {
    if (*p == self) {
      *p = self->next;
      break;
    }
  }
  pthread_mutex_unlock(&shared.lock);
  /* Out of the list, so nothing new arrives: free what is still queued. */
  for (px_value v; self->rx && px_mpsc_try_recv(self->rx, &v) == 0;) free(v.ptr);
  px_mpsc_receiver_drop(self->rx);
  px_mpsc_sender_drop(self->tx);
  free(self->msg);
  if (self->in != NULL) px_buf_reader_close(self->in); /* closes the stream */
  else px_stream_close(self->stream);
  px_cancel_token_drop(self->stop);
}

static void chomp(char *s) { s[strcspn(s, "\r\n")] = '\0'; }

#define SAY(text)                                                             \
  PX_AWAIT_ERR(self->err, px_stream_write_all_init(&self->wr, self->stream,    \
                                                   (text), strlen(text)))

PX_ASYNC_FN(peer) {
  PX_BEGIN();
  PX_DEFER(peer_free, self);
  PX_TRY(px_buf_reader_new(self->stream, 0, &self->in));
  self->stream = px_buf_reader_stream(self->in); /* writes pass through */
  SAY("Please enter your username:\n");
  PX_AWAIT_INTO(self->v, self->err, px_buf_read_line_init(&self->rd, self->in,
                                                          self->name, sizeof self->name));
  if (self->err < 0 || self->v.u64 == 0) PX_RETURN(px_u64(0));
  chomp(self->name);
  PX_TRY(px_mpsc_unbounded(&self->tx, &self->rx));
  pthread_mutex_lock(&shared.lock);
  self->next = shared.head;
  shared.head = self;
  pthread_mutex_unlock(&shared.lock);
  snprintf(self->line, sizeof self->line, "%s has joined the chat\n", self->name);
  broadcast(self, self->line);
  for (;;) {
    PX_AWAIT_INTO(self->v, self->err, px_select3_init(&self->sel,
        px_buf_read_line_init(&self->rd, self->in, self->line, sizeof self->line),
        px_mpsc_recv_init(&self->recv, self->rx),
        px_cancelled_init(&self->cancelled, self->stop)));
    if (self->err < 0) break;
    if (self->sel.index == 2) { /* the server is shutting down */
      SAY("server shutting down\n");
      PX_RETURN(px_u64(0));
    }
    if (self->sel.index == 1) { /* a message from another peer */
      self->msg = self->v.ptr;
      SAY(self->msg);
      free(self->msg);
      self->msg = NULL;
      if (self->err < 0) break;
      continue;
    }
    if (self->v.u64 == 0) break; /* the client hung up */
    chomp(self->line);
    char text[sizeof self->name + sizeof self->line + 4];
    snprintf(text, sizeof text, "%s: %s\n", self->name, self->line);
    broadcast(self, text);
  }
  snprintf(self->line, sizeof self->line, "%s has left the chat\n", self->name);
  broadcast(self, self->line);
  PX_END();
}

/* ---- The accept loop, stopped by a signal ------------------------------ */

typedef struct server {
  px_async px;
  px_tcp_listener *listener;
  px_signal *signals;
  px_cancel_token *stop;
  px_scope peers;
  px_value v;
  int err;
  px_select sel;
  px_tcp_accept accept;
  px_signal_recv sig;
  px_sleep pause;
  px_scope_shutdown shutdown;
} server;

static void server_free(void *arg) {
  server *self = arg;
  px_scope_drop(&self->peers);
  px_cancel_token_drop(self->stop);
  px_tcp_listener_close(self->listener);
  px_signal_close(self->signals); /* while the runtime is still there */
}

PX_ASYNC_FN(server) {
  PX_BEGIN();
  PX_DEFER(server_free, self);
  PX_TRY(px_cancel_token_new(&self->stop));
  for (;;) {
    PX_AWAIT_INTO(self->v, self->err, px_select2_init(&self->sel,
        px_tcp_accept_init(&self->accept, self->listener),
        px_signal_recv_init(&self->sig, self->signals)));
    if (self->sel.index == 1) break;
    if (self->err < 0) { /* out of descriptors, usually: let peers finish */
      fprintf(stderr, "chat: accept: %s\n", px_strerror(self->err));
      PX_AWAIT(px_sleep_init(&self->pause, px_ms(100)));
      continue;
    }
    peer p = PX_ASYNC_NEW(peer, .stream = self->v.ptr,
                          .stop = px_cancel_token_clone(self->stop));
    if (px_scope_spawn_detached(&self->peers, PX_FUTURE(&p)) < 0) {
      px_stream_close(p.stream);
      px_cancel_token_drop(p.stop);
    }
  }
  fprintf(stderr, "chat: signal %d, shutting down\n", (int)self->v.i64);
  px_cancel_token_cancel(self->stop);
  PX_AWAIT(px_scope_shutdown_init(&self->shutdown, &self->peers, px_secs(5)));
  PX_END();
}

int main(int argc, char **argv) {
  char *end = NULL;
  long port = argc == 2 ? strtol(argv[1], &end, 10) : 0;
  if (end == NULL || *end != '\0' || port < 1 || port > 65535) {
    fprintf(stderr, "usage: chat PORT   (listens on 127.0.0.1)\n");
    return 2;
  }
  /* Before the runtime, so its worker threads inherit the blocked mask. */
  static const int sigs[] = {SIGINT, SIGTERM};
  px_signal *signals = NULL;
  px_tcp_listener *listener = NULL;
  int err = px_signal_open(&signals, sigs, 2);
  if (err == 0) err = px_tcp_bind("127.0.0.1", (uint16_t)port, &listener);
  if (err < 0) {
    fprintf(stderr, "chat: %s\n", px_strerror(err));
    return 1;
  }
  fprintf(stderr, "chat: listening on 127.0.0.1 port %ld\n", port);
  server s = PX_ASYNC_NEW(server, .listener = listener, .signals = signals);
  err = px_run(PX_FUTURE(&s));
  if (err < 0) fprintf(stderr, "chat: %s\n", px_strerror(err));
  return err < 0;
}
