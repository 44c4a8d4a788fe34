/*
 * User code built beside the demo in every consumer test. It has what
 * pollux's own -Wall -Wextra -Werror would reject (an unused variable and
 * parameter), so a consumer build that imposed pollux's warning flags on
 * the user's code fails here.
 */
#include <pollux.h>

int user_code(int unused_parameter);

int user_code(int unused_parameter) {
  int unused_variable;
  return PX_VERSION_MAJOR >= 0 ? 0 : 1;
}
