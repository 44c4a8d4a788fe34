// Child processes (pollux/process.h): output capture, exit codes and
// signals, a child that reads and writes more than a pipe holds at once,
// a thousand short children, kill, drop with and without kill_on_drop,
// environment and working directory, and every error of the spawn.
//
// Every test runs twice: with children reaped through a pidfd on the
// reactor, and through the portable SIGCHLD reaper thread. The counting
// allocator and a count of open descriptors check that nothing is left
// behind.

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "pollux.h"
#include "process/process_internal.h"
#include "tests/process_support.h"
#include "tests/support.h"

namespace {

int OpenFds() {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (readdir(d) != nullptr) n++;
  closedir(d);
  return n - 3;
}

// True once no process `pid` exists any more, not even a zombie: it was
// reaped. Gives up after 10 s.
bool GoneWithin10s(pid_t pid) {
  for (int i = 0; i < 1000; i++) {
    if (kill(pid, 0) < 0 && errno == ESRCH) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string TmpDir() {
  const char *d = getenv("TEST_TMPDIR");
  return d != nullptr ? d : "/tmp";
}

class ProcessTest : public ::testing::TestWithParam<int> {
 protected:
  // The SIGCHLD reaper keeps a self-pipe open for the life of the process
  // once started: start it before the tests count descriptors.
  static void SetUpTestSuite() {
    px__process_set_reaper(PX__REAPER_SIGCHLD);
    px_command cmd = PX_COMMAND_INIT;
    cmd.program = "/bin/true";
    px_child *c;
    ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
    px_child_close(c);  // reaped in the background
  }

  void SetUp() override {
    px__process_set_reaper(GetParam());
    counting_allocator_install();
    fds_before_ = OpenFds();
    ASSERT_EQ(px_runtime_new(&rt_, nullptr), 0);
  }

  void TearDown() override {
    px_runtime_free(rt_);
    EXPECT_EQ(g_alloc.live_bytes.load(), 0) << "pollux leaked memory";
    // The reaper thread closes an orphan's pidfd just after reaping it,
    // which the orphan tests only see as the pid's end.
    for (int i = 0; i < 200 && OpenFds() != fds_before_; i++)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(OpenFds(), fds_before_) << "a descriptor was left open";
    counting_allocator_remove();
  }

  int Run(px_future *f) { return px_runtime_block_on(rt_, f); }

  // Waits for c; returns the status (or the error, negative and < -255).
  int64_t Wait(px_child *c) {
    px_child_wait w;
    int err = Run(px_child_wait_init(&w, c));
    return err < 0 ? err - 1000 : w.base.output.i64;
  }

  // Runs argv with stdout piped; returns its output, the status in *status.
  std::string Output(std::vector<const char *> argv, int64_t *status,
                     const char *const *env = nullptr,
                     const char *cwd = nullptr) {
    argv.push_back(nullptr);
    px_command cmd = PX_COMMAND_INIT;
    cmd.program = argv[0];
    cmd.argv = argv.data();
    cmd.env = env;
    cmd.cwd = cwd;
    cmd.stdio[1] = PX_STDIO_PIPE;
    px_child *c = nullptr;
    int err = px_process_spawn(&cmd, &c);
    EXPECT_EQ(err, 0) << px_strerror(err);
    if (err < 0) return "";
    char buf[4096];
    read_to_end r;
    EXPECT_EQ(Run(read_to_end_new(&r, px_child_stdio(c, 1), buf, sizeof buf)),
              0);
    *status = Wait(c);
    px_child_close(c);
    return std::string(buf, r.len);
  }

  int fds_before_ = 0;
  px_runtime *rt_ = nullptr;
};

TEST_P(ProcessTest, CapturesStdoutAndTheExitCode) {
  int64_t status = -1;
  EXPECT_EQ(Output({"/bin/echo", "hello", "world"}, &status), "hello world\n");
  EXPECT_EQ(status, 0);
  // A bare name is looked up in PATH.
  EXPECT_EQ(Output({"sh", "-c", "printf abc; exit 3"}, &status), "abc");
  EXPECT_EQ(status, 3);
  EXPECT_EQ(Output({"false"}, &status), "");
  EXPECT_EQ(status, 1);
  EXPECT_EQ(Output({"sh", "-c", "exit 255"}, &status), "");
  EXPECT_EQ(status, 255);
}

TEST_P(ProcessTest, StdoutAndStderrAreSeparateStreams) {
  const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 4", nullptr};
  px_command cmd = PX_COMMAND_INIT;
  cmd.program = "sh";
  cmd.argv = argv;
  cmd.stdio[1] = PX_STDIO_PIPE;
  cmd.stdio[2] = PX_STDIO_PIPE;
  px_child *c;
  ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
  EXPECT_EQ(px_child_stdio(c, 0), nullptr);  // inherited: no stream
  char out[64], err[64];
  read_to_end ro, re;
  px_future *both[] = {read_to_end_new(&ro, px_child_stdio(c, 1), out, 64),
                       read_to_end_new(&re, px_child_stdio(c, 2), err, 64)};
  px_join j;
  EXPECT_EQ(Run(px_join_init(&j, both, 2, nullptr)), 0);
  EXPECT_EQ(std::string(out, ro.len), "out\n");
  EXPECT_EQ(std::string(err, re.len), "err\n");
  EXPECT_EQ(Wait(c), 4);
  px_child_close(c);
}

TEST_P(ProcessTest, ASignalEndsTheWaitWithMinusItsNumber) {
  int64_t status = 0;
  Output({"sh", "-c", "kill -TERM $$"}, &status);
  EXPECT_EQ(status, -SIGTERM);
}

TEST_P(ProcessTest, KillAndTryWait) {
  px_command cmd = PX_COMMAND_INIT;
  const char *argv[] = {"sleep", "30", nullptr};
  cmd.program = "sleep";
  cmd.argv = argv;
  px_child *c;
  ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
  EXPECT_GT(px_child_pid(c), 0);
  int64_t status = 12345;
  EXPECT_EQ(px_child_try_wait(c, &status), 0);  // still running
  EXPECT_EQ(status, 12345);
  // A wait cut short by a timeout is dropped; the child is unaffected.
  px_child_wait w;
  px_timeout to;
  EXPECT_EQ(Run(px_timeout_init(&to, px_child_wait_init(&w, c), px_ms(50))),
            PX_ETIMEDOUT);
  EXPECT_EQ(px_child_try_wait(c, &status), 0);
  EXPECT_EQ(px_child_kill(c, SIGKILL), 0);
  EXPECT_EQ(Wait(c), -SIGKILL);
  EXPECT_EQ(px_child_try_wait(c, &status), 1);
  EXPECT_EQ(status, -SIGKILL);
  EXPECT_EQ(Wait(c), -SIGKILL);  // the status is kept
  // Nothing left to signal, and its pid may belong to someone else now.
  EXPECT_EQ(px_child_kill(c, SIGTERM), 0);
  px_child_close(c);
}

TEST_P(ProcessTest, ChildrenStartWithNoSignalBlockedOrIgnored) {
  // The parent blocks SIGTERM (as a px_signal would) and ignores SIGINT;
  // the child must still die of both.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  struct sigaction ign = {}, old_int;
  ign.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ign, &old_int);
  for (int sig : {SIGTERM, SIGINT}) {
    px_command cmd = PX_COMMAND_INIT;
    const char *argv[] = {"sleep", "30", nullptr};
    cmd.program = "sleep";
    cmd.argv = argv;
    px_child *c;
    ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
    EXPECT_EQ(px_child_kill(c, sig), 0);
    EXPECT_EQ(Wait(c), -sig);
    px_child_close(c);
  }
  sigaction(SIGINT, &old_int, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// cat echoes 4 MiB, far more than a pipe holds (64 KiB): writing it all
// before reading would deadlock, so the write and the read run at once.
TEST_P(ProcessTest, MoreThanAPipeBufferBothWaysAtOnce) {
  const size_t n = 4 << 20;
  std::string in(n, '\0');
  for (size_t i = 0; i < n; i++) in[i] = static_cast<char>('a' + i * 7 % 26);
  std::vector<char> out(n + 1);
  px_command cmd = PX_COMMAND_INIT;
  cmd.program = "cat";
  cmd.stdio[0] = PX_STDIO_PIPE;
  cmd.stdio[1] = PX_STDIO_PIPE;
  px_child *c;
  ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
  px_stream *stdin_ = px_child_take_stdio(c, 0);
  ASSERT_NE(stdin_, nullptr);
  EXPECT_EQ(px_child_stdio(c, 0), nullptr);  // taken
  EXPECT_EQ(px_child_take_stdio(c, 0), nullptr);
  write_and_close w;
  read_to_end r;
  px_future *both[] = {write_and_close_new(&w, stdin_, in.data(), n),
                       read_to_end_new(&r, px_child_stdio(c, 1), out.data(),
                                       out.size())};
  px_join j;
  EXPECT_EQ(Run(px_join_init(&j, both, 2, nullptr)), 0);
  EXPECT_EQ(w.px.base.error, 0);
  EXPECT_EQ(r.px.base.error, 0);
  ASSERT_EQ(r.len, n);
  EXPECT_TRUE(memcmp(out.data(), in.data(), n) == 0);
  EXPECT_EQ(Wait(c), 0);
  px_child_close(c);
}

TEST_P(ProcessTest, AThousandShortChildren) {
  px_command cmd = PX_COMMAND_INIT;
  cmd.program = "/bin/true";
  cmd.stdio[0] = PX_STDIO_NULL;
  many_children m;
  EXPECT_EQ(Run(many_children_new(&m, &cmd, 1000, 16)), 0);
  EXPECT_EQ(m.px.base.output.i64, 1000);
}

TEST_P(ProcessTest, ManyChildrenFromSeveralThreadsAndRuntimes) {
  // Runtimes on other threads spawn and wait at the same time: each wait
  // must get its own child's status, whatever reaps.
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < 3; t++) {
    ts.emplace_back([&ok, t] {
      px_runtime *rt;
      if (px_runtime_new(&rt, nullptr) != 0) return;
      char code[32];
      snprintf(code, sizeof code, "exit %d", t + 5);
      const char *argv[] = {"sh", "-c", code, nullptr};
      for (int i = 0; i < 20; i++) {
        px_command cmd = PX_COMMAND_INIT;
        cmd.program = "/bin/sh";
        cmd.argv = argv;
        px_child *c;
        if (px_process_spawn(&cmd, &c) != 0) continue;
        px_child_wait w;
        if (px_runtime_block_on(rt, px_child_wait_init(&w, c)) == 0 &&
            w.base.output.i64 == t + 5)
          ok++;
        px_child_close(c);
      }
      px_runtime_free(rt);
    });
  }
  for (auto &t : ts) t.join();
  EXPECT_EQ(ok.load(), 60);
}

TEST_P(ProcessTest, CloseWithKillOnDropKillsAndReaps) {
  px_command cmd = PX_COMMAND_INIT;
  const char *argv[] = {"sleep", "30", nullptr};
  cmd.program = "sleep";
  cmd.argv = argv;
  cmd.kill_on_drop = true;
  cmd.stdio[1] = PX_STDIO_PIPE;  // closed with the handle
  px_child *c;
  ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
  pid_t pid = px_child_pid(c);
  px_child_close(c);
  EXPECT_TRUE(GoneWithin10s(pid)) << "killed and reaped, not a zombie";
}

TEST_P(ProcessTest, CloseWithoutKillOnDropDetaches) {
  // The child outlives its handle: it gets to write its line into the
  // stdout stream taken before the close, then is reaped in the background.
  px_command cmd = PX_COMMAND_INIT;
  const char *argv[] = {"sh", "-c", "sleep 0.3; echo finished", nullptr};
  cmd.program = "sh";
  cmd.argv = argv;
  cmd.stdio[1] = PX_STDIO_PIPE;
  px_child *c;
  ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
  px_stream *out = px_child_take_stdio(c, 1);
  pid_t pid = px_child_pid(c);
  px_child_close(c);
  EXPECT_EQ(kill(pid, 0), 0) << "still running after the close";
  char buf[64];
  read_to_end r;
  EXPECT_EQ(Run(read_to_end_new(&r, out, buf, sizeof buf)), 0);
  EXPECT_EQ(std::string(buf, r.len), "finished\n");
  px_stream_close(out);
  EXPECT_TRUE(GoneWithin10s(pid)) << "reaped in the background";
}

TEST_P(ProcessTest, EnvironmentAndWorkingDirectory) {
  int64_t status = -1;
  const char *env[] = {"PX_ONE=1", "PX_TWO=two words", nullptr};
  EXPECT_EQ(Output({"/bin/sh", "-c", "echo \"$PX_ONE|$PX_TWO|$HOME\"; pwd"},
                   &status, env, "/"),
            "1|two words|\n/\n");
  EXPECT_EQ(status, 0);
  // Without env, the parent's environment is inherited.
  setenv("PX_PROCESS_TEST_VAR", "inherited", 1);
  EXPECT_EQ(Output({"sh", "-c", "echo $PX_PROCESS_TEST_VAR"}, &status),
            "inherited\n");
  unsetenv("PX_PROCESS_TEST_VAR");
}

TEST_P(ProcessTest, NullStdio) {
  int64_t status = -1;
  px_command cmd = PX_COMMAND_INIT;
  const char *argv[] = {"sh", "-c", "cat; echo gone; echo gone >&2", nullptr};
  cmd.program = "sh";
  cmd.argv = argv;
  for (int i = 0; i < 3; i++) cmd.stdio[i] = PX_STDIO_NULL;
  px_child *c;
  ASSERT_EQ(px_process_spawn(&cmd, &c), 0);  // cat reads EOF at once
  for (int i = 0; i < 3; i++) EXPECT_EQ(px_child_stdio(c, i), nullptr);
  EXPECT_EQ(Wait(c), 0);
  px_child_close(c);
  EXPECT_EQ(Output({"cat"}, &status), "");  // stdin inherited: not read here
}

TEST_P(ProcessTest, SpawnErrorsComeFromTheSpawn) {
  px_child *c = reinterpret_cast<px_child *>(0x1);
  px_command cmd = PX_COMMAND_INIT;
  EXPECT_EQ(px_process_spawn(nullptr, &c), PX_EINVAL);
  EXPECT_EQ(c, nullptr);
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_EINVAL);  // no program
  cmd.program = "";
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_EINVAL);
  cmd.program = "/bin/true";
  EXPECT_EQ(px_process_spawn(&cmd, nullptr), PX_EINVAL);
  cmd.stdio[1] = static_cast<px_stdio>(7);
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_EINVAL);
  cmd.stdio[1] = PX_STDIO_PIPE;
  const char *empty[] = {nullptr};
  cmd.argv = empty;
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_EINVAL);
  cmd.argv = nullptr;

  // No such program: by path and by name. The pipe asked for is closed.
  cmd.program = "/nonexistent/program";
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_ENOENT);
  cmd.program = "px-no-such-program";
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_ENOENT);

  // Not executable, and not a format the kernel runs.
  std::string plain = TmpDir() + "/px_plain_file";
  int fd = open(plain.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "\x01\x02garbage", 9), 9);
  close(fd);
  cmd.program = plain.c_str();
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_EACCES);
  chmod(plain.c_str(), 0755);
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_ENOEXEC);
  std::string dir = TmpDir();
  cmd.program = dir.c_str();  // a directory
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_EACCES);

  // A bad working directory.
  cmd.program = "/bin/true";
  cmd.cwd = "/nonexistent/dir";
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_ENOENT);
  cmd.cwd = plain.c_str();
  EXPECT_EQ(px_process_spawn(&cmd, &c), PX_ENOTDIR);
  unlink(plain.c_str());
  EXPECT_EQ(c, nullptr);
}

