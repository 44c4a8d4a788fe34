/* Binds the priority executor as px__executor_default (--config=priority). */
#include "executors/executor.h"

extern const px__executor_ops px__priority_ops;
const px__executor_ops *const px__executor_default = &px__priority_ops;
