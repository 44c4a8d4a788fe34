/* Binds select as the reactor --//reactors:reactor=select selects. */
#include "reactors/reactor.h"

extern const px__reactor_ops px__select_ops;
const px__reactor_ops *const px__reactor_default = &px__select_ops;
