/*
 * A small Redis-compatible server on pollux: RESP2 (and inline commands),
 * PING ECHO SET(EX|PX) GET DEL EXISTS INCR EXPIRE TTL MGET MSET QUIT, plus
 * the list, set, hash and sorted-set commands redis-benchmark's default run
 * uses (LPUSH RPUSH LPOP RPOP LRANGE SADD SPOP HSET ZADD ZPOPMIN) and
 * CONFIG GET (empty), so that a plain `redis-benchmark -q` runs to the end.
 *
 *   redis [-t IDLE_SECONDS] [-c MAX_CONNECTIONS] PORT [HOST]
 *
 * A careful server, as a model: every number from the network is parsed
 * with overflow checks and Redis's own limits and messages; a client's
 * output is bounded (a soft limit stops executing its pipeline until the
 * replies are written, a hard limit disconnects it); buffers are allocated
 * when first needed and shrink after a burst, so an idle connection costs a
 * few KiB; input is drained before a close, so a client sees its last reply
 * and a FIN, not a reset. px_serve runs the accept loop: at most
 * MAX_CONNECTIONS clients at once (-c), a pause after accept errors, and on
 * SIGINT/SIGTERM it stops accepting, lets each connection finish what it
 * read (GRACE at most), and the program exits 0; an idle timeout (-t)
 * closes silent clients.
 */
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pollux.h"

enum {
  IN_FIRST = 4 * 1024,          /* a connection's first input buffer */
  IN_MAX = 64 * 1024,           /* the biggest command accepted */
  OUT_SOFT = 256 * 1024,        /* stop executing: write what is pending */
  OUT_HARD = 32 * 1024 * 1024,  /* one command's replies beyond: disconnect */
  OUT_KEEP = 64 * 1024,         /* a bigger output buffer is freed once written */
  MAX_MULTIBULK = 1024 * 1024,  /* Redis's limit on arguments per command */
};
#define GRACE px_secs(5)        /* shutdown: time for connections to finish */
#define WRITE_LIMIT px_secs(30) /* a client that reads nothing for this long goes */

static px_duration idle_limit; /* -t: 0 means none (Redis's timeout 0) */

/* ---- Checked numbers -------------------------------------------------- */

/* Redis's string2ll: an optional '-', then digits, no leading zero, no
 * spaces or '+', and no overflow. Returns 1 and *v, or 0. */
static int to_ll(const char *s, size_t n, long long *v) {
  if (n == 0 || n > 20) return 0;
  size_t i = 0;
  int neg = s[0] == '-';
  if (neg && n == 1) return 0;
  i += (size_t)neg;
  if (s[i] == '0') {
    if (n == i + 1 && !neg) {
      *v = 0;
      return 1;
    }
    return 0; /* "01", "-0" */
  }
  unsigned long long u = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    unsigned d = (unsigned)(s[i] - '0');
    if (u > (ULLONG_MAX - d) / 10) return 0;
    u = u * 10 + d;
  }
  if (neg) {
    if (u > (unsigned long long)LLONG_MAX + 1) return 0;
    *v = u == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)u;
  } else {
    if (u > (unsigned long long)LLONG_MAX) return 0;
    *v = (long long)u;
  }
  return 1;
}

/* Milliseconds on the monotonic clock: expiry times live in this unit, so
 * an EX of Redis's largest allowed value cannot overflow (nanoseconds
 * would, past 292 years). */
static long long now_ms(void) { return (long long)(px_now() / 1000000u); }

/* An expiry `amount` seconds (unit 1000) or milliseconds (unit 1) from
 * now, with Redis's bounds. Returns 1 and *at, or 0 when out of range. */
static int expiry_from(long long amount, long long unit, long long *at) {
  if (amount <= 0 || amount > LLONG_MAX / unit) return 0;
  long long ms = amount * unit, now = now_ms();
  if (ms > LLONG_MAX - now) return 0;
  *at = now + ms;
  return 1;
}

/* ---- The keyspace: a chained hash table behind one mutex --------------- */

enum { T_STR, T_LIST, T_SET, T_HASH, T_ZSET };

/* Strings and the elements of the other types: a growable array of
 * byte strings (a list is kept in order; a set, a hash (field, value,
 * field, ...) and a sorted set (score, member, ...) are small arrays
 * searched linearly: enough for an example and for redis-benchmark). */
typedef struct blob {
  char *p;
  size_t n;
} blob;

enum { SMALL = 24 }; /* string values shorter than this live in the entry */

/* One key. The key's bytes follow the entry in its allocation, and a short
 * string value sits in `small`: a lookup touches one allocation, not three,
 * and a SET of a short value allocates nothing (profiled under
 * redis-benchmark -P 16: the hash lookups took 37% of the server's time,
 * nearly all of it cache misses on the key and value allocations). */
typedef struct entry {
  struct entry *next;
  uint64_t hash; /* of the key: compared before the bytes */
  size_t klen;
  int type;
  blob val;             /* T_STR: p is `small` or malloc'd */
  blob *items;          /* the other types */
  size_t len, cap, head; /* items[head .. head+len) */
  long long expires;    /* now_ms() units; 0: never */
  char small[SMALL];
  char key[];           /* klen bytes */
} entry;

