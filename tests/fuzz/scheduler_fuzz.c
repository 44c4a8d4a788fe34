/*
 * libFuzzer target: the scheduler. The input is a program of spawn / wake /
 * abort / detach / run / join operations on a small table of tasks. After
 * it runs and the runtime is freed, every spawned future must have been
 * dropped exactly once, no task may have completed twice, and every byte
 * pollux allocated must be free again.
 *
 *   tools/fuzz scheduler      (built with clang's -fsanitize=fuzzer,address)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pollux.h"

enum { SLOTS = 16 };

/* Per-slot bookkeeping the futures report into. With a multi-threaded
 * executor the futures run on workers, so the table has a lock and the
 * counters are atomic. */
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  atomic_int drops, completions;
  int gate;        /* the gate future completes once this is set */
  px_waker waiter; /* the gate future's waker */
} slots[SLOTS];

static atomic_long live_bytes;

static void *fz_alloc(void *ctx, size_t n) {
  (void)ctx;
  live_bytes += (long)n;
  return malloc(n);
}
static void fz_free(void *ctx, void *p, size_t n) {
  (void)ctx;
  live_bytes -= (long)n;
  free(p);
}

/* A future pending until its slot's gate opens. */
typedef struct {
  px_future base;
  int slot;
} gate_future;

static px_poll gate_poll(px_future *f, px_context *cx) {
  int s = ((gate_future *)f)->slot;
  pthread_mutex_lock(&slots_lock);
  int open = slots[s].gate;
  if (!open) px_waker_set(&slots[s].waiter, cx->waker);
  pthread_mutex_unlock(&slots_lock);
  return open ? PX_READY : PX_PENDING;
}

static const px_future_vtable gate_vtable = {sizeof(gate_future), "gate",
                                             gate_poll, NULL};

typedef struct {
  px_async px;
  int slot, kind, yields;
  px_sleep sleep;
  gate_future gate;
} fz_frame;

static void fz_frame_drop(px_future *f) {
  px_async_drop(f);
  slots[((fz_frame *)f)->slot].drops++;
}

/* kind 0 finishes at once, 1 yields, 2 sleeps, 3 waits on its gate. */
PX_ASYNC_FN_WITH_DROP(fz_frame, fz_frame_drop) {
  PX_BEGIN();
  if (self->kind == 1) {
    while (self->yields > 0) {
      self->yields--;
      PX_YIELD();
    }
  } else if (self->kind == 2) {
    PX_AWAIT(px_sleep_init(&self->sleep, px_us(300)));
  } else if (self->kind == 3) {
    px_future_init(&self->gate.base, &gate_vtable);
    self->gate.slot = self->slot;
    PX_AWAIT(&self->gate.base);
  }
  slots[self->slot].completions++;
  PX_RETURN(px_i64(self->slot));
  PX_END();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (int s = 0; s < SLOTS; s++) {
    atomic_store(&slots[s].drops, 0);
    atomic_store(&slots[s].completions, 0);
    slots[s].gate = 0;
    slots[s].waiter.vtable = NULL;
    slots[s].waiter.data = NULL;
  }
  atomic_store(&live_bytes, 0);
  px_allocator a = {fz_alloc, fz_free, NULL};
  px_set_allocator(&a);
  px_runtime *rt;
  if (px_runtime_new(&rt, NULL) < 0) abort();

  px_join_handle handles[SLOTS];
  int spawned[SLOTS] = {0}, have_handle[SLOTS] = {0};
  for (size_t i = 0; i + 1 < size; i += 2) {
    int op = data[i] % 6, s = data[i + 1] % SLOTS;
    switch (op) {
      case 0: /* spawn into an empty slot */
        if (!spawned[s]) {
          fz_frame f = PX_ASYNC_NEW(fz_frame, .slot = s, .kind = data[i + 1] / SLOTS % 4,
                                    .yields = data[i + 1] % 3);
          if (px_runtime_spawn(rt, PX_FUTURE(&f), &handles[s]) == 0) {
            spawned[s] = have_handle[s] = 1;
          }
        }
        break;
      case 1: /* open the gate and wake */
      {
        pthread_mutex_lock(&slots_lock);
        slots[s].gate = 1;
        px_waker w = slots[s].waiter;
        slots[s].waiter.vtable = NULL;
        pthread_mutex_unlock(&slots_lock);
        px_waker_wake(&w); /* outside the lock: waking may run code */
      }
        break;
      case 2:
        if (have_handle[s]) px_join_handle_abort(&handles[s]);
        break;
      case 3: /* detach */
        if (have_handle[s]) {
          px_future_drop(&handles[s].base);
          have_handle[s] = 0;
        }
        break;
      case 4: { /* let the runtime run a little */
        px_yield y;
        px_runtime_block_on(rt, px_yield_init(&y));
        break;
      }
      case 5: { /* try to join by hand (no runtime needed) */
        if (!have_handle[s]) break;
        px_waker w = px_waker_noop();
        px_context cx = {&w, NULL};
        if (px_future_poll(&handles[s].base, &cx) == PX_READY) {
          int e = handles[s].base.error;
          if (e != 0 && e != PX_ECANCELED) abort();
          px_future_drop(&handles[s].base);
          have_handle[s] = 0;
        }
        break;
      }
    }
  }
  px_runtime_free(rt);
  for (int s = 0; s < SLOTS; s++) {
    px_waker_drop(&slots[s].waiter);
    if (have_handle[s]) px_future_drop(&handles[s].base);
    if (spawned[s] && slots[s].drops != 1) {
      fprintf(stderr, "slot %d dropped %d times\n", s, atomic_load(&slots[s].drops));
      abort();
    }
    if (slots[s].completions > 1) abort();
  }
  if (live_bytes != 0) {
    fprintf(stderr, "leaked %ld bytes\n", atomic_load(&live_bytes));
    abort();
  }
  px_set_allocator(NULL);
  return 0;
}
