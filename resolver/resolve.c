/*
 * Host name resolution (pollux/resolve.h): getaddrinfo on the blocking
 * pool, and a connect that tries each address it returns.
 *
 * The lookup's state is shared by the future and the pool thread, each
 * holding one reference: the pool gives its reference back through the
 * owned argument's free function (called exactly once, whether the job ran,
 * was cancelled before it ran, or was abandoned at shutdown), the future
 * when it completes or is dropped. Whoever lets go last frees the state and
 * any addresses nobody took, so a lookup dropped while getaddrinfo runs
 * leaks nothing and blocks nothing.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "api/internal/px_internal.h"
#include "pollux/resolve.h"

#define MAX_HOST 253 /* the longest DNS name, RFC 1035 */

struct px__lookup {
  atomic_int refs;
  uint16_t port;
  int err;        /* getaddrinfo's outcome as a PX_E* code */
  px_addr_list *list; /* owned here until the future takes it */
  char host[MAX_HOST + 1];
};

static size_t list_size(size_t n) {
  return sizeof(px_addr_list) + n * sizeof(px_addr);
}

static px_addr_list *list_new(size_t n) {
  px_addr_list *l = px__alloc(list_size(n));
  if (l != NULL) l->len = n;
  return l;
}

void px_addr_list_free(px_addr_list *l) {
  if (l != NULL) px__free(l, list_size(l->len));
}

static void lookup_release(struct px__lookup *st) {
  if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1)
    return;
  px_addr_list_free(st->list);
  px__free(st, sizeof *st);
}

/* The pool's free function for the owned argument. */
static void lookup_release_job(void *arg) { lookup_release(arg); }

static int err_from_gai(int rc) {
  switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
      return PX_EHOSTNOTFOUND;
    case EAI_AGAIN:
      return PX_EAGAIN;
    case EAI_MEMORY:
      return PX_ENOMEM;
    case EAI_FAMILY:
      return PX_EAFNOSUPPORT;
    case EAI_SYSTEM:
      return px_err_from_errno(errno);
    default:
      return PX_EIO;
  }
}

/* Runs on a pool thread: getaddrinfo, copied into an array of px_addr. */
static int lookup_job(void *arg, px_value *out) {
  struct px__lookup *st = arg;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM; /* one entry per address, not per protocol */
  hints.ai_flags = AI_ADDRCONFIG;  /* no IPv6 answers on an IPv4-only host */
  int rc = getaddrinfo(st->host, NULL, &hints, &res);
  if (rc != 0) {
    st->err = err_from_gai(rc);
    return st->err;
  }
  size_t n = 0;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
    if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
        ai->ai_addrlen <= sizeof(struct sockaddr_storage))
      n++;
  if (n == 0) {
    freeaddrinfo(res);
    st->err = PX_EHOSTNOTFOUND;
    return st->err;
  }
  px_addr_list *l = list_new(n);
  if (l == NULL) {
    freeaddrinfo(res);
    st->err = PX_ENOMEM;
    return st->err;
  }
  px_addr *addrs = l->addrs;
  size_t i = 0;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    if (!((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
          ai->ai_addrlen <= sizeof(struct sockaddr_storage)))
      continue;
    memset(&addrs[i], 0, sizeof addrs[i]);
    memcpy(&addrs[i].storage, ai->ai_addr, ai->ai_addrlen);
    addrs[i].len = ai->ai_addrlen;
    if (ai->ai_family == AF_INET)
      ((struct sockaddr_in *)&addrs[i].storage)->sin_port = htons(st->port);
    else
      ((struct sockaddr_in6 *)&addrs[i].storage)->sin6_port = htons(st->port);
    i++;
  }
  freeaddrinfo(res);
  st->list = l;
  st->err = 0;
  *out = px_u64(n);
  return 0;
}

/* ---- px_lookup_host --------------------------------------------------- */

/* Hands the list to the caller (output.ptr), or the error. */
static px_poll lookup_complete(px_lookup_host *f, px_addr_list *l, int err) {
  f->base.error = err;
  f->base.output = px_ptr(err < 0 ? NULL : l);
  return PX_READY;
}

static px_poll lookup_poll(px_future *self, px_context *cx) {
  px_lookup_host *f = (px_lookup_host *)self;
  if (f->err < 0) return lookup_complete(f, NULL, f->err);
  if (f->numeric != NULL) { /* answered at init */
    px_addr_list *l = f->numeric;
    f->numeric = NULL;
    return lookup_complete(f, l, 0);
  }
  int rc = px_future_poll(&f->job.base, cx);
  if (rc == PX_PENDING) return PX_PENDING;
  struct px__lookup *st = f->state;
  int err = rc < 0 ? rc : f->job.base.error;
  px_addr_list *l = NULL;
  if (err == 0) {
    /* The pool is done with the state (fn returned before the job's
     * future completed): the list is ours to take. */
    l = st->list;
    st->list = NULL;
  }
  f->state = NULL;
  lookup_release(st);
  return lookup_complete(f, l, err);
}

