/*
 * Unix domain stream sockets (pollux/net.h). Only the address differs from
 * TCP: listeners, accept, connect and the streams are tcp.c's and fd_future.c's.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "platform/platform.h"
#include "pollux/net.h"
#include "reactors/fd_future.h"

/* Fills *out with a path address; PX_EINVAL when empty or too long. */
static int unix_addr(const char *path, px_addr *out) {
  memset(out, 0, sizeof(*out));
  struct sockaddr_un *un = (struct sockaddr_un *)&out->storage;
  /* The path and its NUL must fit sun_path (108 bytes on Linux). */
  if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(un->sun_path))
    return PX_EINVAL;
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, path, strlen(path) + 1);
  out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                         strlen(path) + 1);
  return 0;
}

int px_unix_bind(const char *path, px_tcp_listener **out) {
  if (out == NULL) return PX_EINVAL;
  *out = NULL;
  px_addr addr;
  int err = unix_addr(path, &addr);
  if (err < 0) return err;
  int fd = px__socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return px_err_from_errno(errno);
  err = px__listener_new(fd, (struct sockaddr *)&addr.storage, addr.len, out);
  if (err < 0) close(fd);
  return err;
}

px_future *px_unix_connect_init(px_tcp_connect *f, const char *path) {
  px_addr addr;
  int err = unix_addr(path, &addr);
  return px__connect_init(f, &addr, err);
}
