/* Binds the work-stealing executor as the one --//executors:executor=work_stealing selects. */
#include "executors/executor.h"

extern const px__executor_ops px__ws_ops;
const px__executor_ops *const px__executor_default = &px__ws_ops;
