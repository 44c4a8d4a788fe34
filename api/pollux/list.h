/**
 * @file
 * pollux/list.h - the link of the runtime's intrusive lists (private).
 */
#ifndef POLLUX_LIST_H
#define POLLUX_LIST_H

/** @addtogroup runtime
 * @{
 */

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The link of an intrusive doubly linked list. Private: public structs that
 * the runtime queues (px_timer_node, px_wait_node) embed one, so its type
 * must be public, as libuv's uv.h declares `struct uv__queue`; the
 * operations are internal (api/internal/list.h). A zeroed link is unlinked.
 */
typedef struct px__list {
  struct px__list *next; /**< private */
  struct px__list *prev; /**< private */
} px__list;

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_LIST_H */
