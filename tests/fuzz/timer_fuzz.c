/*
 * libFuzzer target: the timer backends. The input is a program of insert /
 * cancel / advance operations on 64 nodes, run against the wheel and the
 * heap side by side and against a reference model (a plain array searched
 * for the smallest (tick, insertion order)). All three must fire the same
 * nodes in the same order, and next_tick must never be later than the
 * earliest armed deadline. An advance fires everything due in one call or,
 * as the runtime does, in batches of 1 to 3 (advance's `max`).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "timers/timer.h"

extern const px__timer_ops px__wheel_ops;
extern const px__timer_ops px__heap_ops;

enum { NODES = 64, MAX_FIRES = 4096 };

typedef struct model_entry {
  int armed;
  uint64_t tick, seq;
} model_entry;

typedef struct run {
  const px__timer_ops *ops;
  void *timer;
  px_timer_node nodes[NODES];
  int fired[MAX_FIRES];
  size_t nfired;
} run;

static void on_fire(px_timer_node *n, void *arg) {
  run *r = arg;
  if (r->nfired < MAX_FIRES) r->fired[r->nfired++] = (int)(n - r->nodes);
}

static void run_init(run *r, const px__timer_ops *ops) {
  memset(r, 0, sizeof *r);
  r->ops = ops;
  r->timer = calloc(1, ops->size);
  ops->init(r->timer, 0);
}

static void run_free(run *r) {
  for (int i = 0; i < NODES; i++)
    if (px__timer_armed(&r->nodes[i])) r->ops->cancel(r->timer, &r->nodes[i]);
  /* Cancelling finds each node's place from its tick alone (the wheel keeps
   * no index): nothing may be left marked. */
  if (r->ops->next_tick(r->timer) != PX__TICK_NONE) abort();
  r->ops->destroy(r->timer);
  free(r->timer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  run w, h;
  run_init(&w, &px__wheel_ops);
  run_init(&h, &px__heap_ops);
  model_entry model[NODES] = {{0, 0, 0}};
  int expect[MAX_FIRES];
  size_t nexpect = 0;
  uint64_t now = 0, seq = 0;

  for (size_t i = 0; i + 2 < size; i += 3) {
    int op = data[i] % 3, n = data[i + 1] % NODES;
    /* Deadlines near and far: small steps, level boundaries, beyond range. */
    uint64_t arg = data[i + 2];
    uint64_t delta = (data[i] & 0x80) ? (arg << (data[i] & 0x3f) % 40) : arg;
    if (op == 0 && !model[n].armed) {
      uint64_t tick = now + delta;
      w.nodes[n].tick = h.nodes[n].tick = tick;
      if (w.ops->insert(w.timer, &w.nodes[n]) < 0) abort();
      if (h.ops->insert(h.timer, &h.nodes[n]) < 0) abort();
      model[n] = (model_entry){1, tick, seq++};
    } else if (op == 1 && model[n].armed) {
      w.ops->cancel(w.timer, &w.nodes[n]);
      h.ops->cancel(h.timer, &h.nodes[n]);
      model[n].armed = 0;
    } else if (op == 2) {
      now += delta;
      /* The model fires everything due, by (tick, insertion order). */
      for (;;) {
        int best = -1;
        for (int k = 0; k < NODES; k++) {
          if (!model[k].armed || model[k].tick > now) continue;
          if (best < 0 || model[k].tick < model[best].tick ||
              (model[k].tick == model[best].tick && model[k].seq < model[best].seq))
            best = k;
        }
        if (best < 0) break;
        model[best].armed = 0;
        if (nexpect < MAX_FIRES) expect[nexpect++] = best;
      }
      size_t max = data[i + 1] >> 6 ? (size_t)(data[i + 1] >> 6) : SIZE_MAX;
      while (w.ops->advance(w.timer, now, max, on_fire, &w) == max) {
      }
      while (h.ops->advance(h.timer, now, max, on_fire, &h) == max) {
      }
    }
    /* next_tick is never later than the earliest armed deadline. */
    uint64_t earliest = PX__TICK_NONE;
    for (int k = 0; k < NODES; k++)
      if (model[k].armed && model[k].tick < earliest) earliest = model[k].tick;
    if (w.ops->next_tick(w.timer) > earliest) abort();
    if (h.ops->next_tick(h.timer) > earliest) abort();
  }
  if (w.nfired != nexpect || h.nfired != nexpect) abort();
  if (memcmp(w.fired, expect, nexpect * sizeof(int)) != 0) abort();
  if (memcmp(h.fired, expect, nexpect * sizeof(int)) != 0) abort();
  run_free(&w);
  run_free(&h);
  return 0;
}
