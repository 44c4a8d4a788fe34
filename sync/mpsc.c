/*
 * The mpsc channel: a ring buffer of px_value, one receiver waker, and for
 * bounded channels a semaphore core counting free slots (tokio's design).
 *
 * A bounded send first acquires a slot permit (FIFO among waiting senders),
 * then pushes its value in the same poll that sees the permit. So a send
 * future dropped before completing has pushed nothing, and a permit it was
 * handed but never saw goes to the next waiting sender. The receiver gives a
 * permit back for every value it pops. Unbounded channels have no semaphore
 * and grow the ring by doubling.
 *
 * The handles are casts of the one allocation; `senders` counts sender
 * handles, and the channel is freed when the last sender and the receiver
 * are gone.
 */
#include <string.h>

#include "api/internal/px_internal.h"
#include "observe/observe.h"
#include "sync/waitq.h"

#define MPSC_MAX_CAPACITY ((size_t)1 << 32)

typedef struct mpsc {
  px__spinlock lock;
  px_value *buf;
  size_t cap;   /* ring slots */
  size_t head;  /* index of the oldest value */
  size_t len;   /* values queued */
  size_t bound; /* 0: unbounded */
  px__sem slots;     /* bounded only: free slots not yet promised */
  size_t waiting;    /* send futures that may still touch the channel */
  size_t senders;    /* live sender handles */
  bool rx_alive;
  bool closed;       /* receiver closed or dropped: no more sends */
  px_waker rx_waker; /* the pending recv */
} mpsc;

static mpsc *of_tx(const px_mpsc_sender *tx) { return (mpsc *)tx; }
static mpsc *of_rx(const px_mpsc_receiver *rx) { return (mpsc *)rx; }

static int create(size_t bound, size_t cap, px_mpsc_sender **tx,
                  px_mpsc_receiver **rx) {
  if (tx == NULL || rx == NULL) return PX_EINVAL;
  *tx = NULL;
  *rx = NULL;
  mpsc *c = px__calloc(sizeof *c);
  if (c == NULL) return PX_ENOMEM;
  c->buf = px__alloc(cap * sizeof *c->buf);
  if (c->buf == NULL) {
    px__free(c, sizeof *c);
    return PX_ENOMEM;
  }
  atomic_init(&c->lock, 0);
  c->cap = cap;
  c->bound = bound;
  c->slots.permits = bound;
  px__waitq_init(&c->slots.waiters);
  c->senders = 1;
  c->rx_alive = true;
  *tx = (px_mpsc_sender *)c;
  *rx = (px_mpsc_receiver *)c;
  return 0;
}

int px_mpsc_channel(size_t capacity, px_mpsc_sender **tx,
                    px_mpsc_receiver **rx) {
  if (capacity == 0 || capacity > MPSC_MAX_CAPACITY) {
    if (tx != NULL) *tx = NULL;
    if (rx != NULL) *rx = NULL;
    return PX_EINVAL;
  }
  /* The ring starts small and doubles up to the bound as values queue, so
   * a large bound (tokio's benchmarks use 1,000,000) costs memory only for
   * what is actually queued, as tokio's block list does. */
  return create(capacity, capacity < 16 ? capacity : 16, tx, rx);
}

int px_mpsc_unbounded(px_mpsc_sender **tx, px_mpsc_receiver **rx) {
  return create(0, 16, tx, rx);
}

/* Frees the channel if no end is left; always unlocks. */
static void release_locked(mpsc *c) {
  bool last = c->senders == 0 && !c->rx_alive && c->waiting == 0;
  px__spin_unlock(&c->lock);
  if (!last) return;
  px__free(c->buf, c->cap * sizeof *c->buf);
  px__free(c, sizeof *c);
}

/* ---- the ring ------------------------------------------------------------ */

/* Doubles the ring (a bounded one up to its bound), unwrapping it to start
 * at index 0. */
static int grow(mpsc *c) {
  size_t cap = c->cap * 2;
  if (c->bound != 0 && cap > c->bound) cap = c->bound;
  px_value *buf = px__alloc(cap * sizeof *buf);
  if (buf == NULL) return PX_ENOMEM;
  size_t first = c->cap - c->head < c->len ? c->cap - c->head : c->len;
  memcpy(buf, c->buf + c->head, first * sizeof *buf);
  memcpy(buf + first, c->buf, (c->len - first) * sizeof *buf);
  px__free(c->buf, c->cap * sizeof *c->buf);
  c->buf = buf;
  c->cap = cap;
  c->head = 0;
  return 0;
}

/* Makes room for one more value; lock held. Called before a bounded
 * sender takes its slot permit, so a failed allocation leaves the permit
 * where it was. A full ring at the bound needs no room: a permit holder
 * then always finds one, as values never outnumber permits given out. */
static int make_room(mpsc *c) {
  if (c->len < c->cap || (c->bound != 0 && c->cap == c->bound)) return 0;
  return grow(c);
}

/* Queues a value and takes the receiver's waker into *wake; lock held,
 * make_room done. */