TEST_P(ProcessTest, BadArgumentsToTheOtherCalls) {
  px_command cmd = PX_COMMAND_INIT;
  cmd.program = "/bin/true";
  cmd.stdio[2] = PX_STDIO_PIPE;
  px_child *c;
  ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
  EXPECT_EQ(px_child_pid(nullptr), PX_EINVAL);
  EXPECT_EQ(px_child_stdio(nullptr, 1), nullptr);
  EXPECT_EQ(px_child_stdio(c, -1), nullptr);
  EXPECT_EQ(px_child_stdio(c, 3), nullptr);
  EXPECT_NE(px_child_stdio(c, 2), nullptr);
  EXPECT_EQ(px_child_take_stdio(c, 3), nullptr);
  EXPECT_EQ(px_child_wait_init(nullptr, c), nullptr);
  int64_t status;
  EXPECT_EQ(px_child_try_wait(nullptr, &status), PX_EINVAL);
  EXPECT_EQ(px_child_try_wait(c, nullptr), PX_EINVAL);
  EXPECT_EQ(px_child_kill(nullptr, SIGTERM), PX_EINVAL);
  EXPECT_EQ(px_child_kill(c, 0), PX_EINVAL);
  EXPECT_EQ(px_child_kill(c, 100000), PX_EINVAL);
  px_child_wait w;
  EXPECT_EQ(Run(px_child_wait_init(&w, nullptr)), PX_EINVAL);
  // A wait polled outside any runtime has no reactor to wait on.
  px_waker noop = px_waker_noop();
  px_context cx = {&noop, nullptr};
  px_child_wait_init(&w, c);
  EXPECT_EQ(px_future_poll(&w.base, &cx), PX_READY);
  EXPECT_EQ(w.base.error, PX_ENORUNTIME);
  px_future_drop(&w.base);
  EXPECT_EQ(Wait(c), 0);
  px_child_close(c);
  px_child_close(nullptr);
}

