/* Binds the 4-ary heap as the timer --//timers:timer=heap selects. */
#include "timers/timer.h"

extern const px__timer_ops px__heap_ops;
const px__timer_ops *const px__timer_default = &px__heap_ops;
