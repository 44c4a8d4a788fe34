/**
 * @file
 * pollux.h - the whole public API of pollux, an async runtime for C.
 */
#ifndef POLLUX_H
#define POLLUX_H

#include "pollux/version.h"
#include "pollux/errors.h"
#include "pollux/poll.h"
#include "pollux/waker.h"
#include "pollux/context.h"
#include "pollux/future.h"
#include "pollux/async.h"
#include "pollux/task.h"
#include "pollux/runtime.h"
#include "pollux/time.h"
#include "pollux/scope.h"
#include "pollux/stream.h"
#include "pollux/bufio.h"
#include "pollux/net.h"
#include "pollux/tls.h"
#include "pollux/resolve.h"
#include "pollux/sync.h"
#include "pollux/channel.h"
#include "pollux/blocking.h"
#include "pollux/fs.h"
#include "pollux/signal.h"
#include "pollux/process.h"
#include "pollux/observe.h"

#endif /* POLLUX_H */