static struct {
  pthread_mutex_t lock; /* tasks may run on several workers */
  entry **buckets;
  size_t nbuckets, count;
} db = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

static uint64_t hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
  return h;
}

/* A NUL-terminated copy of n bytes at p, or NULL when out of memory. */
static char *copy_bytes(const char *p, size_t n) {
  char *c = malloc(n + 1);
  if (c == NULL) return NULL;
  memcpy(c, p, n);
  c[n] = '\0';
  return c;
}

static int blob_set(blob *b, const char *p, size_t n) {
  char *c = copy_bytes(p, n);
  if (c == NULL) return -1;
  free(b->p);
  b->p = c;
  b->n = n;
  return 0;
}

/* A string entry's value: in place when short, else in a blob of its own. */
static int value_set(entry *e, const char *p, size_t n) {
  char *c = e->small;
  if (n >= SMALL) {
    if ((c = copy_bytes(p, n)) == NULL)
      return -1; /* out of memory: the old value stays */
  } else {
    memcpy(c, p, n);
    c[n] = '\0';
  }
  if (e->val.p != e->small) free(e->val.p);
  e->val.p = c;
  e->val.n = n;
  return 0;
}

static void entry_free(entry *e) {
  if (e->val.p != e->small) free(e->val.p);
  for (size_t i = 0; i < e->len; i++) free(e->items[e->head + i].p);
  free(e->items);
  free(e);
}

static void db_grow(void) {
  size_t n = db.nbuckets ? db.nbuckets * 2 : 1024;
  entry **b = calloc(n, sizeof *b);
  if (b == NULL) return; /* keep the old table: slower, still correct */
  for (size_t i = 0; i < db.nbuckets; i++) {
    for (entry *e = db.buckets[i], *next; e != NULL; e = next) {
      next = e->next;
      size_t j = e->hash & (n - 1);
      e->next = b[j];
      b[j] = e;
    }
  }
  free(db.buckets);
  db.buckets = b;
  db.nbuckets = n;
}

/* Finds a live entry of key k (whose hash is h); an expired one is deleted
 * on the way. */
static entry **db_slot(const char *k, size_t kl, uint64_t h) {
  if (db.nbuckets == 0) return NULL;
  entry **p = &db.buckets[h & (db.nbuckets - 1)];
  for (; *p != NULL; p = &(*p)->next) {
    entry *e = *p;
    if (e->hash != h || e->klen != kl || memcmp(e->key, k, kl) != 0) continue;
    if (e->expires != 0 && now_ms() >= e->expires) {
      *p = e->next;
      entry_free(e);
      db.count--;
      return NULL;
    }
    return p;
  }
  return NULL;
}

static entry *db_get(const char *k, size_t kl) {
  entry **p = db_slot(k, kl, hash(k, kl));
  return p ? *p : NULL;
}

static void db_unlink(entry **p) {
  entry *e = *p;
  *p = e->next;
  entry_free(e);
  db.count--;
}

static int db_del(const char *k, size_t kl) {
  entry **p = db_slot(k, kl, hash(k, kl));
  if (p == NULL) return 0;
  db_unlink(p);
  return 1;
}

/* A new empty entry of key k (hash h, known to be missing) with `type`.
 * NULL when out of memory. */
static entry *db_insert(const char *k, size_t kl, uint64_t h, int type) {
  if (db.count >= db.nbuckets) db_grow();
  if (db.nbuckets == 0) return NULL;
  entry *e = calloc(1, sizeof *e + kl);
  if (e == NULL) return NULL;
  memcpy(e->key, k, kl);
  e->val.p = e->small; /* an empty string until set */
  e->hash = h;
  e->klen = kl;
  e->type = type;
  size_t j = h & (db.nbuckets - 1);
  e->next = db.buckets[j];
  db.buckets[j] = e;
  db.count++;
  return e;
}

/* The entry of key k, created empty with `type` if missing. NULL when out
 * of memory. */
static entry *db_create(const char *k, size_t kl, int type) {
  uint64_t h = hash(k, kl);
  entry **p = db_slot(k, kl, h);
  return p ? *p : db_insert(k, kl, h, type);
}

static int db_set(const char *k, size_t kl, const char *v, size_t vl,
                  long long expires) {
  uint64_t h = hash(k, kl);
  entry **p = db_slot(k, kl, h), *e = p ? *p : NULL;
  if (e != NULL && e->type != T_STR) { /* SET replaces any type */
    db_unlink(p);
    e = NULL;
  }
  if (e == NULL && (e = db_insert(k, kl, h, T_STR)) == NULL) return -1;
  if (value_set(e, v, vl) < 0) return -1;
  e->expires = expires;
  return 0;
}

/* ---- Collections: items[head .. head+len) ------------------------------ */

