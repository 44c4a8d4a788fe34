/* Binds io_uring as the reactor --//reactors:reactor=io_uring selects. */
#include "reactors/reactor.h"

extern const px__reactor_ops px__io_uring_ops;
const px__reactor_ops *const px__reactor_default = &px__io_uring_ops;