static void push(mpsc *c, px_value v, px_waker *wake) {
  c->buf[(c->head + c->len) % c->cap] = v;
  c->len++;
  *wake = px_waker_take(&c->rx_waker);
}

/* ---- senders ------------------------------------------------------------- */

int px_mpsc_sender_clone(px_mpsc_sender *tx, px_mpsc_sender **out) {
  mpsc *c = of_tx(tx);
  if (c == NULL || out == NULL) return PX_EINVAL;
  px__spin_lock(&c->lock);
  c->senders++;
  px__spin_unlock(&c->lock);
  *out = tx;
  return 0;
}

void px_mpsc_sender_drop(px_mpsc_sender *tx) {
  mpsc *c = of_tx(tx);
  if (c == NULL) return;
  px_waker w = PX_WAKER_EMPTY;
  px__spin_lock(&c->lock);
  if (c->senders > 0 && --c->senders == 0) {
    /* The receiver may be waiting for a value that will never come. */
    w = px_waker_take(&c->rx_waker);
  }
  release_locked(c);
  px_waker_wake(&w);
}

int px_mpsc_try_send(px_mpsc_sender *tx, px_value value) {
  mpsc *c = of_tx(tx);
  if (c == NULL) return PX_EINVAL;
  px_waker w = PX_WAKER_EMPTY;
  px__spin_lock(&c->lock);
  int r = c->closed ? PX_ECLOSED : make_room(c);
  if (r == 0 && c->bound != 0) r = px__sem_try_acquire(&c->slots, 1);
  if (r == 0) push(c, value, &w);
  px__spin_unlock(&c->lock);
  px_waker_wake(&w);
  return r;
}

static void send_drop(px_future *self);

static px_poll send_poll(px_future *self, px_context *cx) {
  px_mpsc_send *f = (px_mpsc_send *)self;
  mpsc *c = of_tx(f->tx);
  if (c == NULL) {
    self->error = PX_EINVAL;
    return PX_READY;
  }
  /* A channel that always has room would otherwise keep its sender
   * running forever inside one poll. */
  if (!px__coop_proceed(cx)) return PX_PENDING;
  px_waker w = PX_WAKER_EMPTY;
  px__spin_lock(&c->lock);
  int r = c->closed ? PX_ECLOSED : make_room(c) < 0 ? PX_ENOMEM : 1;
  if (r == PX_ENOMEM) {
    /* Out of memory for the ring: the send fails, and gives up its place
     * among waiting senders (or a permit handed to it) as a drop does. */
    px__spin_unlock(&c->lock);
    send_drop(self);
    self->error = PX_ENOMEM;
    return PX_READY;
  }
  if (r == 1 && c->bound != 0) {
    r = px__sem_poll(&c->slots, &f->node, 1, cx->waker);
    if (r == 0) {
      px__future_count(self, &c->waiting);
      px__spin_unlock(&c->lock);
      px__coop_refund();
      return PX_PENDING;
    }
  }
  if (r == 1) push(c, f->value, &w);
  px__future_uncount(self, &c->waiting);
  px__spin_unlock(&c->lock);
  px_waker_wake(&w);
  self->error = r < 0 ? r : 0;
  return PX_READY;
}

static void send_drop(px_future *self) {
  px_mpsc_send *f = (px_mpsc_send *)self;
  mpsc *c = of_tx(f->tx);
  if (c == NULL || !px__future_waiting(self)) return;
  px_waker stale = PX_WAKER_EMPTY;
  px__wake_list wl;
  px__wake_list_init(&wl, &c->lock);
  px__spin_lock(&c->lock);
  /* Unqueue, or hand an unseen slot permit to the next waiting sender. */
  px__sem_cancel(&c->slots, &f->node, &wl, &stale);
  px__wake_list_finish(&wl);
  px_waker_drop(&stale);
  /* Uncounted last: while counted, nobody frees the channel, and this drop
   * may be what frees it (every handle dropped while the future waited). */
  px__spin_lock(&c->lock);
  px__future_uncount(self, &c->waiting);
  release_locked(c);
}

static const px_future_vtable send_vtable = {sizeof(px_mpsc_send), "mpsc_send",
                                             send_poll, send_drop};

px_future *px_mpsc_send_init(px_mpsc_send *f, px_mpsc_sender *tx,
                             px_value value) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &send_vtable);
  f->tx = tx;
  f->value = value;
  px__node_init(&f->node);
  return &f->base;
}

/* A *_blocking call on a runtime thread would park the thread every task
 * of it needs (the sender or receiver it waits for may be one of them):
 * refused, with the reason logged. */
static int refuse_nested(const char *fn) {
  PX__LOG(PX__LOG_ERROR,
          "%s called on a runtime thread (inside a task or block_on); await "
          "the async form instead: returning PX_EBUSY",
          fn);
  return PX_EBUSY;
}

