/* Binds poll as the reactor --//reactors:reactor=poll selects. */
#include "reactors/reactor.h"

extern const px__reactor_ops px__poll_ops;
const px__reactor_ops *const px__reactor_default = &px__poll_ops;
