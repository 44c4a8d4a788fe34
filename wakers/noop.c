/* The no-op waker: for polling futures by hand, where nobody waits. */
#include "pollux/waker.h"

static const px_waker_vtable noop_vtable;

static px_waker noop_clone(void *data) {
  px_waker w = {&noop_vtable, data};
  return w;
}

static void noop(void *data) { (void)data; }

static const px_waker_vtable noop_vtable = {noop_clone, noop, noop, noop};

px_waker px_waker_noop(void) {
  px_waker w = {&noop_vtable, NULL};
  return w;
}