/* Makes room for one item at the front (front=1) or the back. */
static int items_room(entry *e, int front) {
  if (front && e->head > 0) return 0;
  if (!front && e->head + e->len < e->cap) return 0;
  size_t cap = e->cap ? e->cap * 2 : 8;
  blob *b = malloc(cap * sizeof *b);
  if (b == NULL) return -1;
  size_t at = front ? cap / 4 : 0; /* leave room in front for LPUSH */
  if (front && at == 0) at = 1;
  if (e->len > 0) memcpy(b + at, e->items + e->head, e->len * sizeof *b);
  free(e->items);
  e->items = b;
  e->cap = cap;
  e->head = at;
  return 0;
}

static int items_push(entry *e, const char *p, size_t n, int front) {
  if (items_room(e, front) < 0) return -1;
  blob b = {NULL, 0};
  if (blob_set(&b, p, n) < 0) return -1;
  if (front) e->items[--e->head] = b;
  else e->items[e->head + e->len] = b;
  e->len++;
  return 0;
}

/* Removes item i (shifting the rest), returning it; the caller frees. */
static blob items_take(entry *e, size_t i) {
  blob b = e->items[e->head + i];
  if (i == 0) {
    e->head++;
  } else {
    memmove(e->items + e->head + i, e->items + e->head + i + 1,
            (e->len - i - 1) * sizeof *e->items);
  }
  e->len--;
  return b;
}

/* The index of item equal to (p, n) among items i0, i0+step, ... or -1. */
static long items_find(const entry *e, size_t i0, size_t step, const char *p,
                       size_t n) {
  for (size_t i = i0; i < e->len; i += step) {
    const blob *b = &e->items[e->head + i];
    if (b->n == n && memcmp(b->p, p, n) == 0) return (long)i;
  }
  return -1;
}

/* ---- Replies ------------------------------------------------------------ */

typedef struct out {
  char *buf;
  size_t len, cap;
  int over; /* the hard limit was reached: the client is disconnected */
} out;

static void put(out *o, const void *p, size_t n) {
  if (o->over) return;
  if (n > OUT_HARD || o->len > OUT_HARD - n) {
    o->over = 1;
    return;
  }
  if (o->len + n > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + n) cap *= 2;
    char *b = realloc(o->buf, cap);
    if (b == NULL) {
      o->over = 1;
      return;
    }
    o->buf = b;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, p, n);
  o->len += n;
}

static void put_str(out *o, const char *s) { put(o, s, strlen(s)); }

/* v in decimal at b (at least 21 bytes); returns the length. Replies and
 * INCR format a number per command: snprintf's parsing of its format cost
 * more than the digits. */
