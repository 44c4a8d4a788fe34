/*
 * A small Redis-compatible server on pollux: RESP2 (and inline commands),
 * PING ECHO SET(EX|PX) GET DEL EXISTS INCR EXPIRE TTL MGET MSET QUIT.
 *
 *   redis PORT [HOST]       then: redis-cli -p PORT, redis-benchmark -p PORT
 *
 * One task per connection. Each read is parsed for every complete command
 * in the buffer (so pipelined requests cost one read and one write), the
 * replies are batched into one write. Expired keys are removed lazily, when
 * touched. Malformed input gets a protocol error and closes that connection
 * only; a command larger than the input buffer does the same.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pollux.h"

enum {
  IN_MAX = 64 * 1024, /* per-connection input limit: the biggest command */
  MAX_ARGS = 1024,
};

/* ---- The keyspace: a chained hash table behind one mutex --------------- */

typedef struct entry {
  struct entry *next;
  char *key, *val;
  size_t klen, vlen;
  px_instant expires; /* 0: never */
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

static void entry_free(entry *e) {
  free(e->key);
  free(e->val);
  free(e);
}

static void db_grow(void) {
  size_t n = db.nbuckets ? db.nbuckets * 2 : 1024;
  entry **b = calloc(n, sizeof *b);
  if (b == NULL) return; /* keep the old table: slower, still correct */
  for (size_t i = 0; i < db.nbuckets; i++) {
    for (entry *e = db.buckets[i], *next; e != NULL; e = next) {
      next = e->next;
      size_t j = hash(e->key, e->klen) & (n - 1);
      e->next = b[j];
      b[j] = e;
    }
  }
  free(db.buckets);
  db.buckets = b;
  db.nbuckets = n;
}

/* Finds a live entry; an expired one is deleted on the way. */
static entry **db_slot(const char *k, size_t kl) {
  if (db.nbuckets == 0) return NULL;
  entry **p = &db.buckets[hash(k, kl) & (db.nbuckets - 1)];
  for (; *p != NULL; p = &(*p)->next) {
    entry *e = *p;
    if (e->klen != kl || memcmp(e->key, k, kl) != 0) continue;
    if (e->expires != 0 && px_now() >= e->expires) {
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
  entry **p = db_slot(k, kl);
  return p ? *p : NULL;
}

static int db_set(const char *k, size_t kl, const char *v, size_t vl,
                  px_instant expires) {
  char *val = malloc(vl + 1);
  if (val == NULL) return -1;
  memcpy(val, v, vl);
  val[vl] = '\0';
  entry *e = db_get(k, kl);
  if (e != NULL) {
    free(e->val);
  } else {
    if (db.count >= db.nbuckets) db_grow();
    e = calloc(1, sizeof *e);
    if (e == NULL || (e->key = malloc(kl)) == NULL) {
      free(e);
      free(val);
      return -1;
    }
    memcpy(e->key, k, kl);
    e->klen = kl;
    size_t j = hash(k, kl) & (db.nbuckets - 1);
    e->next = db.buckets[j];
    db.buckets[j] = e;
    db.count++;
  }
  e->val = val;
  e->vlen = vl;
  e->expires = expires;
  return 0;
}

static int db_del(const char *k, size_t kl) {
  entry **p = db_slot(k, kl);
  if (p == NULL) return 0;
  entry *e = *p;
  *p = e->next;
  entry_free(e);
  db.count--;
  return 1;
}

/* ---- Replies ------------------------------------------------------------ */

typedef struct out {
  char *buf;
  size_t len, cap;
  int failed;
} out;

static void put(out *o, const void *p, size_t n) {
  if (o->len + n > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + n) cap *= 2;
    char *b = realloc(o->buf, cap);
    if (b == NULL) {
      o->failed = 1;
      return;
    }
    o->buf = b;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, p, n);
  o->len += n;
}

static void put_str(out *o, const char *s) { put(o, s, strlen(s)); }

static void put_int(out *o, long long v) {
  char b[32];
  put(o, b, (size_t)snprintf(b, sizeof b, ":%lld\r\n", v));
}

static void put_bulk(out *o, const char *s, size_t n) {
  char b[32];
  put(o, b, (size_t)snprintf(b, sizeof b, "$%zu\r\n", n));
  put(o, s, n);
  put(o, "\r\n", 2);
}

static void put_array(out *o, size_t n) {
  char b[32];
  put(o, b, (size_t)snprintf(b, sizeof b, "*%zu\r\n", n));
}

/* ---- Parsing ------------------------------------------------------------ */

typedef struct command {
  int argc;
  char *argv[MAX_ARGS];
  size_t argl[MAX_ARGS];
} command;

/* Reads a decimal number ending in \r\n. Returns the bytes used, 0 if the
 * line is incomplete, -1 if it is malformed. */
static long parse_number(const char *p, const char *end, long long *v) {
  const char *cr = memchr(p, '\r', (size_t)(end - p));
  if (cr == NULL || cr + 1 >= end) return (end - p > 20) ? -1 : 0;
  if (cr[1] != '\n' || cr == p || cr - p > 19) return -1;
  long long n = 0;
  int neg = *p == '-';
  for (const char *q = p + neg; q < cr; q++) {
    if (!isdigit((unsigned char)*q)) return -1;
    n = n * 10 + (*q - '0');
  }
  *v = neg ? -n : n;
  return cr + 2 - p;
}

/* Parses one command at buf. Returns bytes consumed, 0 if incomplete,
 * -1 if malformed. */
static long parse_command(char *buf, size_t len, command *c) {
  char *p = buf, *end = buf + len;
  c->argc = 0;
  if (len == 0) return 0;
  if (*p != '*') {
    /* Inline command: words separated by spaces, ending in \n. */
    char *nl = memchr(p, '\n', len);
    if (nl == NULL) return 0;
    char *e = (nl > p && nl[-1] == '\r') ? nl - 1 : nl;
    while (p < e && c->argc < MAX_ARGS) {
      while (p < e && *p == ' ') p++;
      if (p == e) break;
      c->argv[c->argc] = p;
      while (p < e && *p != ' ') p++;
      c->argl[c->argc] = (size_t)(p - c->argv[c->argc]);
      c->argc++;
    }
    return nl + 1 - buf;
  }
  long long n;
  long used = parse_number(p + 1, end, &n);
  if (used <= 0) return used;
  if (n < 1 || n > MAX_ARGS) return -1;
  p += 1 + used;
  for (long long i = 0; i < n; i++) {
    if (p >= end) return 0;
    if (*p != '$') return -1;
    long long l;
    used = parse_number(p + 1, end, &l);
    if (used <= 0) return used;
    if (l < 0 || l > IN_MAX) return -1;
    p += 1 + used;
    if (end - p < l + 2) return 0;
    if (p[l] != '\r' || p[l + 1] != '\n') return -1;
    c->argv[c->argc] = p;
    c->argl[c->argc] = (size_t)l;
    c->argc++;
    p += l + 2;
  }
  return p - buf;
}

/* ---- Commands ----------------------------------------------------------- */

static int is(const command *c, int i, const char *word) {
  size_t n = strlen(word);
  return c->argl[i] == n && strncasecmp(c->argv[i], word, n) == 0;
}

static int to_ll(const char *s, size_t n, long long *v) {
  char b[32];
  if (n == 0 || n >= sizeof b) return 0;
  memcpy(b, s, n);
  b[n] = '\0';
  char *endp;
  *v = strtoll(b, &endp, 10);
  return *endp == '\0';
}

#define WRONG_ARGS(o, name) \
  put_str(o, "-ERR wrong number of arguments for '" name "' command\r\n")
#define NOT_INT "-ERR value is not an integer or out of range\r\n"

/* Runs one command; returns 1 when the connection must close (QUIT). */
static int execute(const command *c, out *o) {
  if (c->argc == 0) return 0;
  int quit = 0;
  pthread_mutex_lock(&db.lock);
  if (is(c, 0, "PING")) {
    if (c->argc == 1) put_str(o, "+PONG\r\n");
    else put_bulk(o, c->argv[1], c->argl[1]);
  } else if (is(c, 0, "ECHO")) {
    if (c->argc != 2) WRONG_ARGS(o, "echo");
    else put_bulk(o, c->argv[1], c->argl[1]);
  } else if (is(c, 0, "SET")) {
    px_instant expires = 0;
    long long v;
    if (c->argc == 5 && (is(c, 3, "EX") || is(c, 3, "PX"))) {
      if (!to_ll(c->argv[4], c->argl[4], &v) || v <= 0) {
        put_str(o, "-ERR invalid expire time in 'set' command\r\n");
        goto done;
      }
      expires = px_now() + (is(c, 3, "EX") ? px_secs((uint64_t)v) : px_ms((uint64_t)v));
    } else if (c->argc != 3) {
      put_str(o, "-ERR syntax error\r\n");
      goto done;
    }
    if (db_set(c->argv[1], c->argl[1], c->argv[2], c->argl[2], expires) < 0)
      put_str(o, "-ERR out of memory\r\n");
    else
      put_str(o, "+OK\r\n");
  } else if (is(c, 0, "GET")) {
    if (c->argc != 2) { WRONG_ARGS(o, "get"); goto done; }
    entry *e = db_get(c->argv[1], c->argl[1]);
    if (e == NULL) put_str(o, "$-1\r\n");
    else put_bulk(o, e->val, e->vlen);
  } else if (is(c, 0, "DEL") || is(c, 0, "EXISTS")) {
    if (c->argc < 2) { WRONG_ARGS(o, "del"); goto done; }
    long long n = 0;
    int del = is(c, 0, "DEL");
    for (int i = 1; i < c->argc; i++)
      n += del ? db_del(c->argv[i], c->argl[i]) : db_get(c->argv[i], c->argl[i]) != NULL;
    put_int(o, n);
  } else if (is(c, 0, "INCR")) {
    if (c->argc != 2) { WRONG_ARGS(o, "incr"); goto done; }
    entry *e = db_get(c->argv[1], c->argl[1]);
    long long v = 0;
    if (e != NULL && !to_ll(e->val, e->vlen, &v)) { put_str(o, NOT_INT); goto done; }
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", v + 1);
    if (db_set(c->argv[1], c->argl[1], b, (size_t)n, e ? e->expires : 0) < 0)
      put_str(o, "-ERR out of memory\r\n");
    else
      put_int(o, v + 1);
  } else if (is(c, 0, "EXPIRE")) {
    long long s;
    if (c->argc != 3) { WRONG_ARGS(o, "expire"); goto done; }
    if (!to_ll(c->argv[2], c->argl[2], &s)) { put_str(o, NOT_INT); goto done; }
    entry *e = db_get(c->argv[1], c->argl[1]);
    if (e == NULL) { put_int(o, 0); goto done; }
    if (s <= 0) db_del(c->argv[1], c->argl[1]);
    else e->expires = px_now() + px_secs((uint64_t)s);
    put_int(o, 1);
  } else if (is(c, 0, "TTL")) {
    if (c->argc != 2) { WRONG_ARGS(o, "ttl"); goto done; }
    entry *e = db_get(c->argv[1], c->argl[1]);
    if (e == NULL) put_int(o, -2);
    else if (e->expires == 0) put_int(o, -1);
    else put_int(o, (long long)((e->expires - px_now() + 500000000u) / 1000000000u));
  } else if (is(c, 0, "MGET")) {
    if (c->argc < 2) { WRONG_ARGS(o, "mget"); goto done; }
    put_array(o, (size_t)c->argc - 1);
    for (int i = 1; i < c->argc; i++) {
      entry *e = db_get(c->argv[i], c->argl[i]);
      if (e == NULL) put_str(o, "$-1\r\n");
      else put_bulk(o, e->val, e->vlen);
    }
  } else if (is(c, 0, "MSET")) {
    if (c->argc < 3 || c->argc % 2 == 0) { WRONG_ARGS(o, "mset"); goto done; }
    for (int i = 1; i + 1 < c->argc; i += 2)
      db_set(c->argv[i], c->argl[i], c->argv[i + 1], c->argl[i + 1], 0);
    put_str(o, "+OK\r\n");
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
  px_tcp_stream *s;
  size_t inlen;
  int closing;
  out o;
  command cmd;
  px_tcp_io rd, wr;
  char in[IN_MAX];
} conn;

static void conn_drop(px_future *f) {
  px_async_drop(f);
  conn *c = (conn *)f;
  px_tcp_close(c->s);
  free(c->o.buf);
}

/* Executes every complete command in the input; keeps the rest. */
static void serve_buffer(conn *self) {
  size_t off = 0;
  while (!self->closing) {
    long used = parse_command(self->in + off, self->inlen - off, &self->cmd);
    if (used == 0) break;
    if (used < 0) {
      put_str(&self->o, "-ERR Protocol error\r\n");
      self->closing = 1;
      break;
    }
    off += (size_t)used;
    self->closing = execute(&self->cmd, &self->o);
  }
  memmove(self->in, self->in + off, self->inlen - off);
  self->inlen -= off;
  if (!self->closing && self->inlen == sizeof self->in) {
    put_str(&self->o, "-ERR Protocol error: command too large\r\n");
    self->closing = 1;
  }
}

PX_ASYNC_FN_WITH_DROP(conn, conn_drop) {
  PX_BEGIN();
  while (!self->closing) {
    PX_AWAIT(px_tcp_read_init(&self->rd, self->s, self->in + self->inlen,
                              sizeof self->in - self->inlen));
    if (self->rd.base.error < 0 || self->rd.base.output.u64 == 0) break;
    self->inlen += self->rd.base.output.u64;
    serve_buffer(self);
    if (self->o.failed) break;
    if (self->o.len > 0) {
      PX_AWAIT(px_tcp_write_all_init(&self->wr, self->s, self->o.buf, self->o.len));
      if (self->wr.base.error < 0) break;
      self->o.len = 0;
    }
  }
  PX_END();
}

typedef struct {
  px_async px;
  px_tcp_listener *l;
  px_tcp_accept acc;
} server;

PX_ASYNC_FN(server) {
  PX_BEGIN();
  for (;;) {
    PX_AWAIT(px_tcp_accept_init(&self->acc, self->l));
    if (self->acc.base.error < 0) {
      fprintf(stderr, "redis: accept: %s\n", px_strerror(self->acc.base.error));
      continue; /* keep serving the others */
    }
    conn *c = calloc(1, sizeof *c); /* 64 KiB frames: build on the heap */
    if (c == NULL) {
      px_tcp_close(self->acc.base.output.ptr);
      continue;
    }
    *c = PX_ASYNC_NEW(conn, .s = self->acc.base.output.ptr);
    if (px_spawn(PX_FUTURE(c), NULL) < 0) px_tcp_close(c->s);
    free(c);
  }
  PX_END();
}

static int usage(void) {
  fprintf(stderr, "usage: redis PORT [HOST]   (PORT 1..65535, HOST numeric, default 127.0.0.1)\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) return usage();
  char *end;
  long port = strtol(argv[1], &end, 10);
  if (*end != '\0' || port < 1 || port > 65535) return usage();
  const char *host = argc == 3 ? argv[2] : "127.0.0.1";
  px_tcp_listener *l;
  int rc = px_tcp_bind(host, (uint16_t)port, &l);
  if (rc < 0) {
    fprintf(stderr, "redis: bind %s:%ld: %s\n", host, port, px_strerror(rc));
    return 1;
  }
  fprintf(stderr, "redis: listening on %s port %ld (%s)\n", host, port, px_build_info());
  server s = PX_ASYNC_NEW(server, .l = l);
  rc = px_run(PX_FUTURE(&s));
  px_tcp_listener_close(l);
  return rc < 0;
}
