/* Binds libevent as the reactor --//reactors:reactor=libevent selects. */
#include "reactors/reactor.h"

extern const px__reactor_ops px__libevent_ops;
const px__reactor_ops *const px__reactor_default = &px__libevent_ops;
