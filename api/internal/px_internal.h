/*
 * Internal helpers shared by every part of the runtime. Not installed, not
 * stable: names are px__ prefixed.
 */
#ifndef POLLUX_INTERNAL_H
#define POLLUX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pollux/runtime.h"

/*
 * Atomics in headers that C++ tests include too: C11's _Atomic T and C++'s
 * std::atomic<T> have the same size and representation for the lock-free
 * types used here, so one struct layout serves both languages.
 */
#ifdef __cplusplus
#include <atomic>
#define px__atomic(T) std::atomic<T>
typedef std::atomic_flag px__atomic_flag;
#else
#include <stdatomic.h>
#define px__atomic(T) _Atomic T
typedef atomic_flag px__atomic_flag;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The address of the struct holding `ptr` as its `member` (libuv's idiom). */
#define px__container_of(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

#if defined(__GNUC__) || defined(__clang__)
#define px__likely(x) __builtin_expect(!!(x), 1)
#define px__unlikely(x) __builtin_expect(!!(x), 0)
#else
#define px__likely(x) (x)
#define px__unlikely(x) (x)
#endif

/*
 * Every allocation goes through these two so px_set_allocator can count or
 * fail them. The size is passed to free as well (a sized allocator can use
 * it; malloc ignores it).
 */
void *px__alloc(size_t size);
void *px__calloc(size_t size);
void px__free(void *ptr, size_t size);

/*
 * Zeroed memory for `size` bytes at an address aligned to `align` (a power
 * of two, at least alignof(max_align_t)): for blocks that several threads
 * write, so that no two share a cache line. The allocator promises only
 * max_align_t, so the block is `align` bytes larger and the address the
 * allocator returned is kept just below the aligned one. Free with
 * px__free_aligned and the same size and alignment.
 */
void *px__calloc_aligned(size_t size, size_t align);
/* The same, not zeroed. */
void *px__alloc_aligned(size_t size, size_t align);
void px__free_aligned(void *ptr, size_t size, size_t align);

/*
 * Cache lines, for data that threads write apart. PX__CACHE_LINE is one
 * line: what a block written by one thread fills whole so that nothing
 * another thread writes shares it. PX__CACHE_PAIR is what two hot groups
 * written by different cores keep between them: x86 fetches lines in
 * adjacent pairs, so groups one line apart still contend (tokio's
 * CachePadded uses 128 too).
 */
#define PX__CACHE_LINE 64u
#define PX__CACHE_PAIR 128u

/*
 * Freed blocks kept for reuse (api/alloc.c): a cache per thread that runs a
 * runtime, at most PX__ALLOC_CACHE_MAX_BYTES each, and one process-wide
 * depot of blocks freed beyond a cache's room, at most
 * PX__ALLOC_DEPOT_MAX_BYTES. So an allocator counting live bytes (a test)
 * sees up to that much beyond what is in use. Compiled out under
 * AddressSanitizer (PX__ALLOC_CACHE 0): a kept block would hide a use after
 * free from it.
 */
#if defined(__SANITIZE_ADDRESS__)
#define PX__ALLOC_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PX__ALLOC_CACHE 0
#endif
#endif
#ifndef PX__ALLOC_CACHE
#define PX__ALLOC_CACHE 1
#endif
#define PX__ALLOC_CACHE_MAX_BYTES (1u << 20)
#define PX__ALLOC_DEPOT_MAX_BYTES (4u << 20)

/*
 * Turns the calling thread's cache of freed blocks on (it runs a runtime)
 * or off (it left: its cached blocks and the depot's go back to the
 * allocator).
 */
void px__alloc_cache_use(bool on);

/* What a thread about to sleep hands back: its cached blocks and the
 * depot's (the cache stays on). px__alloc_holds says whether there are
 * any; px__alloc_depot_holds, whether the depot has some. */
void px__alloc_release(void);
bool px__alloc_holds(void);
bool px__alloc_depot_holds(void);

/* How long a parked thread sleeps before it calls px__alloc_release: parks
 * between bursts of work are shorter, and keep the blocks. */
#define PX__TRIM_AFTER_MS 10

/*
 * Cooperative budget (tokio's coop, runtime/coop.rs). A task may complete
 * this many operations on resources that are ready (a channel that is
 * never empty, a socket that always has data, a lock nobody holds, a timer
 * already due, a finished task's join handle) in one poll; after that those
 * resources answer PENDING once, waking the task, so the other tasks of its
 * thread get a turn. Every leaf future that can complete without waiting
 * calls px__coop_proceed first, and px__coop_refund when it then has to wait
 * after all (tokio's RestoreOnPending: only completed operations count).
 * px__task_run sets the budget before each poll of a task and
 * px__coop_poll before each poll of the block_on future; on a thread
 * outside both it is unlimited (-1), so plain threads (px__block_on_thread)
 * never yield for it. docs/TOOLKIT.md ("Cooperative scheduling").
 */
#define PX__COOP_BUDGET 128
#ifndef __cplusplus
extern _Thread_local int px__coop_budget;

/* Returns 1 to go on (one unit spent), or 0 after waking cx: return PENDING. */
static inline int px__coop_proceed(px_context *cx) {
  if (px__coop_budget < 0) return 1;
  if (px__coop_budget > 0) {
    px__coop_budget--;
    return 1;
  }
  px_waker_wake_by_ref(cx->waker);
  return 0;
}

/* Gives back the unit a successful px__coop_proceed took, when the
 * operation then found it must wait: waiting is not progress. */
static inline void px__coop_refund(void) {
  if (px__coop_budget >= 0) px__coop_budget++;
}

/* For a leaf built on other leaves (a stream future over a TLS stream over
 * a socket, a buffered reader): each layer must charge the one operation
 * once, and an operation served from a buffer, which reaches no leaf below,
 * must still be charged. px__coop_enter answers like px__coop_proceed but
 * spends nothing and notes the budget in *mark; px__coop_leave spends the
 * unit only if the operation completed and nothing underneath spent one. */
static inline int px__coop_enter(px_context *cx, int *mark) {
  *mark = px__coop_budget;
  if (px__coop_budget != 0) return 1;
  px_waker_wake_by_ref(cx->waker);
  return 0;
}

static inline void px__coop_leave(int mark, int completed) {
  if (completed && px__coop_budget > 0 && px__coop_budget == mark)
    px__coop_budget--;
}

/* Polls `f` outside the budget: for the runtime's own bookkeeping polls
 * (a scope reaping its children's join handles with a waker of its own),
 * where a PENDING caused by the budget would only wake that waker and be
 * polled again at once, forever. The caller's poll spends the budget. */
static inline int px__coop_poll_unbudgeted(px_future *f, px_context *cx) {
  int saved = px__coop_budget;
  px__coop_budget = -1;
  int r = px__future_poll(f, cx);
  px__coop_budget = saved;
  return r;
}

/*
 * The runtime's time (px__runtime_elapsed_ns, services.h) when the calling
 * thread's current task poll began: px__task_run takes it before the poll,
 * and every deadline judged during the poll (sleeps, timeouts, deadline
 * streams) is judged by it (px__elapsed_for). A driver on another thread
 * may fire a timer in the middle of the poll, after a read of this poll
 * found nothing; with a fresh reading the deadline would then pass although
 * the readiness the driver dispatched before firing it came too late for
 * that read. With the snapshot it passes only at the next poll, which the
 * timer's wake brings, and whose reads see that readiness. rt NULL: no
 * snapshot (a thread outside task polls reads the runtime afresh).
 */
typedef struct px__time_snapshot {
  const px_runtime *rt;
  uint64_t elapsed_ns;
} px__time_snapshot;
extern _Thread_local px__time_snapshot px__poll_time;

/* Polls `f` with a fresh budget (the block_on future: it is not a task, but
 * an accept loop in it must give the tasks it spawns a turn all the same). */
static inline int px__coop_poll(px_future *f, px_context *cx) {
  int saved = px__coop_budget;
  px__coop_budget = PX__COOP_BUDGET;
  int r = px__future_poll(f, cx);
  px__coop_budget = saved;
  return r;
}
#endif

#ifndef __cplusplus
/*
 * A lock for critical sections of a few loads and stores (a list link, a
 * waker swap), where a pthread mutex's lock, unlock and init would cost more
 * than the work they guard. Uncontended it is one exchange and one store.
 * Contended it spins briefly and then yields the CPU: on a machine with
 * more runnable threads than cores the holder may have been preempted, and
 * spinning on would only keep it from running.
 */
typedef atomic_uchar px__spinlock;

/* Tells the CPU we are in a spin-wait loop (x86 pause, arm yield): it
 * saves power and frees the core's resources for a hyperthread sibling. */
static inline void px__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* The contended part of px__spin_lock (api/alloc.c). */
void px__spin_wait(px__spinlock *l);

static inline void px__spin_lock(px__spinlock *l) {
  if (px__likely(!atomic_exchange_explicit(l, 1, memory_order_acquire)))
    return;
  px__spin_wait(l);
}

static inline void px__spin_unlock(px__spinlock *l) {
  atomic_store_explicit(l, 0, memory_order_release);
}
#endif

/* Monotonic nanoseconds (px_now without the public header's types). */
uint64_t px__now_ns(void);

#ifdef __cplusplus
}
#endif

#endif
