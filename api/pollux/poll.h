/**
 * @file
 * pollux/poll.h - the result of polling a future.
 *
 * Mirrors Rust's std::task::Poll without the payload: the payload of a
 * future that is READY lives in the future itself (see future.h).
 */
#ifndef POLLUX_POLL_H
#define POLLUX_POLL_H

/** @addtogroup futures
 * @{
 */

#ifdef __cplusplus
extern "C" {
#endif

/** What a poll function returns: finished or not yet. */
typedef enum px_poll {
  /**
   * The future cannot finish yet. It has arranged for the waker in the
   * context it was polled with to be woken when progress is possible.
   */
  PX_PENDING = 0,
  /** The future has finished; its output and error are final. */
  PX_READY = 1
} px_poll;

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_POLL_H */
