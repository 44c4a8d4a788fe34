/* Binds the FIFO executor as the one --//executors:executor=fifo selects. */
#include "executors/executor.h"

extern const px__executor_ops px__fifo_ops;
const px__executor_ops *const px__executor_default = &px__fifo_ops;
