/**
 * @file
 * pollux/channel.h - channels: oneshot, mpsc (bounded and unbounded), watch.
 *
 * The shapes are tokio::sync's, written in C. Every channel carries px_value
 * (one machine word: an integer, a double or a pointer). A channel is one
 * allocation shared by its ends and freed when the last end is dropped; the
 * ends are opaque pointers released with px_*_drop, each exactly once.
 * Values still queued when a channel is freed are discarded: if they are
 * pointers you own, drain them with try_recv before dropping the receiver.
 *
 * Every channel is guarded by a small lock and may be used from any thread;
 * wakers are woken after that lock is released. Waiting futures embed their
 * wait-queue node (no allocation per wait) and are cancel-safe: dropping a
 * pending recv loses no message, dropping a pending send sends nothing.
 * An end must outlive the futures using it.
 *
 * PX_ECLOSED means the other side is gone: all senders dropped (once the
 * queue is drained), or the receiver dropped or closed.
 */
#ifndef POLLUX_CHANNEL_H
#define POLLUX_CHANNEL_H

/** @addtogroup sync
 * @{
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pollux/future.h"
#include "pollux/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- oneshot: one value, once ----------------------------------------- */

/** The sending half of a oneshot channel (opaque). */
typedef struct px_oneshot_sender px_oneshot_sender;
/** The receiving half of a oneshot channel (opaque). */
typedef struct px_oneshot_receiver px_oneshot_receiver;

/** Creates a oneshot channel (tokio::sync::oneshot): one value, sent once. Returns 0, PX_EINVAL (NULL) or PX_ENOMEM. */
int px_oneshot_new(px_oneshot_sender **tx, px_oneshot_receiver **rx);

/**
 * Sends the value. PX_EINVAL for a second send (or NULL), PX_ECLOSED when
 * the receiver is gone (the value was not delivered). The sender must still
 * be dropped afterwards.
 */
int px_oneshot_send(px_oneshot_sender *tx, px_value value);

/** True once the receiver was dropped (a send would fail). */
bool px_oneshot_sender_is_closed(const px_oneshot_sender *tx);

/** Releases the sender; if it sent nothing, the receiver gets PX_ECLOSED. */
void px_oneshot_sender_drop(px_oneshot_sender *tx);

/**
 * Completes with the value (output) and error 0, or PX_ECLOSED when the
 * sender was dropped without sending (or the value was already received).
 */
typedef struct px_oneshot_recv {
  px_future base; /**< the future header (must be first) */
  px_oneshot_receiver *rx; /**< private */
  int registered;          /**< private */
} px_oneshot_recv;
/** Initialises a receive on `rx` and returns its future. */
px_future *px_oneshot_recv_init(px_oneshot_recv *f, px_oneshot_receiver *rx);

/** 0 and *out set, PX_EAGAIN (nothing yet), PX_ECLOSED, or PX_EINVAL. */
int px_oneshot_try_recv(px_oneshot_receiver *rx, px_value *out);

/** Releases the receiver; a later send fails with PX_ECLOSED. */
void px_oneshot_receiver_drop(px_oneshot_receiver *rx);

/* ---- mpsc: many senders, one receiver --------------------------------- */

/** A sending half of an mpsc channel (opaque; clone it for more senders). */
typedef struct px_mpsc_sender px_mpsc_sender;
/** The receiving half of an mpsc channel (opaque). */
typedef struct px_mpsc_receiver px_mpsc_receiver;

/** A bounded channel holding at most `capacity` (1..2^32) values. */
int px_mpsc_channel(size_t capacity, px_mpsc_sender **tx,
                    px_mpsc_receiver **rx);

/** An unbounded channel: sends never wait (they may fail with PX_ENOMEM). */
int px_mpsc_unbounded(px_mpsc_sender **tx, px_mpsc_receiver **rx);

/** Another sender for the same channel (*out), to be dropped on its own. */
int px_mpsc_sender_clone(px_mpsc_sender *tx, px_mpsc_sender **out);

/** Releases one sender. When the last one goes, recv reports PX_ECLOSED
 * after the queue is drained. */
void px_mpsc_sender_drop(px_mpsc_sender *tx);

/**
 * Sends without waiting: 0, PX_EAGAIN when the channel is full (or other
 * senders already wait for room: they come first), PX_ECLOSED when the
 * receiver is closed or gone, PX_ENOMEM, PX_EINVAL. Any thread.
 */
int px_mpsc_try_send(px_mpsc_sender *tx, px_value value);

