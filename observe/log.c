/*
 * PX_LOG: one line per event on stderr, with a timestamp, the worker and the
 * task. Lines are formatted into a buffer and written with one write(2), so
 * lines from several threads never interleave mid-line.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "observe/observe.h"

/* Above every level until PX_LOG was read: see observe.h. */
#define LEVEL_UNPARSED 100

int px__log_level = LEVEL_UNPARSED;

static _Thread_local int tls_worker = -1;
static uint64_t log_start_ns; /* set by the first line (atomic) */
static pthread_once_t parse_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = {"", "error", "warn", "info",
                                          "debug", "trace"};

/* Names the task a line was logged from. The runtime installs it
 * (px_task_current_id): observe/ is a leaf and calls nothing above it. */
static uint64_t (*task_id_source)(void); /* read and written atomically */

void px__log_set_task_source(uint64_t (*current_task_id)(void)) {
  __atomic_store_n(&task_id_source, current_task_id, __ATOMIC_RELAXED);
}

void px__observe_set_worker(int id) { tls_worker = id; }
int px__observe_worker(void) { return tls_worker; }

void px__log_parse(const char *value) {
  int level = PX__LOG_WARN;
  bool bad = false;
  if (value != NULL && value[0] != '\0') {
    bad = true;
    for (int l = PX__LOG_ERROR; l <= PX__LOG_TRACE; l++) {
      if (strcmp(value, level_names[l]) == 0) {
        level = l;
        bad = false;
      }
    }
  }
  __atomic_store_n(&px__log_level, level, __ATOMIC_RELAXED);
  if (bad)
    px__log(PX__LOG_WARN,
            "PX_LOG=%s is not one of error, warn, info, debug, trace; "
            "using warn",
            value);
}

static void parse_env(void) { px__log_parse(getenv("PX_LOG")); }

void px__log_init(void) { pthread_once(&parse_once, parse_env); }

void px__log(int level, const char *fmt, ...) {
  if (__atomic_load_n(&px__log_level, __ATOMIC_RELAXED) == LEVEL_UNPARSED)
    px__log_init();
  if (level > __atomic_load_n(&px__log_level, __ATOMIC_RELAXED)) return;

  /* Seconds since the first line: the first caller to get here sets 0. */
  uint64_t now = px__now_ns();
  uint64_t zero = 0;
  __atomic_compare_exchange_n(&log_start_ns, &zero, now, false,
                              __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  uint64_t start = __atomic_load_n(&log_start_ns, __ATOMIC_RELAXED);
  uint64_t us = now > start ? (now - start) / 1000u : 0;

  char worker[16] = "-";
  if (tls_worker >= 0) snprintf(worker, sizeof worker, "%d", tls_worker);
  char task[24] = "-";
  uint64_t (*source)(void) =
      __atomic_load_n(&task_id_source, __ATOMIC_RELAXED);
  uint64_t id = source != NULL ? source() : 0;
  if (id != 0) snprintf(task, sizeof task, "%llu", (unsigned long long)id);

  char line[1024];
  int n = snprintf(line, sizeof line, "%llu.%06llu pollux %-5s w=%s t=%s: ",
                   (unsigned long long)(us / 1000000u),
                   (unsigned long long)(us % 1000000u),
                   level >= PX__LOG_ERROR && level <= PX__LOG_TRACE
                       ? level_names[level]
                       : "?",
                   worker, task);
  if (n < 0) return;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2) len = sizeof line - 2; /* truncated */
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w; /* nowhere to report a failed log write */
}
