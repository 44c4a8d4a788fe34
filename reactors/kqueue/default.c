/* Binds kqueue as the reactor --//reactors:reactor=kqueue selects. */
#include "reactors/reactor.h"

extern const px__reactor_ops px__kqueue_ops;
const px__reactor_ops *const px__reactor_default = &px__kqueue_ops;
