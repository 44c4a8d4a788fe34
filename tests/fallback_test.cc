// The reactor's fallback as a program meets it: where the kernel refuses
// io_uring (a seccomp filter, as container runtimes install; the sysctl
// kernel.io_uring_disabled), px_runtime_new still makes a runtime, on
// epoll, and px_runtime_reactor says so. Each case runs in a child process
// under a seccomp filter that answers io_uring_setup with an error, since
// a filter cannot be removed once installed.
//
// The same checks hold on every build: one whose reactor is not io_uring
// never calls io_uring_setup, so the filter changes nothing there.

#include <gtest/gtest.h>

// Linux only: io_uring, its epoll fallback and seccomp are Linux's; on BSD
// and macOS (kqueue) there is nothing to fall back from, and the headers
// below do not exist.
#ifdef __linux__
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "platform/platform.h"
#include "pollux.h"
#include "tests/support.h"

namespace {

// The reactor named in px_build_info ("executor=E reactor=R timer=T").
std::string built_reactor() {
  std::string info = px_build_info();
  size_t at = info.find("reactor=") + std::strlen("reactor=");
  return info.substr(at, info.find(' ', at) - at);
}

// What a runtime made where io_uring is refused runs on.
std::string expected_reactor() {
  std::string r = built_reactor();
  return r == "io_uring" ? "epoll" : r;
}

// From here on io_uring_setup fails with `err` in this process. Only that
// call is filtered: the test runs on x86-64 and arm64 Linux, whose system
// call numbers the filter compares without checking the architecture.
int refuse_io_uring(int err) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K,
               SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
  // Without privileges a filter needs no_new_privs first.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

// The child's work; its exit status says which step failed.
enum Step { kOk, kFilter, kProbe, kNew, kName, kPair, kWrite, kRead, kBytes };

int child(int err) {
  if (refuse_io_uring(err) != 0) return kFilter;
  // The filter holds: the call the io_uring reactor makes first now fails.
  unsigned char params[256] = {0};  // a struct io_uring_params and more
  errno = 0;
  if (syscall(__NR_io_uring_setup, 1, params) != -1 || errno != err)
    return kProbe;
  px_runtime *rt = nullptr;
  if (px_runtime_new(&rt, nullptr) != 0) return kNew;
  int step = kOk;
  int sv[2];
  px_stream *a = nullptr, *b = nullptr;
  if (px_runtime_reactor(rt) != expected_reactor()) {
    step = kName;
  } else if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 ||
             px_fd_wrap(sv[0], &a) != 0 || px_fd_wrap(sv[1], &b) != 0) {
    step = kPair;
  } else {
    // Bytes through the fallback: a write, then a read of them.
    px_tcp_io w, r;
    char got[8] = {0};
    if (px_runtime_block_on(rt, px_tcp_write_all_init(&w, a, "pollux", 6)) !=
        0)
      step = kWrite;
    else if (px_runtime_block_on(rt, px_tcp_read_init(&r, b, got, 6)) != 0)
      step = kRead;
    else if (r.base.output.u64 != 6 || std::memcmp(got, "pollux", 6) != 0)
      step = kBytes;
  }
  if (a != nullptr) px_tcp_close(a);
  if (b != nullptr) px_tcp_close(b);
  px_runtime_free(rt);
  return step;
}

// Runs child(err) in a fresh process and returns its exit status.
int in_child(int err) {
  pid_t pid = fork();
  if (pid == 0) _exit(child(err));
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

const char *step_name(int s) {
  static const char *names[] = {
      "ok",           "seccomp filter refused", "filter not in force",
      "px_runtime_new failed", "wrong reactor name", "socketpair or wrap",
      "write failed", "read failed", "wrong bytes"};
  return s >= 0 && s <= kBytes ? names[s] : "killed or lost";
}

TEST(Fallback, SeccompDenyingIoUringWithENOSYSFallsBackToEpoll) {
  int s = in_child(ENOSYS);
  EXPECT_EQ(s, kOk) << step_name(s) << " (built: " << px_build_info() << ")";
}

TEST(Fallback, IoUringDisabledWithEPERMFallsBackToEpoll) {
  int s = in_child(EPERM);
  EXPECT_EQ(s, kOk) << step_name(s) << " (built: " << px_build_info() << ")";
}

TEST(Fallback, AnUnfilteredRuntimeRunsOnTheReactorBuiltIn) {
  px_runtime *rt = nullptr;
  ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
  // Except io_uring under valgrind, which cannot run it (ur_create).
  EXPECT_EQ(px_runtime_reactor(rt),
            PX__ON_VALGRIND ? expected_reactor() : built_reactor());
  EXPECT_TRUE(runs_on(rt, px_runtime_reactor(rt)));
  px_runtime_free(rt);
  EXPECT_EQ(px_runtime_reactor(nullptr), nullptr);
}

}  // namespace
#else
TEST(Fallback, LinuxOnly) { GTEST_SKIP() << "io_uring's fallback is Linux's"; }
#endif
