/*
 * The one intrusive doubly linked list of the runtime (internal), in the
 * shape of libuv's src/queue.h: a list is a px__list head whose links go
 * round in a circle through the nodes and back to the head, so inserting
 * and removing never test for an end and never allocate. A node is a
 * px__list embedded in the struct it links; px__container_of gets the struct
 *  back.
 *
 * Heads are circular (px__list_init makes an empty one). Nodes are not:
 * an unlinked node has next == NULL, so a node in a zeroed struct, or in a
 * public struct the user initialised with memset, is unlinked without an
 * init call, and px__list_remove leaves it that way.
 *
 * Not thread-safe: every list is guarded by its owner's lock.
 */
#ifndef POLLUX_INTERNAL_LIST_H
#define POLLUX_INTERNAL_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "api/internal/px_internal.h"
#include "pollux/list.h"

/* The struct holding node `ptr` as its `member`: px__container_of. */

/* Walks the nodes of `head`; the body must not remove `pos`
 * (px__list_foreach_safe allows that). */
#define px__list_foreach(pos, head) \
  for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#define px__list_foreach_safe(pos, tmp, head)                      \
  for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); \
       (pos) = (tmp), (tmp) = (pos)->next)

/* Makes `head` an empty list. */
static inline void px__list_init(px__list *head) {
  head->next = head;
  head->prev = head;
}

static inline bool px__list_empty(const px__list *head) {
  return head->next == head;
}

/* True while `node` is in some list. */
static inline bool px__list_linked(const px__list *node) {
  return node->next != NULL;
}

/* The first node, or NULL when the list is empty. */
static inline px__list *px__list_first(const px__list *head) {
  return head->next != head ? head->next : NULL;
}

/* The last node, or NULL when the list is empty. */
static inline px__list *px__list_last(const px__list *head) {
  return head->prev != head ? head->prev : NULL;
}

/* Links `node` right after `pos` (a node of the list, or its head). */
static inline void px__list_insert_after(px__list *pos, px__list *node) {
  node->prev = pos;
  node->next = pos->next;
  pos->next->prev = node;
  pos->next = node;
}

static inline void px__list_insert_head(px__list *head, px__list *node) {
  px__list_insert_after(head, node);
}

static inline void px__list_insert_tail(px__list *head, px__list *node) {
  px__list_insert_after(head->prev, node);
}

/* Unlinks `node` from whatever list holds it; it then reads as unlinked. */
static inline void px__list_remove(px__list *node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->next = NULL;
  node->prev = NULL;
}

/* Unlinks and returns the first node, or NULL when the list is empty. */
static inline px__list *px__list_pop(px__list *head) {
  px__list *node = px__list_first(head);
  if (node != NULL) px__list_remove(node);
  return node;
}

/* Moves every node of `from` to the end of `to`; `from` becomes empty. */
static inline void px__list_splice_tail(px__list *to, px__list *from) {
  if (px__list_empty(from)) return;
  from->next->prev = to->prev;
  to->prev->next = from->next;
  from->prev->next = to;
  to->prev = from->prev;
  px__list_init(from);
}

#endif /* POLLUX_INTERNAL_LIST_H */
