/*
 * The oneshot channel: one value slot, one receiver waker, and a count of
 * the live ends (two at first); the last end to go frees the allocation.
 * The sender and receiver pointers are the same allocation seen through
 * two distinct types, so the compiler keeps the ends apart.
 */
#include "api/internal/px_internal.h"
#include "sync/waitq.h"

typedef struct oneshot {
  px__spinlock lock; /* guards a few fields; never held across a wake */
  px_value value;
  bool has_value; /* sent and not yet received */
  bool sent;      /* send succeeded once */
  bool received;  /* the receiver took the value */
  bool tx_alive, rx_alive;
  px_waker rx_waker; /* the pending recv */
} oneshot;

static oneshot *of_tx(const px_oneshot_sender *tx) { return (oneshot *)tx; }
static oneshot *of_rx(const px_oneshot_receiver *rx) { return (oneshot *)rx; }

int px_oneshot_new(px_oneshot_sender **tx, px_oneshot_receiver **rx) {
  if (tx == NULL || rx == NULL) return PX_EINVAL;
  *tx = NULL;
  *rx = NULL;
  oneshot *c = px__calloc(sizeof *c);
  if (c == NULL) return PX_ENOMEM;
  atomic_init(&c->lock, 0);
  c->tx_alive = c->rx_alive = true;
  *tx = (px_oneshot_sender *)c;
  *rx = (px_oneshot_receiver *)c;
  return 0;
}

/* Called with the lock held by the end that just went away. */
static void release_locked(oneshot *c) {
  bool last = !c->tx_alive && !c->rx_alive;
  px__spin_unlock(&c->lock);
  if (!last) return;
  px__free(c, sizeof *c);
}

int px_oneshot_send(px_oneshot_sender *tx, px_value value) {
  oneshot *c = of_tx(tx);
  if (c == NULL) return PX_EINVAL;
  px__spin_lock(&c->lock);
  if (c->sent || !c->tx_alive) {
    px__spin_unlock(&c->lock);
    return PX_EINVAL;
  }
  if (!c->rx_alive) {
    px__spin_unlock(&c->lock);
    return PX_ECLOSED;
  }
  c->value = value;
  c->has_value = c->sent = true;
  px_waker w = px_waker_take(&c->rx_waker);
  px__spin_unlock(&c->lock);
  px_waker_wake(&w);
  return 0;
}

bool px_oneshot_sender_is_closed(const px_oneshot_sender *tx) {
  oneshot *c = of_tx(tx);
  if (c == NULL) return true;
  px__spin_lock(&c->lock);
  bool closed = !c->rx_alive;
  px__spin_unlock(&c->lock);
  return closed;
}

void px_oneshot_sender_drop(px_oneshot_sender *tx) {
  oneshot *c = of_tx(tx);
  if (c == NULL) return;
  px__spin_lock(&c->lock);
  c->tx_alive = false;
  /* Without a value, the waiting receiver must learn the sender is gone. */
  px_waker w = px_waker_take(&c->rx_waker);
  release_locked(c);
  px_waker_wake(&w);
}

/* 0 with *out, PX_EAGAIN, or PX_ECLOSED; lock held. */
static int try_recv_locked(oneshot *c, px_value *out) {
  if (c->has_value) {
    *out = c->value;
    c->has_value = false;
    c->received = true;
    return 0;
  }
  if (!c->tx_alive || c->received) return PX_ECLOSED;
  return PX_EAGAIN;
}

int px_oneshot_try_recv(px_oneshot_receiver *rx, px_value *out) {
  oneshot *c = of_rx(rx);
  if (c == NULL || out == NULL) return PX_EINVAL;
  px__spin_lock(&c->lock);
  int r = try_recv_locked(c, out);
  px__spin_unlock(&c->lock);
  return r;
}

static px_poll recv_poll(px_future *self, px_context *cx) {
  px_oneshot_recv *f = (px_oneshot_recv *)self;
  oneshot *c = of_rx(f->rx);
  if (c == NULL) {
    self->error = PX_EINVAL;
    return PX_READY;
  }
  if (!px__coop_proceed(cx)) return PX_PENDING;
  px_value v = {0};
  px__spin_lock(&c->lock);
  int r = try_recv_locked(c, &v);
  if (r == PX_EAGAIN) {
    px_waker_set(&c->rx_waker, cx->waker);
    f->registered = 1;
    px__spin_unlock(&c->lock);
    px__coop_refund();
    return PX_PENDING;
  }
  px__spin_unlock(&c->lock);
  self->output = v;
  self->error = r;
  return PX_READY;
}

static void recv_drop(px_future *self) {
  px_oneshot_recv *f = (px_oneshot_recv *)self;
  oneshot *c = of_rx(f->rx);
  if (c == NULL || !f->registered) return;
  /* The value, if any, stays in the slot: a later recv still gets it. */
  px__waker_slot_drop(&c->lock, &c->rx_waker);
}

static const px_future_vtable recv_vtable = {
    sizeof(px_oneshot_recv), "oneshot_recv", recv_poll, recv_drop};

px_future *px_oneshot_recv_init(px_oneshot_recv *f, px_oneshot_receiver *rx) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &recv_vtable);
  f->rx = rx;
  f->registered = 0;
  return &f->base;
}

void px_oneshot_receiver_drop(px_oneshot_receiver *rx) {
  oneshot *c = of_rx(rx);
  if (c == NULL) return;
  px__spin_lock(&c->lock);
  c->rx_alive = false;
  c->has_value = false; /* discarded: nobody can receive it any more */
  px_waker w = px_waker_take(&c->rx_waker);
  release_locked(c);
  px_waker_drop(&w);
}