/**
 * Sends, waiting for room: completes with error 0 once the value is queued,
 * or PX_ECLOSED. Waiting senders get room in FIFO order. Dropping the future
 * before it completes guarantees the value was not sent.
 */
typedef struct px_mpsc_send {
  px_future base; /**< the future header (must be first) */
  px_mpsc_sender *tx; /**< private */
  px_value value;     /**< private */
  px_wait_node node;  /**< private */
} px_mpsc_send;
/** Initialises a send of `value` on `tx` and returns its future. */
px_future *px_mpsc_send_init(px_mpsc_send *f, px_mpsc_sender *tx,
                             px_value value);

/**
 * Blocks the calling thread until the value is queued (tokio's
 * blocking_send). For threads outside any runtime: on a runtime thread it
 * returns PX_EBUSY instead of deadlocking, and logs an error saying so.
 */
int px_mpsc_send_blocking(px_mpsc_sender *tx, px_value value);

/**
 * Completes with the next value (output) and error 0, or PX_ECLOSED once
 * every sender is gone (or the receiver closed) and the queue is empty.
 * One recv at a time per receiver.
 */
typedef struct px_mpsc_recv {
  px_future base; /**< the future header (must be first) */
  px_mpsc_receiver *rx; /**< private */
  int registered;       /**< private */
} px_mpsc_recv;
/** Initialises a receive on `rx` and returns its future. */
px_future *px_mpsc_recv_init(px_mpsc_recv *f, px_mpsc_receiver *rx);

/** 0 and *out set, PX_EAGAIN (empty), PX_ECLOSED (empty for good), PX_EINVAL. */
int px_mpsc_try_recv(px_mpsc_receiver *rx, px_value *out);

/**
 * Blocks the calling (non-runtime) thread for the next value; as recv. On a
 * runtime thread it returns PX_EBUSY (and logs an error) instead of
 * deadlocking.
 */
int px_mpsc_recv_blocking(px_mpsc_receiver *rx, px_value *out);

/** Stops new sends (they fail with PX_ECLOSED); queued values can still be
 * received. */
int px_mpsc_receiver_close(px_mpsc_receiver *rx);

/** Values queued right now. */
size_t px_mpsc_len(const px_mpsc_receiver *rx);

/** Releases the receiver: closes the channel and discards queued values. */
void px_mpsc_receiver_drop(px_mpsc_receiver *rx);

/* ---- watch: the latest value, observed by many ------------------------ */

/** The sending half of a watch channel (opaque). */
typedef struct px_watch_sender px_watch_sender;
/** A receiving half of a watch channel (opaque; clone it for more receivers). */
typedef struct px_watch_receiver px_watch_receiver;

/** A watch channel holding `initial`, which receivers count as seen. */
int px_watch_new(px_value initial, px_watch_sender **tx,
                 px_watch_receiver **rx);

/**
 * Replaces the value and wakes every receiver waiting for a change.
 * PX_ECLOSED (value not stored) when every receiver is gone.
 */
int px_watch_send(px_watch_sender *tx, px_value value);

/** Number of live receivers. */
size_t px_watch_receiver_count(const px_watch_sender *tx);

/** Releases the sender: waiting receivers complete with PX_ECLOSED. */
void px_watch_sender_drop(px_watch_sender *tx);

/** A new receiver that has seen what `rx` has seen. */
int px_watch_receiver_clone(px_watch_receiver *rx, px_watch_receiver **out);

/** The latest value, without marking it seen (tokio's borrow). */
int px_watch_borrow(const px_watch_receiver *rx, px_value *out);

/** The latest value, marking it seen (tokio's borrow_and_update). */
int px_watch_borrow_and_update(px_watch_receiver *rx, px_value *out);

/** 1 if a value this receiver has not seen was sent, 0 if not, or an error
 * (PX_ECLOSED when the sender is gone and nothing new is left). */
int px_watch_has_changed(const px_watch_receiver *rx);

/**
 * Waits for a value this receiver has not seen, marks it seen and completes
 * with it (output), or with PX_ECLOSED once the sender is dropped and no
 * unseen value is left.
 */
typedef struct px_watch_changed {
  px_future base; /**< the future header (must be first) */
  px_watch_receiver *rx; /**< private */
  px_wait_node node;     /**< private */
} px_watch_changed;
/** Initialises a wait for a change on `rx` and returns its future. */
px_future *px_watch_changed_init(px_watch_changed *f, px_watch_receiver *rx);

/** Releases a receiver; the last one gone makes sends fail with PX_ECLOSED. */
void px_watch_receiver_drop(px_watch_receiver *rx);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_CHANNEL_H */
