// A future whose poll is a C++ lambda, so a test writes its state machine
// inline (tests/combinators_test.cc, tests/timers_test.cc). C++ only.
#ifndef POLLUX_TESTS_FN_FUTURE_H
#define POLLUX_TESTS_FN_FUTURE_H

#include <gtest/gtest.h>

#include <functional>

#include "pollux.h"

namespace px_test {

// The lambda returns PX_READY or PX_PENDING like any poll function.
struct FnFuture {
  px_future base;
  std::function<px_poll(px_context *)> *fn;
};

inline px_poll FnPoll(px_future *self, px_context *cx) {
  return (*reinterpret_cast<FnFuture *>(self)->fn)(cx);
}

inline const px_future_vtable kFnVtable = {sizeof(FnFuture), "fn", FnPoll,
                                           nullptr};

// Runs `fn` as the main future of a fresh runtime, which is freed afterwards
// (dropping any task still alive); returns block_on's result.
inline int RunFn(std::function<px_poll(px_context *)> fn) {
  px_runtime *rt = nullptr;
  EXPECT_EQ(px_runtime_new(&rt, nullptr), 0);
  FnFuture f;
  px_future_init(&f.base, &kFnVtable);
  f.fn = &fn;
  int rc = px_runtime_block_on(rt, &f.base);
  px_runtime_free(rt);
  return rc;
}

}  // namespace px_test

#endif  // POLLUX_TESTS_FN_FUTURE_H
