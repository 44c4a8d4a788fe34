/* Binds the timing wheel as the timer --//timers:timer=wheel selects. */
#include "timers/timer.h"

extern const px__timer_ops px__wheel_ops;
const px__timer_ops *const px__timer_default = &px__wheel_ops;
