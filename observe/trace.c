/*
 * PX_TRACE: a Chrome trace-event JSON file (https://ui.perfetto.dev loads it).
 *
 * Each worker buffers its events in a fixed ring of its own, written to the
 * file under the trace mutex when the ring is full, when the worker stops
 * and at px_runtime_free; memory is bounded whatever the runtime does.
 * Threads that are not workers write their (rare) events straight to the
 * file under the mutex. The file is valid JSON once the runtime is freed.
 */
#include <pthread.h>
#include <stdio.h>

#include "observe/observe.h"

#define RING_EVENTS 4096
/* The track of threads that are not workers. */
#define OUTSIDE_TID 9999

typedef struct trace_event {
  uint64_t start_ns, dur_ns, id;
  const char *name;
  px__trace_kind kind;
} trace_event;

struct px__trace_ring {
  uint32_t len;
  trace_event ev[RING_EVENTS];
};

struct px__trace {
  pthread_mutex_t mu;
  FILE *f;
  bool first; /* no event written yet: no comma before the next */
};

int px__trace_open(px__observe *obs, const char *path) {
  struct px__trace *tr = px__calloc(sizeof *tr);
  if (tr == NULL) return PX_ENOMEM;
  tr->f = fopen(path, "w");
  if (tr->f == NULL) {
    PX__LOG(PX__LOG_WARN, "PX_TRACE=%s: cannot open the file; not tracing",
            path);
    px__free(tr, sizeof *tr);
    return PX_EINVAL;
  }
  pthread_mutex_init(&tr->mu, NULL);
  tr->first = true;
  fputs("{\"traceEvents\":[\n", tr->f);
  obs->trace = tr;
  PX__LOG(PX__LOG_INFO, "tracing to %s", path);
  return 0;
}

/* Writes `name` as a JSON string (names are C identifiers, but be safe). */
static void put_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; s != NULL && *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

/* Microseconds with nanosecond digits, printed exactly (no float rounding,
 * so back-to-back spans never appear to overlap). */
static void put_us(FILE *f, uint64_t ns) {
  fprintf(f, "%llu.%03llu", (unsigned long long)(ns / 1000u),
          (unsigned long long)(ns % 1000u));
}

/* Writes one event; the trace mutex is held. */
static void write_event(px__observe *obs, int tid, const trace_event *e) {
  struct px__trace *tr = obs->trace;
  FILE *f = tr->f;
  if (!tr->first) fputs(",\n", f);
  tr->first = false;
  static const char *const cats[] = {"poll", "block_on", "reactor",
                                     "wake", "steal",    "park"};
  static const char *const names[] = {"poll", "block_on", "reactor_wait",
                                      "wake", "steal",    "park"};
  const char *name = e->name != NULL ? e->name : names[e->kind];
  fputs("{\"name\":", f);
  put_string(f, name);
  fprintf(f, ",\"cat\":\"%s\",\"ph\":", cats[e->kind]);
  uint64_t rel = e->start_ns > obs->start_ns ? e->start_ns - obs->start_ns : 0;
  bool span = e->kind == PX__TRACE_POLL || e->kind == PX__TRACE_BLOCK_ON ||
              e->kind == PX__TRACE_REACTOR_WAIT;
  fputs(span ? "\"X\"" : "\"i\",\"s\":\"t\"", f);
  fputs(",\"ts\":", f);
  put_us(f, rel);
  if (span) {
    fputs(",\"dur\":", f);
    put_us(f, e->dur_ns);
  }
  fprintf(f, ",\"pid\":1,\"tid\":%d,\"args\":{\"task\":%llu}}", tid,
          (unsigned long long)e->id);
}

static void flush_ring(px__counters *b) {
  px__observe *obs = b->obs;
  pthread_mutex_lock(&obs->trace->mu);
  for (uint32_t i = 0; i < b->ring->len; i++)
    write_event(obs, b->worker, &b->ring->ev[i]);
  pthread_mutex_unlock(&obs->trace->mu);
  b->ring->len = 0;
}

void px__trace_flush(px__counters *b) {
  if (b->ring != NULL && b->obs->trace != NULL) flush_ring(b);
}

void px__trace_emit(px__counters *b, px__trace_kind kind, const char *name,
                    uint64_t id, uint64_t start_ns, uint64_t dur_ns) {
  px__observe *obs = b->obs;
  if (obs->trace == NULL) return;
  trace_event e = {start_ns, dur_ns, id, name, kind};
  if (!px__obs_shared(b) && b->ring == NULL) {
    b->ring = px__alloc(sizeof *b->ring);
    if (b->ring != NULL) b->ring->len = 0;
  }
  if (px__obs_shared(b) || b->ring == NULL) {
    pthread_mutex_lock(&obs->trace->mu);
    write_event(obs, px__obs_shared(b) ? OUTSIDE_TID : b->worker, &e);
    pthread_mutex_unlock(&obs->trace->mu);
    return;
  }
  b->ring->ev[b->ring->len++] = e;
  if (b->ring->len == RING_EVENTS) flush_ring(b);
}

/* Names the tracks, so Perfetto shows "worker 0" instead of a number. */
static void name_track(px__observe *obs, int tid, const char *what, int n) {
  struct px__trace *tr = obs->trace;
  if (!tr->first) fputs(",\n", tr->f);
  tr->first = false;
  fprintf(tr->f,
          "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%d,"
          "\"args\":{\"name\":\"%s",
          tid, what);
  if (n >= 0) fprintf(tr->f, " %d", n);
  fputs("\"}}", tr->f);
}

void px__trace_close(px__observe *obs) {
  struct px__trace *tr = obs->trace;
  if (tr == NULL) return;
  /* Every worker has stopped: their rings are ours to write and free. */
  for (uint32_t i = 0; i < obs->nworkers; i++) {
    px__counters *b = &obs->workers[i];
    if (b->ring == NULL) continue;
    flush_ring(b);
    px__free(b->ring, sizeof *b->ring);
    b->ring = NULL;
  }
  pthread_mutex_lock(&tr->mu);
  int max = __atomic_load_n(&obs->max_worker, __ATOMIC_RELAXED);
  for (int i = 0; i <= max; i++) name_track(obs, i, "worker", i);
  name_track(obs, OUTSIDE_TID, "outside the workers", -1);
  fputs("\n]}\n", tr->f);
  fclose(tr->f);
  pthread_mutex_unlock(&tr->mu);
  pthread_mutex_destroy(&tr->mu);
  obs->trace = NULL;
  obs->flags &= ~PX__OBS_TRACE;
  px__free(tr, sizeof *tr);
}
