/**
 * @file
 * pollux.h - the whole public API of pollux, an async runtime for C.
 *
 * Naming, stated once for every header below:
 *   - px_ and PX_ name the public API; px__ and PX__ are internal (a px__
 *     name in a public header is a private field's type, such as px__list,
 *     never something to call).
 *   - Constructors: px_T_new(&out, ...) allocates an object the caller
 *     owns alone; px_T_init(storage, ...) initialises caller-owned storage
 *     (every future: it returns the px_future to await); a channel's
 *     constructor (px_oneshot_new, px_mpsc_channel, px_mpsc_unbounded,
 *     px_watch_new) makes a pair of handles.
 *   - Release verbs: _free ends an object made by _new (px_runtime_free,
 *     px_mutex_free); _drop lets go of one handle or reference, the thing
 *     itself going with the last (px_future_drop, px_waker_drop, a
 *     channel's sender and receiver, tokio's Drop); _close ends an I/O
 *     object's use of its descriptor, or one direction of a channel.
 *   - "join" waits for several things to finish: px_join, px_join2,
 *     px_join_all (tokio::join!), px_scope_join and px_scope_join_next
 *     (the next of a scope's tasks: tokio's JoinSet::join_next). A
 *     "join handle" (px_join_handle, the task's JOIN_* state bits, the
 *     join_handle_* functions inside) is the one way to await a single
 *     task's end; pthread_join keeps POSIX's meaning.
 *   - "waker" is the handle (px_waker); "wake" is what calling it does
 *     (px_waker_wake), and a wake list or batch holds wakers to call once a
 *     lock is released. Making a blocked thread or reactor poll return is
 *     "unpark" for a runtime thread and "wakeup" for the reactor (its
 *     wakeup entry and the wake-up descriptor pair, px__wakeup_fd), never
 *     "wake" (px__futex_wake keeps the kernel's FUTEX_WAKE).
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
#include "pollux/serve.h"
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
