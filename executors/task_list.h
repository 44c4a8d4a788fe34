/*
 * An intrusive FIFO of tasks through task->queue_next (internal), so
 * queuing never allocates: every executor's run and injection queues that
 * are not rings. Singly linked on purpose: a queued task is only ever
 * popped from the front, and the header has no room for a second link.
 */
#ifndef POLLUX_EXECUTORS_TASK_LIST_H
#define POLLUX_EXECUTORS_TASK_LIST_H

#include <stddef.h>

#include "executors/task.h"

typedef struct px__task_list {
  px_task *head, *tail;
  size_t len; /* for the metrics' queue depths */
} px__task_list;

static inline void px__task_list_push(px__task_list *l, px_task *t) {
  t->queue_next = NULL;
  if (l->tail != NULL)
    l->tail->queue_next = t;
  else
    l->head = t;
  l->tail = t;
  l->len++;
}

static inline px_task *px__task_list_pop(px__task_list *l) {
  px_task *t = l->head;
  if (t != NULL) {
    l->head = t->queue_next;
    if (l->head == NULL) l->tail = NULL;
    l->len--;
  }
  return t;
}

/* Appends all of `from` to `to` and empties `from`. */
static inline void px__task_list_splice(px__task_list *to,
                                        px__task_list *from) {
  if (from->head == NULL) return;
  if (to->tail != NULL)
    to->tail->queue_next = from->head;
  else
    to->head = from->head;
  to->tail = from->tail;
  to->len += from->len;
  from->head = from->tail = NULL;
  from->len = 0;
}

#endif /* POLLUX_EXECUTORS_TASK_LIST_H */
