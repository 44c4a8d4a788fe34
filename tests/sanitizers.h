// Which sanitizer a test binary is built with, said once for every suite
// (gcc defines __SANITIZE_*__, clang answers __has_feature): for tests that
// a sanitizer cannot run (ThreadSanitizer does not support threads started
// after a fork of a threaded process) or runs many times slower. 1 or 0.
#ifndef POLLUX_TESTS_SANITIZERS_H
#define POLLUX_TESTS_SANITIZERS_H

#if defined(__SANITIZE_THREAD__)
#define PX_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PX_TEST_TSAN 1
#endif
#endif
#ifndef PX_TEST_TSAN
#define PX_TEST_TSAN 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define PX_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PX_TEST_ASAN 1
#endif
#endif
#ifndef PX_TEST_ASAN
#define PX_TEST_ASAN 0
#endif

#endif  // POLLUX_TESTS_SANITIZERS_H