static void lookup_drop(px_future *self) {
  px_lookup_host *f = (px_lookup_host *)self;
  /* The job first: if its fn still runs, the pool keeps its reference to
   * the state and frees it (and whatever it found) when fn returns. */
  px_future_drop(&f->job.base);
  if (f->state != NULL) lookup_release(f->state);
  f->state = NULL;
  px_addr_list_free(f->numeric); /* never polled: nobody took it */
  f->numeric = NULL;
}

static const px_future_vtable lookup_vtable = {
    sizeof(px_lookup_host), "lookup_host", lookup_poll, lookup_drop};

px_future *px_lookup_host_init(px_lookup_host *f, const char *host,
                               uint16_t port) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &lookup_vtable);
  f->numeric = NULL;
  f->state = NULL;
  f->err = 0;
  /* An empty job, so that drop is always safe; replaced below. */
  px_spawn_blocking_owned_init(&f->job, lookup_job, NULL, NULL);
  if (host == NULL || host[0] == '\0' || strlen(host) > MAX_HOST) {
    f->err = PX_EINVAL;
    return &f->base;
  }
  /* A numeric address needs no resolver, and no thread. */
  px_addr a;
  if (px_addr_parse(host, port, &a) == 0) {
    f->numeric = list_new(1);
    if (f->numeric == NULL)
      f->err = PX_ENOMEM;
    else
      f->numeric->addrs[0] = a;
    return &f->base;
  }
  struct px__lookup *st = px__calloc(sizeof *st);
  if (st == NULL) {
    f->err = PX_ENOMEM;
    return &f->base;
  }
  atomic_init(&st->refs, 2); /* the future's and the job's */
  st->port = port;
  memcpy(st->host, host, strlen(host) + 1);
  f->state = st;
  px_spawn_blocking_owned_init(&f->job, lookup_job, st, lookup_release_job);
  return &f->base;
}

/* ---- px_tcp_connect_host ---------------------------------------------- */

static px_poll connect_host_poll(px_future *self, px_context *cx) {
  px_tcp_connect_host *f = (px_tcp_connect_host *)self;
  if (f->phase == 0) {
    int rc = px_future_poll(&f->lookup.base, cx);
    if (rc == PX_PENDING) return PX_PENDING;
    int err = rc < 0 ? rc : f->lookup.base.error;
    if (err < 0) {
      self->error = err;
      return PX_READY;
    }
    f->phase = 1;
    f->next = 0;
    f->addrs = f->lookup.base.output.ptr;
    px_tcp_connect_addr_init(&f->connect, &f->addrs->addrs[f->next++]);
  }
  for (;;) {
    int rc = px_future_poll(&f->connect.base, cx);
    if (rc == PX_PENDING) return PX_PENDING;
    int err = rc < 0 ? rc : f->connect.base.error;
    if (err == 0) {
      self->output = f->connect.base.output;
      px_addr_list_free(f->addrs);
      f->addrs = NULL;
      return PX_READY;
    }
    /* This address refused or could not be reached: the next one. */
    px_future_drop(&f->connect.base);
    if (f->next >= f->addrs->len) {
      self->error = err;
      px_addr_list_free(f->addrs);
      f->addrs = NULL;
      return PX_READY;
    }
    px_tcp_connect_addr_init(&f->connect, &f->addrs->addrs[f->next++]);
  }
}

static void connect_host_drop(px_future *self) {
  px_tcp_connect_host *f = (px_tcp_connect_host *)self;
  if (f->phase == 1) px_future_drop(&f->connect.base);
  px_future_drop(&f->lookup.base);
  px_addr_list_free(f->addrs);
  f->addrs = NULL;
}

static const px_future_vtable connect_host_vtable = {
    sizeof(px_tcp_connect_host), "tcp_connect_host", connect_host_poll,
    connect_host_drop};

px_future *px_tcp_connect_host_init(px_tcp_connect_host *f, const char *host,
                                    uint16_t port) {
  if (f == NULL) return NULL;
  px_future_init(&f->base, &connect_host_vtable);
  f->next = 0;
  f->phase = 0;
  f->addrs = NULL;
  px_lookup_host_init(&f->lookup, host, port);
  return &f->base;
}