TEST_P(ProcessTest, AWaitFromASecondRuntime) {
  // The pidfd is registered with the runtime that waited first; another
  // runtime's wait is refused (PX_EBUSY) instead of waiting on a reactor
  // that never hears of it. The SIGCHLD path (also where pidfd_open is
  // missing, as under valgrind) has no registration: that wait just waits.
  px_command cmd = PX_COMMAND_INIT;
  const char *argv[] = {"sleep", "30", nullptr};
  cmd.program = "sleep";
  cmd.argv = argv;
  px_child *c;
  ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
  px_child_wait w;
  px_timeout to;
  EXPECT_EQ(Run(px_timeout_init(&to, px_child_wait_init(&w, c), px_ms(20))),
            PX_ETIMEDOUT);
  px_runtime *other;
  ASSERT_EQ(px_runtime_new(&other, nullptr), 0);
  int err = px_runtime_block_on(
      other, px_timeout_init(&to, px_child_wait_init(&w, c), px_ms(20)));
  if (GetParam() == PX__REAPER_PIDFD && err != PX_ETIMEDOUT)
    EXPECT_EQ(err, PX_EBUSY);
  else
    EXPECT_EQ(err, PX_ETIMEDOUT);
  px_runtime_free(other);
  EXPECT_EQ(px_child_kill(c, SIGKILL), 0);
  EXPECT_EQ(Wait(c), -SIGKILL);
  px_child_close(c);
}

