/* Binds epoll as the reactor --//reactors:reactor=epoll selects. */
#include "reactors/reactor.h"

extern const px__reactor_ops px__epoll_ops;
const px__reactor_ops *const px__reactor_default = &px__epoll_ops;
