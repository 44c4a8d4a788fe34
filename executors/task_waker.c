/*
 * The task waker: data is the task itself, so creating or cloning one is a
 * reference-count bump and never an allocation (tokio's raw waker).
 */
#include "executors/task.h"

static px_waker task_clone(void *data) {
  px__task_ref_inc((px_task *)data);
  px_waker w = {&px__task_waker_vtable, data};
  return w;
}

static void task_wake(void *data) { px__task_wake_by_val((px_task *)data); }

static void task_wake_by_ref(void *data) {
  px__task_wake_by_ref((px_task *)data);
}

static void task_drop(void *data) { px__task_ref_dec((px_task *)data); }

const px_waker_vtable px__task_waker_vtable = {task_clone, task_wake,
                                               task_wake_by_ref, task_drop};