TEST_P(ProcessTest, AChildReapedBehindOurBackIsEchild) {
  // Something else in the process (a waitpid of its own) takes the status:
  // the wait reports PX_ECHILD instead of hanging or inventing a status.
  // On the SIGCHLD path our reaper thread may win the race; then the
  // stranger's waitpid is the one that fails, and we have the status.
  px_command cmd = PX_COMMAND_INIT;
  cmd.program = "/bin/true";
  px_child *c;
  ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
  int st;
  pid_t r = waitpid(px_child_pid(c), &st, 0);
  int64_t status = -1;
  if (r == px_child_pid(c)) {
    EXPECT_EQ(px_child_try_wait(c, &status), PX_ECHILD);
    EXPECT_EQ(Wait(c), PX_ECHILD - 1000);
  } else {
    EXPECT_EQ(errno, ECHILD);
    EXPECT_EQ(Wait(c), 0);
  }
  px_child_close(c);
}

// A child's status is kept, so waiting again is ready at once: a loop of
// such waits must spend the cooperative budget and give way every
// PX__COOP_BUDGET waits, on both reaper paths.
TEST_P(ProcessTest, RepeatedWaitsOfAnExitedChildSpendTheBudget) {
  px_command cmd = PX_COMMAND_INIT;
  cmd.program = "/bin/true";
  px_child *c;
  ASSERT_EQ(px_process_spawn(&cmd, &c), 0);
  EXPECT_EQ(Wait(c), 0);  // exited and reaped: the status is known
  const int n = 2000;
  rewait f;
  px_join_handle j;
  ASSERT_EQ(px_runtime_spawn(rt_, rewait_new(&f, c, n), &j), 0);
  ASSERT_EQ(px_runtime_block_on(rt_, &j.base), 0);
  EXPECT_GE(j.base.output.i64, n / PX__COOP_BUDGET);  // without it: 1 poll
  EXPECT_LE(j.base.output.i64, n);
  px_child_close(c);
}

INSTANTIATE_TEST_SUITE_P(Reapers, ProcessTest,
                         ::testing::Values(PX__REAPER_PIDFD,
                                           PX__REAPER_SIGCHLD),
                         [](const ::testing::TestParamInfo<int> &i) {
                           return std::string(i.param == PX__REAPER_PIDFD
                                                  ? "pidfd"
                                                  : "sigchld");
                         });

}  // namespace