int px_mpsc_send_blocking(px_mpsc_sender *tx, px_value value) {
  if (tx == NULL) return PX_EINVAL;
  if (px_runtime_current() != NULL) return refuse_nested("px_mpsc_send_blocking");
  px_mpsc_send f;
  px_mpsc_send_init(&f, tx, value);
  return px__block_on_thread(&f.base);
}

/* ---- receiver ------------------------------------------------------------ */

/* 0 with *out, PX_EAGAIN or PX_ECLOSED; lock held, wakes go to *wl. */
static int try_recv_locked(mpsc *c, px_value *out, px__wake_list *wl) {
  if (c->len > 0) {
    *out = c->buf[c->head];
    c->head = (c->head + 1) % c->cap;
    c->len--;
    /* The slot is free again: it goes to the first waiting sender. */
    if (c->bound != 0) px__sem_release(&c->slots, 1, wl);
    return 0;
  }
  if (c->senders == 0 || c->closed) return PX_ECLOSED;
  return PX_EAGAIN;
}

int px_mpsc_try_recv(px_mpsc_receiver *rx, px_value *out) {
  mpsc *c = of_rx(rx);
  if (c == NULL || out == NULL) return PX_EINVAL;
  px__wake_list wl;
  px__wake_list_init(&wl, &c->lock);
  px__spin_lock(&c->lock);
  int r = try_recv_locked(c, out, &wl);
  px__wake_list_finish(&wl);
  return r;
}

static px_poll recv_poll(px_future *self, px_context *cx) {
  px_mpsc_recv *f = (px_mpsc_recv *)self;
  mpsc *c = of_rx(f->rx);
  if (c == NULL) {
    self->error = PX_EINVAL;
    return PX_READY;
  }
  /* A channel that is never empty would otherwise keep its receiver
   * running forever inside one poll. */
  if (!px__coop_proceed(cx)) return PX_PENDING;
  px_value v = {0};
  px__wake_list wl;
  px__wake_list_init(&wl, &c->lock);
  px__spin_lock(&c->lock);
  int r = try_recv_locked(c, &v, &wl);
  if (r == PX_EAGAIN) {
    px_waker_set(&c->rx_waker, cx->waker);
    f->registered = 1;
  }
  px__wake_list_finish(&wl);
  if (r == PX_EAGAIN) {
    px__coop_refund();
    return PX_PENDING;
  }
  self->output = v;
  self->error = r;
  return PX_READY;
}

static void recv_drop(px_future *self) {
  px_mpsc_recv *f = (px_mpsc_recv *)self;
  mpsc *c = of_rx(f->rx);
  if (c == NULL || !f->registered) return;
  /* Values stay queued: a cancelled recv loses nothing. */
  px__waker_slot_drop(&c->lock, &c->rx_waker);
}

static const px_future_vtable recv_vtable = {sizeof(px_mpsc_recv), "mpsc_recv",
                                             recv_poll, recv_drop};

px_future *px_mpsc_recv_init(px_mpsc_recv *f, px_mpsc_receiver *rx) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &recv_vtable);
  f->rx = rx;
  f->registered = 0;
  return &f->base;
}

int px_mpsc_recv_blocking(px_mpsc_receiver *rx, px_value *out) {
  if (rx == NULL || out == NULL) return PX_EINVAL;
  if (px_runtime_current() != NULL) return refuse_nested("px_mpsc_recv_blocking");
  px_mpsc_recv f;
  px_mpsc_recv_init(&f, rx);
  int r = px__block_on_thread(&f.base);
  if (r == 0) *out = f.base.output;
  return r;
}

/* Closes for senders; lock held. */
static void close_locked(mpsc *c, px__wake_list *wl) {
  c->closed = true;
  if (c->bound != 0) px__sem_close(&c->slots, wl);
}

int px_mpsc_receiver_close(px_mpsc_receiver *rx) {
  mpsc *c = of_rx(rx);
  if (c == NULL) return PX_EINVAL;
  px__wake_list wl;
  px__wake_list_init(&wl, &c->lock);
  px__spin_lock(&c->lock);
  close_locked(c, &wl);
  px__wake_list_finish(&wl);
  return 0;
}

size_t px_mpsc_len(const px_mpsc_receiver *rx) {
  mpsc *c = of_rx(rx);
  if (c == NULL) return 0;
  px__spin_lock(&c->lock);
  size_t n = c->len;
  px__spin_unlock(&c->lock);
  return n;
}

void px_mpsc_receiver_drop(px_mpsc_receiver *rx) {
  mpsc *c = of_rx(rx);
  if (c == NULL) return;
  px__wake_list wl;
  px__wake_list_init(&wl, &c->lock);
  px__spin_lock(&c->lock);
  close_locked(c, &wl);
  c->len = 0; /* discarded: nobody can receive them any more */
  px_waker w = px_waker_take(&c->rx_waker);
  px__wake_list_finish(&wl);
  px_waker_drop(&w);
  /* rx_alive goes false only now: until then no sender drop can free the
   * channel under us while the lock was released to wake. */
  px__spin_lock(&c->lock);
  c->rx_alive = false;
  release_locked(c);
}