static size_t fmt_ll(char *b, long long v) {
  char t[20];
  size_t n = 0, len = 0;
  unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  do {
    t[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) b[len++] = '-';
  while (n > 0) b[len++] = t[--n];
  return len;
}

static void put_fmt(out *o, char type, long long v) {
  char b[32];
  b[0] = type;
  size_t n = 1 + fmt_ll(b + 1, v);
  b[n++] = '\r';
  b[n++] = '\n';
  put(o, b, n);
}

static void put_bulk(out *o, const char *s, size_t n) {
  put_fmt(o, '$', (long long)n);
  put(o, s, n);
  put(o, "\r\n", 2);
}

static void put_nil(out *o) { put_str(o, "$-1\r\n"); }

/* ---- Parsing ------------------------------------------------------------ */

typedef struct command {
  size_t argc, cap;
  char **argv;
  size_t *argl;
} command;

static int add_arg(command *c, char *p, size_t n) {
  if (c->argc == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    char **v = realloc(c->argv, cap * sizeof *v);
    if (v == NULL) return -1;
    c->argv = v;
    size_t *l = realloc(c->argl, cap * sizeof *l);
    if (l == NULL) return -1;
    c->argl = l;
    c->cap = cap;
  }
  c->argv[c->argc] = p;
  c->argl[c->argc] = n;
  c->argc++;
  return 0;
}

/* Reads the number on a line ending in \r\n at p. Returns the bytes used,
 * 0 if the line is incomplete, -1 if it is not a number (or overflows). */
static long parse_line_number(const char *p, const char *end, long long *v) {
  /* Every count and length of a well-formed command, in one pass: up to
   * 18 digits (no overflow), the first not a 0 unless it is alone, then
   * \r\n. Anything else (a sign, a split line, junk) takes the general
   * path below, which says which. A third of the parsing's instructions
   * per SET, GET or INCR (callgrind, redis-benchmark -P 1). */
  const char *q = p;
  unsigned long long u = 0;
  while (q < end && q - p < 18 && (unsigned char)(*q - '0') < 10)
    u = u * 10 + (unsigned)(*q++ - '0');
  if (q > p && end - q >= 2 && q[0] == '\r' && q[1] == '\n' &&
      (p[0] != '0' || q - p == 1)) {
    *v = (long long)u;
    return q + 2 - p;
  }
  const char *cr = memchr(p, '\r', (size_t)(end - p));
  if (cr == NULL) return (end - p > 32) ? -1 : 0; /* Redis: too big count */
  if (cr + 1 >= end) return 0;
  if (cr[1] != '\n' || !to_ll(p, (size_t)(cr - p), v)) return -1;
  return cr + 2 - p;
}

/* Parses one command at buf. Returns bytes consumed, 0 if incomplete, -1
 * if malformed with *why set to Redis's message. */
static long parse_command(char *buf, size_t len, command *c, const char **why) {
  char *p = buf, *end = buf + len;
  c->argc = 0;
  if (len == 0) return 0;
  if (*p != '*') {
    /* Inline command: words separated by spaces, ending in \n. */
    char *nl = memchr(p, '\n', len);
    if (nl == NULL) return 0; /* the buffer limit catches a missing \n */
    char *e = (nl > p && nl[-1] == '\r') ? nl - 1 : nl;
    while (p < e) {
      while (p < e && (*p == ' ' || *p == '\t')) p++;
      if (p == e) break;
      char *w = p;
      while (p < e && *p != ' ' && *p != '\t') p++;
      if (add_arg(c, w, (size_t)(p - w)) < 0) {
        *why = "-ERR out of memory\r\n";
        return -1;
      }
    }
    return nl + 1 - buf;
  }
  long long n;
  long used = parse_line_number(p + 1, end, &n);
  /* Incomplete first: n is only set once the line is complete (a count
   * split across reads, "*" then "3\r\n", must wait, not fail). */
  if (used == 0) return 0;
  if (used < 0 || n > MAX_MULTIBULK) {
    *why = "-ERR Protocol error: invalid multibulk length\r\n";
    return -1;
  }
  p += 1 + used;
  for (long long i = 0; i < n; i++) { /* n <= 0: an empty command, as Redis */
    if (p >= end) return 0;
    if (*p != '$') {
      *why = "-ERR Protocol error: expected '$'\r\n";
      return -1;
    }
    long long l;
    used = parse_line_number(p + 1, end, &l);
    if (used == 0) return 0; /* as above: l is not set yet */
    if (used < 0 || l < 0 || l > IN_MAX) {
      *why = "-ERR Protocol error: invalid bulk length\r\n";
      return -1;
    }
    p += 1 + used;
    if (end - p < l + 2) return 0;
    if (p[l] != '\r' || p[l + 1] != '\n') {
      *why = "-ERR Protocol error: invalid bulk length\r\n";
      return -1;
    }
    if (add_arg(c, p, (size_t)l) < 0) {
      *why = "-ERR out of memory\r\n";
      return -1;
    }
    p += l + 2;
  }
  return p - buf;
}

/* ---- Commands ----------------------------------------------------------- */

static int is(const command *c, size_t i, const char *word) {
  size_t n = strlen(word);
  return c->argl[i] == n && strncasecmp(c->argv[i], word, n) == 0;
}

#define NOT_INT "-ERR value is not an integer or out of range\r\n"
#define WRONGTYPE \
  "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
#define OOM "-ERR out of memory\r\n"

static void wrong_args(out *o, const command *c) {
  char b[128];
  int n = (int)(c->argl[0] > 32 ? 32 : c->argl[0]);
  put(o, b, (size_t)snprintf(b, sizeof b,
                             "-ERR wrong number of arguments for '%.*s' command\r\n",
                             n, c->argv[0]));
}

/* The entry of argv[1] if it has `type` (or is missing: NULL, *ok = 1);
 * a wrong type replies WRONGTYPE and sets *ok = 0. */
static entry *typed(const command *c, int type, out *o, int *ok) {
  entry *e = db_get(c->argv[1], c->argl[1]);
  *ok = e == NULL || e->type == type;
  if (!*ok) put_str(o, WRONGTYPE);
  return *ok ? e : NULL;
}

/* Deletes a collection that became empty, as Redis does. */
static void drop_if_empty(const command *c, entry *e) {
  if (e != NULL && e->len == 0) db_del(c->argv[1], c->argl[1]);
}

static void cmd_push(const command *c, out *o, int front) {
  int ok;
  entry *e = typed(c, T_LIST, o, &ok);
  if (!ok) return;
  if (e == NULL && (e = db_create(c->argv[1], c->argl[1], T_LIST)) == NULL) {
    put_str(o, OOM);
    return;
  }
  for (size_t i = 2; i < c->argc; i++)
    if (items_push(e, c->argv[i], c->argl[i], front) < 0) {
      put_str(o, OOM);
      return;
    }
  put_fmt(o, ':', (long long)e->len);
}

static void cmd_pop(const command *c, out *o, int front) {
  int ok;
  entry *e = typed(c, T_LIST, o, &ok);
  if (!ok) return;
  if (e == NULL) {
    put_nil(o);
    return;
  }
  blob b = items_take(e, front ? 0 : e->len - 1);
  put_bulk(o, b.p, b.n);
  free(b.p);
  drop_if_empty(c, e);
}

static void cmd_lrange(const command *c, out *o) {
  long long start, stop;
  if (!to_ll(c->argv[2], c->argl[2], &start) ||
      !to_ll(c->argv[3], c->argl[3], &stop)) {
    put_str(o, NOT_INT);
    return;
  }
  int ok;
  entry *e = typed(c, T_LIST, o, &ok);
  if (!ok) return;
  long long len = e ? (long long)e->len : 0;
  if (start < 0) start = start < -len ? 0 : len + start;
  if (stop < 0) stop = len + stop;
  if (stop >= len) stop = len - 1;
  if (start > stop || start >= len) {
    put_str(o, "*0\r\n");
    return;
  }
  put_fmt(o, '*', stop - start + 1);
  for (long long i = start; i <= stop && !o->over; i++) {
    const blob *b = &e->items[e->head + (size_t)i];
    put_bulk(o, b->p, b->n);
  }
}

static void cmd_sadd(const command *c, out *o) {
  int ok;
  entry *e = typed(c, T_SET, o, &ok);
  if (!ok) return;
  if (e == NULL && (e = db_create(c->argv[1], c->argl[1], T_SET)) == NULL) {
    put_str(o, OOM);
    return;
  }
  long long added = 0;
  for (size_t i = 2; i < c->argc; i++) {
    if (items_find(e, 0, 1, c->argv[i], c->argl[i]) >= 0) continue;
    if (items_push(e, c->argv[i], c->argl[i], 0) < 0) {
      put_str(o, OOM);
      return;
    }
    added++;
  }
  put_fmt(o, ':', added);
}

static void cmd_spop(const command *c, out *o) {
  int ok;
  entry *e = typed(c, T_SET, o, &ok);
  if (!ok) return;
  if (e == NULL) {
    put_nil(o);
    return;
  }
  blob b = items_take(e, (size_t)rand() % e->len);
  put_bulk(o, b.p, b.n);
  free(b.p);
  drop_if_empty(c, e);
}

static void cmd_hset(const command *c, out *o) {
  int ok;
  entry *e = typed(c, T_HASH, o, &ok);
  if (!ok) return;
  if (e == NULL && (e = db_create(c->argv[1], c->argl[1], T_HASH)) == NULL) {
    put_str(o, OOM);
    return;
  }
  long long added = 0;
  for (size_t i = 2; i + 1 < c->argc; i += 2) {
    long at = items_find(e, 0, 2, c->argv[i], c->argl[i]);
    if (at >= 0) {
      if (blob_set(&e->items[e->head + (size_t)at + 1], c->argv[i + 1],
                   c->argl[i + 1]) < 0)
        goto oom;
      continue;
    }
    if (items_push(e, c->argv[i], c->argl[i], 0) < 0) goto oom;
    if (items_push(e, c->argv[i + 1], c->argl[i + 1], 0) < 0) {
      blob b = items_take(e, e->len - 1); /* keep fields and values paired */
      free(b.p);
      goto oom;
    }
    added++;
  }
  put_fmt(o, ':', added);
  return;
oom:
  put_str(o, OOM);
}

/* Sorted sets as (score, member) pairs in score order; scores are
 * integers here (redis-benchmark's are), which keeps the example short. */
static void cmd_zadd(const command *c, out *o) {
  for (size_t i = 2; i + 1 < c->argc; i += 2) {
    long long s;
    if (!to_ll(c->argv[i], c->argl[i], &s)) {
      put_str(o, "-ERR value is not a valid float\r\n");
      return;
    }
  }
  int ok;
  entry *e = typed(c, T_ZSET, o, &ok);
  if (!ok) return;
  if (e == NULL && (e = db_create(c->argv[1], c->argl[1], T_ZSET)) == NULL) {
    put_str(o, OOM);
    return;
  }
  long long added = 0;
  for (size_t i = 2; i + 1 < c->argc; i += 2) {
    long at = items_find(e, 1, 2, c->argv[i + 1], c->argl[i + 1]);
    if (at >= 0) { /* re-scored: take it out, then insert in order */
      blob m = items_take(e, (size_t)at), sc = items_take(e, (size_t)at - 1);
      free(m.p);
      free(sc.p);
    } else {
      added++;
    }
    long long s;
    to_ll(c->argv[i], c->argl[i], &s);
    if (items_push(e, c->argv[i], c->argl[i], 0) < 0 ||
        items_push(e, c->argv[i + 1], c->argl[i + 1], 0) < 0) {
      put_str(o, OOM);
      return;
    }
    /* Insertion: move the new pair down while its score is smaller. */
    for (size_t j = e->len - 2; j >= 2; j -= 2) {
      long long prev;
      to_ll(e->items[e->head + j - 2].p, e->items[e->head + j - 2].n, &prev);
      if (prev <= s) break;
      blob *it = e->items + e->head;
      blob t0 = it[j], t1 = it[j + 1];
      it[j] = it[j - 2];
      it[j + 1] = it[j - 1];
      it[j - 2] = t0;
      it[j - 1] = t1;
    }
  }
  put_fmt(o, ':', added);
}

static void cmd_zpopmin(const command *c, out *o) {
  int ok;
  entry *e = typed(c, T_ZSET, o, &ok);
  if (!ok) return;
  if (e == NULL) {
    put_str(o, "*0\r\n");
    return;
  }
  blob s = items_take(e, 0), m = items_take(e, 0);
  put_str(o, "*2\r\n");
  put_bulk(o, m.p, m.n);
  put_bulk(o, s.p, s.n);
  free(s.p);
  free(m.p);
  drop_if_empty(c, e);
}

/* Runs one command; returns 1 when the connection must close (QUIT). */
static int execute(const command *c, out *o) {
  if (c->argc == 0) return 0;
  int quit = 0;
  size_t argc = c->argc;
  long long v;
  pthread_mutex_lock(&db.lock);
  if (is(c, 0, "PING")) {
    if (argc == 1) put_str(o, "+PONG\r\n");
    else if (argc == 2) put_bulk(o, c->argv[1], c->argl[1]);
    else wrong_args(o, c);
  } else if (is(c, 0, "ECHO")) {
    if (argc != 2) wrong_args(o, c);
    else put_bulk(o, c->argv[1], c->argl[1]);
  } else if (is(c, 0, "SET")) {
    long long expires = 0;
    if (argc == 5 && (is(c, 3, "EX") || is(c, 3, "PX"))) {
      if (!to_ll(c->argv[4], c->argl[4], &v) ||
          !expiry_from(v, is(c, 3, "EX") ? 1000 : 1, &expires)) {
        put_str(o, "-ERR invalid expire time in 'set' command\r\n");
        goto done;
      }
    } else if (argc != 3) {
      put_str(o, argc < 3 ? "-ERR wrong number of arguments for 'set' command\r\n"
                          : "-ERR syntax error\r\n");
      goto done;
    }
    if (db_set(c->argv[1], c->argl[1], c->argv[2], c->argl[2], expires) < 0)
      put_str(o, OOM);
    else
      put_str(o, "+OK\r\n");
  } else if (is(c, 0, "GET")) {
    if (argc != 2) { wrong_args(o, c); goto done; }
    int ok;
    entry *e = typed(c, T_STR, o, &ok);
    if (!ok) goto done;
    if (e == NULL) put_nil(o);
    else put_bulk(o, e->val.p, e->val.n);
  } else if (is(c, 0, "DEL") || is(c, 0, "EXISTS")) {
    if (argc < 2) { wrong_args(o, c); goto done; }
    long long n = 0;
    int del = is(c, 0, "DEL");
    for (size_t i = 1; i < argc; i++)
      n += del ? db_del(c->argv[i], c->argl[i]) : db_get(c->argv[i], c->argl[i]) != NULL;
    put_fmt(o, ':', n);
  } else if (is(c, 0, "INCR")) {
    if (argc != 2) { wrong_args(o, c); goto done; }
    int ok;
    entry *e = typed(c, T_STR, o, &ok);
    if (!ok) goto done;
    v = 0;
    if (e != NULL && !to_ll(e->val.p, e->val.n, &v)) { put_str(o, NOT_INT); goto done; }
    if (v == LLONG_MAX) {
      put_str(o, "-ERR increment or decrement would overflow\r\n");
      goto done;
    }
    char b[32];
    size_t n = fmt_ll(b, v + 1);
    /* The entry found above is the one to change (one lookup, not three);
     * a missing key is created without expiry. */
    if (e != NULL ? value_set(e, b, n) < 0
                  : db_set(c->argv[1], c->argl[1], b, n, 0) < 0)
      put_str(o, OOM);
    else
      put_fmt(o, ':', v + 1);
  } else if (is(c, 0, "EXPIRE")) {
    if (argc != 3) { wrong_args(o, c); goto done; }
    if (!to_ll(c->argv[2], c->argl[2], &v)) { put_str(o, NOT_INT); goto done; }
    long long at = 0;
    if (v > 0 && !expiry_from(v, 1000, &at)) {
      put_str(o, "-ERR invalid expire time in 'expire' command\r\n");
      goto done;
    }
    entry *e = db_get(c->argv[1], c->argl[1]);
    if (e == NULL) { put_fmt(o, ':', 0); goto done; }
    if (v <= 0) db_del(c->argv[1], c->argl[1]); /* Redis: expire in the past */
    else e->expires = at;
    put_fmt(o, ':', 1);
  } else if (is(c, 0, "TTL")) {
    if (argc != 2) { wrong_args(o, c); goto done; }
    entry *e = db_get(c->argv[1], c->argl[1]);
    if (e == NULL) put_fmt(o, ':', -2);
    else if (e->expires == 0) put_fmt(o, ':', -1);
    else put_fmt(o, ':', (e->expires - now_ms() + 500) / 1000);
  } else if (is(c, 0, "MGET")) {
    if (argc < 2) { wrong_args(o, c); goto done; }
    put_fmt(o, '*', (long long)argc - 1);
    for (size_t i = 1; i < argc && !o->over; i++) {
      entry *e = db_get(c->argv[i], c->argl[i]);
      if (e == NULL || e->type != T_STR) put_nil(o);
      else put_bulk(o, e->val.p, e->val.n);
    }
  } else if (is(c, 0, "MSET")) {
    if (argc < 3 || argc % 2 == 0) { wrong_args(o, c); goto done; }
    for (size_t i = 1; i + 1 < argc; i += 2)
      if (db_set(c->argv[i], c->argl[i], c->argv[i + 1], c->argl[i + 1], 0) < 0) {
        put_str(o, OOM);
        goto done;
      }
    put_str(o, "+OK\r\n");
  } else if (is(c, 0, "LPUSH") || is(c, 0, "RPUSH")) {
    if (argc < 3) wrong_args(o, c);
    else cmd_push(c, o, is(c, 0, "LPUSH"));
  } else if (is(c, 0, "LPOP") || is(c, 0, "RPOP")) {
    if (argc != 2) wrong_args(o, c);
    else cmd_pop(c, o, is(c, 0, "LPOP"));
  } else if (is(c, 0, "LRANGE")) {
    if (argc != 4) wrong_args(o, c);
    else cmd_lrange(c, o);
  } else if (is(c, 0, "SADD")) {
    if (argc < 3) wrong_args(o, c);
    else cmd_sadd(c, o);
  } else if (is(c, 0, "SPOP")) {
    if (argc != 2) wrong_args(o, c);
    else cmd_spop(c, o);
  } else if (is(c, 0, "HSET")) {
    if (argc < 4 || argc % 2 != 0) wrong_args(o, c);
    else cmd_hset(c, o);
  } else if (is(c, 0, "ZADD")) {
    if (argc < 4 || argc % 2 != 0) wrong_args(o, c);
    else cmd_zadd(c, o);
  } else if (is(c, 0, "ZPOPMIN")) {
    if (argc != 2) wrong_args(o, c);
    else cmd_zpopmin(c, o);
  } else if (is(c, 0, "CONFIG")) {
    /* redis-benchmark asks for "save" and "appendonly": nothing is set. */
    if (argc >= 3 && is(c, 1, "GET")) put_str(o, "*0\r\n");
    else put_str(o, "-ERR unsupported CONFIG subcommand\r\n");
  } else if (is(c, 0, "QUIT")) {
    put_str(o, "+OK\r\n");
    quit = 1;
  } else {
    char b[128];
    int n = (int)(c->argl[0] > 64 ? 64 : c->argl[0]);
    put(o, b, (size_t)snprintf(b, sizeof b, "-ERR unknown command '%.*s'\r\n", n,
                               c->argv[0]));
  }
done:
  pthread_mutex_unlock(&db.lock);
  return quit;
}

/* ---- Connections -------------------------------------------------------- */

typedef struct {
  px_async px;
  px_stream *s;          /* closed by px_serve once the task ends */
  px_cancel_token *stop; /* cancelled when the server shuts down */
  char *in; /* allocated at the first read; at most IN_MAX */
  size_t inlen, incap;
  int closing; /* QUIT or a protocol error: reply, drain, close */
  int more;    /* complete commands wait in `in` (the soft limit hit) */
  out o;
  command cmd;
  px_stream_io rd, wr;
  size_t drained;
  px_cancelled stopped;
  px_sleep idle;
  px_select sel;
  px_timeout wlimit;
  int err;
  uint64_t n;
  char sink[512]; /* drained input goes here */
} conn;

static void conn_release(void *arg) {
  conn *c = arg;
  free(c->in);
  free(c->o.buf);
  free(c->cmd.argv);
  free(c->cmd.argl);
}

/* Executes the complete commands in the input, until the output reaches
 * the soft limit (then the rest waits until it is written: backpressure on
 * a client that pipelines more than it reads); keeps what is incomplete. */
static void serve_buffer(conn *self) {
  size_t off = 0;
  self->more = 0;
  while (!self->closing && !self->o.over) {
    if (self->o.len >= OUT_SOFT) {
      self->more = 1;
      break;
    }
    const char *why = NULL;
    long used = parse_command(self->in + off, self->inlen - off, &self->cmd, &why);
    if (used == 0) break;
    if (used < 0) {
      put_str(&self->o, why);
      self->closing = 1;
      break;
    }
    off += (size_t)used;
    self->closing = execute(&self->cmd, &self->o);
  }
  memmove(self->in, self->in + off, self->inlen - off);
  self->inlen -= off;
  if (!self->closing && !self->more && self->inlen == IN_MAX) {
    put_str(&self->o, self->in[0] == '*'
                          ? "-ERR Protocol error: invalid bulk length\r\n"
                          : "-ERR Protocol error: too big inline request\r\n");
    self->closing = 1;
  }
}

/* Room to read into: the first buffer, or twice the full one. */
static int make_room(conn *self) {
  if (self->inlen < self->incap) return 0;
  size_t cap = self->incap ? self->incap * 2 : IN_FIRST;
  if (cap > IN_MAX) cap = IN_MAX;
  char *b = realloc(self->in, cap);
  if (b == NULL) return -1;
  self->in = b;
  self->incap = cap;
  return 0;
}

/* After a burst: big buffers go back, so a quiet connection is small. */
static void shrink(conn *self) {
  if (self->o.cap > OUT_KEEP) {
    free(self->o.buf);
    self->o.buf = NULL;
    self->o.cap = 0;
  }
  if (self->inlen == 0 && self->incap > IN_FIRST) {
    free(self->in);
    self->in = NULL;
    self->incap = 0;
  }
}

PX_ASYNC_FN(conn) {
  PX_BEGIN();
  PX_DEFER(conn_release, self);
  while (!self->closing) {
    if (!self->more) {
      if (make_room(self) < 0) break;
      /* A read, unless shutdown comes first (between commands: whatever
       * was read is served) or the client stays silent too long (no -t: a
       * NULL third branch, which a select skips). Biased, in that order:
       * bytes that arrived win over both, so a server that was stalled past
       * the idle limit serves a client that did send, instead of closing
       * it as idle (a fair select picked the sleep half the time; seen in
       * the adversarial suite's connect flood); a stop's grace ends a
       * client that never pauses. */
      PX_AWAIT_INTO(self->n, self->err,
                    px_select_biased(px_select3_init(
                        &self->sel,
                        px_stream_read_init(&self->rd, self->s, self->in + self->inlen,
                                            self->incap - self->inlen),
                        px_cancelled_init(&self->stopped, self->stop),
                        idle_limit ? px_sleep_init(&self->idle, idle_limit) : NULL)));
      /* Shutdown, idle, an error or end of stream: close quietly. */
      if (self->sel.index != 0 || self->err < 0 || self->n == 0) break;
      self->inlen += self->n;
    }
    serve_buffer(self);
    if (self->o.over) {
      fprintf(stderr, "redis: a client's replies passed %d MiB: disconnected\n",
              OUT_HARD >> 20);
      break;
    }
    if (self->o.len > 0) {
      /* A client that reads nothing for WRITE_LIMIT is gone. */
      PX_AWAIT_ERR(self->err,
                   px_timeout_init(&self->wlimit,
                                   px_stream_write_all_init(&self->wr, self->s,
                                                            self->o.buf, self->o.len),
                                   WRITE_LIMIT));
      if (self->err < 0) PX_RETURN(px_u64(0));
      self->o.len = 0;
    }
    shrink(self);
  }
  if (self->closing) {
    /* The last reply went out; now FIN, then read what the client still
     * sends until it closes (at most a second), so that closing does not
     * turn unread input into a reset that could destroy the reply. */
    px_tcp_shutdown(self->s);
    for (;;) {
      PX_AWAIT_INTO(self->n, self->err,
                    px_timeout_init(&self->wlimit,
                                    px_stream_read_init(&self->rd, self->s, self->sink,
                                                        sizeof self->sink),
                                    px_secs(1)));
      self->drained += self->n;
      if (self->err < 0 || self->n == 0 || self->drained > IN_MAX) break;
    }
  }
  PX_END();
}

/* ---- The server ---------------------------------------------------------- */

/* px_serve's connection constructor: one conn task per client. */
static int start(px_serve_conn *c) {
  conn f = PX_ASYNC_NEW(conn, .s = c->stream, .stop = c->stop);
  return px_serve_spawn(c, PX_FUTURE(&f));
}

static int usage(void) {
  fprintf(stderr,
          "usage: redis [-t IDLE_SECONDS] [-c MAX_CONNECTIONS] PORT [HOST]   (PORT "
          "1..65535, HOST numeric, default 127.0.0.1; -t 0: no idle timeout, the "
          "default; -c: default 10000)\n");
  return 2;
}

/* A whole number in [min, max] from an option or argument, or -1. */
static long long number(const char *s, long long min, long long max) {
  long long n;
  return to_ll(s, strlen(s), &n) && n >= min && n <= max ? n : -1;
}

int main(int argc, char **argv) {
  px_serve_opts o = {.conn = start, .max_connections = 10000, .grace = GRACE};
  for (int opt; (opt = getopt(argc, argv, "t:c:")) != -1;) {
    long long n = opt == '?' ? -1 : number(optarg, opt == 't' ? 0 : 1, 86400LL * 365);
    if (n < 0) return usage();
    if (opt == 't') idle_limit = px_secs((uint64_t)n);
    if (opt == 'c') o.max_connections = (size_t)n;
  }
  if (argc - optind < 1 || argc - optind > 2) return usage();
  long long port = number(argv[optind], 1, 65535);
  if (port < 0) return usage();
  const char *host = argc - optind == 2 ? argv[optind + 1] : "127.0.0.1";

  /* Signals before the runtime, so that no thread it starts takes them.
   * px_serve then runs the accept loop: the cap, a pause after accept
   * errors, and on SIGINT/SIGTERM: stop accepting, cancel the connections'
   * stop token (each finishes what it read), cut the rest after GRACE. */
  int sigs[] = {SIGINT, SIGTERM};
  px_tcp_listener *l = NULL;
  int rc = px_signal_open(&o.signals, sigs, 2);
  if (rc == 0) rc = px_tcp_bind(host, (uint16_t)port, &l);
  if (rc < 0) {
    fprintf(stderr, "redis: %s:%lld: %s\n", host, port, px_strerror(rc));
    return 1;
  }
  fprintf(stderr, "redis: listening on %s port %lld (%s)\n", host, port,
          px_build_info());
  px_serve srv;
  rc = px_run(px_serve_init(&srv, l, &o)); /* the listener is the server's */
  fprintf(stderr, "redis: shut down (%llu connections cut)\n",
          (unsigned long long)srv.base.output.u64);
  px_signal_close(o.signals);
  pthread_mutex_lock(&db.lock);
  for (size_t i = 0; i < db.nbuckets; i++)
    for (entry *e = db.buckets[i], *next; e != NULL; e = next) {
      next = e->next;
      entry_free(e);
    }
  free(db.buckets);
  pthread_mutex_unlock(&db.lock);
  return rc < 0;
}
