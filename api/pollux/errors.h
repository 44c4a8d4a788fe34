/**
 * @file
 * pollux/errors.h - error codes.
 *
 * Every pollux function that can fail returns a negative PX_E* code (0 or a
 * non-negative value means success), the convention libuv uses. Codes that
 * mirror an operating-system error are the negated errno value, so a failed
 * read() surfaces as -errno without translation; codes that only pollux can
 * produce live in a range no errno uses. Every code has a name
 * (px_err_name) and a message (px_strerror).
 */
#ifndef POLLUX_ERRORS_H
#define POLLUX_ERRORS_H

/** @addtogroup runtime
 * @{
 */

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The X-macro list of every code: XX(NAME, value, message). It is public so
 * that bindings and tests can iterate over all codes.
 */
#define PX_ERRNO_MAP(XX)                                                      \
  XX(EINVAL, -EINVAL, "invalid argument")                                     \
  XX(ENOMEM, -ENOMEM, "out of memory")                                        \
  XX(ECANCELED, -ECANCELED, "operation canceled")                             \
  XX(ETIMEDOUT, -ETIMEDOUT, "operation timed out")                            \
  XX(ESHUTDOWN, -ESHUTDOWN, "runtime is shut down")                           \
  XX(EBUSY, -EBUSY, "resource busy")                                          \
  XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                     \
  XX(EINTR, -EINTR, "interrupted system call")                                \
  XX(EBADF, -EBADF, "bad file descriptor")                                    \
  XX(EMFILE, -EMFILE, "too many open files")                                  \
  XX(ENFILE, -ENFILE, "file table overflow")                                  \
  XX(EPIPE, -EPIPE, "broken pipe")                                            \
  XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                     \
  XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                       \
  XX(ECONNABORTED, -ECONNABORTED, "software caused connection abort")         \
  XX(ENOTCONN, -ENOTCONN, "socket is not connected")                          \
  XX(EADDRINUSE, -EADDRINUSE, "address already in use")                       \
  XX(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available")                  \
  XX(EAFNOSUPPORT, -EAFNOSUPPORT, "address family not supported")             \
  XX(ENETUNREACH, -ENETUNREACH, "network is unreachable")                     \
  XX(EHOSTUNREACH, -EHOSTUNREACH, "host is unreachable")                      \
  XX(EACCES, -EACCES, "permission denied")                                    \
  XX(EPERM, -EPERM, "operation not permitted")                                \
  XX(ENOENT, -ENOENT, "no such file or directory")                            \
  XX(ENOSYS, -ENOSYS, "function not implemented")                             \
  XX(ENOTSUP, -ENOTSUP, "operation not supported")                            \
  XX(ERANGE, -ERANGE, "result out of range")                                  \
  XX(EIO, -EIO, "i/o error")                                                  \
  XX(EPROTO, -EPROTO, "protocol error")                                       \
  XX(EMSGSIZE, -EMSGSIZE, "message too long")                                 \
  XX(ECHILD, -ECHILD, "no child processes")                                   \
  XX(ENOTDIR, -ENOTDIR, "not a directory")                                    \
  XX(ENOEXEC, -ENOEXEC, "exec format error")                                  \
  XX(ENOBUFS, -ENOBUFS, "no buffer space available")                          \
  XX(EDONE, -4001, "future already completed or dropped")                     \
  XX(ENORUNTIME, -4002, "called outside a pollux runtime")                    \
  XX(ECLOSED, -4003, "channel closed")                                        \
  XX(EMISUSE, -4004, "API misused (the log says how)")                        \
  XX(EHOSTNOTFOUND, -4010, "host name not found")                             \
  XX(ECERT, -4020, "certificate verification failed")                         \
  XX(EOF, -4095, "end of file")                                               \
  XX(EUNKNOWN, -4094, "unknown error")

/** The codes as an enum: PX_EINVAL, PX_ENOMEM, ... */
typedef enum px_errno {
#define PX__ERR_ENUM(name, value, msg) PX_##name = (value),
  PX_ERRNO_MAP(PX__ERR_ENUM)
#undef PX__ERR_ENUM
  PX_ERRNO_MAX_ = -4096
} px_errno;

/**
 * The message for a code: "invalid argument" for PX_EINVAL. Never NULL; an
 * unknown code gets "unknown error". The string is static: do not free it.
 */
const char *px_strerror(int err);

/** The code's name, "EINVAL" for PX_EINVAL; "UNKNOWN" for unknown codes. */
const char *px_err_name(int err);

/**
 * Translates an errno value (positive, as errno holds it) into a PX_E* code.
 * Values pollux does not list become PX_EUNKNOWN rather than a code with no
 * message.
 */
int px_err_from_errno(int errnum);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_ERRORS_H */
