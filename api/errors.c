/* Error names and messages: one table, generated from PX_ERRNO_MAP. */
#include "pollux/errors.h"

const char *px_strerror(int err) {
  switch (err) {
#define PX__ERR_MSG(name, value, msg) \
  case value:                         \
    return msg;
    PX_ERRNO_MAP(PX__ERR_MSG)
#undef PX__ERR_MSG
    case 0:
      return "success";
    default:
      return "unknown error";
  }
}

const char *px_err_name(int err) {
  switch (err) {
#define PX__ERR_NAME(name, value, msg) \
  case value:                          \
    return #name;
    PX_ERRNO_MAP(PX__ERR_NAME)
#undef PX__ERR_NAME
    case 0:
      return "OK";
    default:
      return "UNKNOWN";
  }
}

int px_err_from_errno(int errnum) {
  /* EWOULDBLOCK may equal EAGAIN (Linux) or not (some BSDs); fold it. */
  if (errnum == EWOULDBLOCK) errnum = EAGAIN;
  switch (-errnum) {
#define PX__ERR_KNOWN(name, value, msg) case value:
    PX_ERRNO_MAP(PX__ERR_KNOWN)
#undef PX__ERR_KNOWN
    return -errnum;
    default:
      return PX_EUNKNOWN;
  }
}
