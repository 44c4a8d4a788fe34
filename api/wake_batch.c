/* The wake-after-unlock batch's out-of-line part (api/internal/wake_batch.h). */
#include "api/internal/wake_batch.h"

#include <string.h>

#include "api/internal/px_internal.h"

bool px__wake_batch_grow(px__wake_batch *b) {
  size_t cap = b->cap * 2;
  px_waker *w = px__alloc(cap * sizeof *w);
  if (w == NULL) return false;
  memcpy(w, b->w, b->n * sizeof *w);
  px__wake_batch_release(b);
  b->w = w;
  b->cap = cap;
  return true;
}

void px__wake_batch_release(px__wake_batch *b) {
  if (b->w != b->inline_w) px__free(b->w, b->cap * sizeof *b->w);
  b->w = b->inline_w;
  b->cap = PX__WAKE_BATCH;
}
