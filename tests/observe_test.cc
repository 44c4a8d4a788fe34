// Observability: px_runtime_metrics against known workloads, the PX_TRACE
// file (valid JSON, one span per poll, no overlap on a track), PX_LOG lines
// and the slow-poll warning.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <dirent.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/observe_support.h"
#include "tests/sanitizers.h"

namespace {

px_runtime *NewRuntime(uint32_t slow_poll_ms = 100) {
  px_config cfg;
  px_config_init(&cfg);
  cfg.slow_poll_ms = slow_poll_ms;
  px_runtime *rt = nullptr;
  EXPECT_EQ(px_runtime_new(&rt, &cfg), 0) << px_config_error();
  return rt;
}

px_metrics Metrics(px_runtime *rt) {
  px_metrics m;
  EXPECT_EQ(px_runtime_metrics(rt, &m), 0);
  return m;
}

int CountOf(const std::string &haystack, const std::string &needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1))
    n++;
  return n;
}

// Skips digits; returns how many.
size_t Digits(const std::string &s, size_t *at) {
  size_t start = *at;
  while (*at < s.size() && s[*at] >= '0' && s[*at] <= '9') ++*at;
  return *at - start;
}

bool Expect(const std::string &s, size_t *at, const std::string &word) {
  if (s.compare(*at, word.size(), word) != 0) return false;
  *at += word.size();
  return true;
}

// "12.345678 pollux debug w=0 t=7: message" (w and t may be "-").
bool IsLogLine(const std::string &l) {
  size_t at = 0;
  if (Digits(l, &at) == 0 || !Expect(l, &at, ".") || Digits(l, &at) != 6 ||
      !Expect(l, &at, " pollux "))
    return false;
  while (at < l.size() && l[at] >= 'a' && l[at] <= 'z') at++;
  while (at < l.size() && l[at] == ' ') at++;
  if (!Expect(l, &at, "w=")) return false;
  if (!Expect(l, &at, "-") && Digits(l, &at) == 0) return false;
  if (!Expect(l, &at, " t=")) return false;
  if (!Expect(l, &at, "-") && Digits(l, &at) == 0) return false;
  return Expect(l, &at, ": ") && at < l.size();
}

std::string TempPath(const char *name) {
  const char *dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

TEST(ObserveTest, MetricsRejectNull) {
  px_metrics m;
  EXPECT_EQ(px_runtime_metrics(nullptr, &m), PX_EINVAL);
  px_runtime *rt = NewRuntime();
  EXPECT_EQ(px_runtime_metrics(rt, nullptr), PX_EINVAL);
  px_runtime_free(rt);
}

TEST(ObserveTest, SlowPollMsIsValidated) {
  px_config cfg;
  px_config_init(&cfg);
  EXPECT_EQ(cfg.slow_poll_ms, 100u);
  cfg.slow_poll_ms = 3600001;
  EXPECT_EQ(px_config_validate(&cfg), PX_EINVAL);
  EXPECT_NE(std::string(px_config_error()).find("slow_poll_ms"),
            std::string::npos);
  cfg.slow_poll_ms = 0;
  EXPECT_EQ(px_config_validate(&cfg), 0);
}

TEST(ObserveTest, FreshRuntimeCountsNothing) {
  px_runtime *rt = NewRuntime();
  px_metrics m = Metrics(rt);
  EXPECT_EQ(m.tasks_spawned, 0u);
  EXPECT_EQ(m.polls, 0u);
  EXPECT_EQ(m.tasks_alive, 0u);
  EXPECT_EQ(m.blocking_threads, 0u);
  EXPECT_EQ(m.blocking_queue_depth, 0u);
  px_runtime_free(rt);
}

// N tasks that each yield K times: N spawns and completions, N * (K + 1)
// polls, and one wake per yield.
TEST(ObserveTest, TaskCountsMatchTheWorkload) {
  const int n = 100, k = 3;
  px_runtime *rt = NewRuntime();
  ASSERT_EQ(obs_run_yielders(rt, n, k), 0);
  px_metrics m = Metrics(rt);
  EXPECT_EQ(m.tasks_spawned, (uint64_t)n);
  EXPECT_EQ(m.tasks_completed, (uint64_t)n);
  EXPECT_EQ(m.tasks_alive, 0u);
  EXPECT_EQ(m.polls, (uint64_t)(n * (k + 1)));
  EXPECT_GE(m.block_on_polls, 1u);
  EXPECT_EQ(m.wakes_local + m.wakes_remote, (uint64_t)(n * k));
  ASSERT_GE(m.workers, 1u);
  ASSERT_EQ(m.workers_reported,
            m.workers < PX_METRICS_MAX_WORKERS ? m.workers
                                               : PX_METRICS_MAX_WORKERS);
  uint64_t worker_polls = 0;
  for (uint32_t i = 0; i < m.workers_reported; i++)
    worker_polls += m.worker[i].polls;
  EXPECT_EQ(worker_polls, m.polls);
  px_runtime_free(rt);
}

// One pool thread, three 100 ms jobs: 30 ms in, one thread, two or three
// jobs still waiting for it.
TEST(ObserveTest, BlockingPoolThreadsAndQueue) {
  px_config cfg;
  px_config_init(&cfg);
  cfg.blocking_threads = 1;
  px_runtime *rt = nullptr;
  ASSERT_EQ(px_runtime_new(&rt, &cfg), 0);
  px_metrics mid;
  memset(&mid, 0, sizeof mid);
  ASSERT_EQ(obs_run_blocking(rt, &mid), 0);
  EXPECT_EQ(mid.blocking_threads, 1u);
  EXPECT_GE(mid.blocking_queue_depth, 2u);
  EXPECT_LE(mid.blocking_queue_depth, 3u);
  EXPECT_EQ(Metrics(rt).blocking_queue_depth, 0u);
  px_runtime_free(rt);
}

TEST(ObserveTest, TimersArmedFiredCancelled) {
  px_runtime *rt = NewRuntime();
  ASSERT_EQ(obs_run_timers(rt), 0);
  // A worker counts a timer as it fires it, which on a multi-threaded
  // executor may be just after block_on returned.
  px_metrics m = Metrics(rt);
  for (int i = 0; i < 200 && m.timers_fired + m.timers_cancelled < m.timers_armed;
       i++) {
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, nullptr);
    m = Metrics(rt);
  }
  // The 10 s sleep is armed, then cancelled by the select. The two 20 ms
  // ones are armed and fire, unless the thread stalled past a deadline
  // between creating a sleep and its first poll: that sleep then completes
  // at once, never armed (a loaded machine under TSan did it). So the
  // counts must add up, and at least one timer must have fired.
  EXPECT_EQ(m.timers_cancelled, 1u);
  EXPECT_EQ(m.timers_armed, m.timers_fired + m.timers_cancelled);
  EXPECT_GE(m.timers_fired, 1u);
  EXPECT_LE(m.timers_fired, 2u);
  uint64_t parks = 0, idle = 0, busy = 0;
  for (uint32_t i = 0; i < m.workers_reported; i++) {
    parks += m.worker[i].parks;
    idle += m.worker[i].idle_ns;
    busy += m.worker[i].busy_ns;
  }
  EXPECT_GE(parks, 1u);  // nothing else to do while the sleeps run
  EXPECT_GE(idle, 1000000u);  // at least a millisecond asleep
  EXPECT_GT(busy, 0u);
  px_runtime_free(rt);
}

TEST(ObserveTest, ReactorEventsForASocketRoundTrip) {
  px_runtime *rt = NewRuntime();
  ASSERT_EQ(obs_run_socket_round_trip(rt), 0);
  // A worker that dispatched the event counts it once its reactor poll
  // returns, which on a multi-threaded executor may be just after block_on.
  px_metrics m = Metrics(rt);
  for (int i = 0; i < 200 && m.reactor_events == 0; i++) {
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, nullptr);
    m = Metrics(rt);
  }
  EXPECT_GE(m.reactor_polls, 1u);
  EXPECT_GE(m.reactor_events, 1u);
  px_runtime_free(rt);
}

// The checker: valid JSON, spans that never overlap on one track, the
// number of poll spans, and the task names.
const char kTraceChecker[] = R"PY(
import json, sys
doc = json.load(open(sys.argv[1]))
ev = doc["traceEvents"]
polls = [e for e in ev if e.get("ph") == "X" and e.get("cat") in ("poll", "block_on")]
tracks = {}
for e in ev:
    if e.get("ph") == "X":
        tracks.setdefault(e["tid"], []).append(e)
for tid, spans in tracks.items():
    spans.sort(key=lambda e: (e["ts"], -e["dur"]))
    end = -1.0
    for e in spans:
        if e["ts"] < end - 1e-9:
            print("overlap on track", tid, e); sys.exit(2)
        end = max(end, e["ts"] + e["dur"])
names = set(e["name"] for e in polls)
print(len(polls), " ".join(sorted(names)))
)PY";

TEST(ObserveTest, TraceFileHasOneSpanPerPoll) {
  std::string trace = TempPath("observe_trace.json");
  std::string script = TempPath("check_trace.py");
  std::string result = TempPath("check_trace.out");
  std::remove(trace.c_str());
  ASSERT_EQ(setenv("PX_TRACE", trace.c_str(), 1), 0);
  px_runtime *rt = NewRuntime();
  unsetenv("PX_TRACE");
  ASSERT_EQ(obs_run_yielders(rt, 20, 2), 0);
  ASSERT_EQ(obs_run_timers(rt), 0);
  px_metrics m = Metrics(rt);
  px_runtime_free(rt);  // writes the file

  std::ofstream(script) << kTraceChecker;
  std::string cmd = "python3 " + script + " " + trace + " > " + result;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "trace checker failed";
  std::ifstream in(result);
  uint64_t spans = 0;
  std::string names;
  in >> spans;
  std::getline(in, names);
  EXPECT_EQ(spans, m.polls + m.block_on_polls);
  EXPECT_NE(names.find("obs_yielder"), std::string::npos) << names;
  EXPECT_NE(names.find("obs_spawner"), std::string::npos) << names;

  std::stringstream text;
  text << std::ifstream(trace).rdbuf();
  EXPECT_NE(text.str().find("\"reactor_wait\""), std::string::npos);
  EXPECT_NE(text.str().find("\"cat\":\"wake\""), std::string::npos);
}

TEST(ObserveTest, NoTraceFileWithoutPxTrace) {
  unsetenv("PX_TRACE");
  px_runtime *rt = NewRuntime();
  ASSERT_EQ(obs_run_yielders(rt, 5, 1), 0);
  px_runtime_free(rt);  // nothing to write, nothing to crash on
}

TEST(ObserveTest, DebugLogLinesHaveTimestampWorkerAndTask) {
  obs_log_parse("debug");
  px_runtime *rt = NewRuntime();
  testing::internal::CaptureStderr();
  ASSERT_EQ(obs_run_yielders(rt, 3, 1), 0);
  std::string err = testing::internal::GetCapturedStderr();
  px_runtime_free(rt);
  obs_log_parse(nullptr);

  std::istringstream lines(err);
  std::string l;
  int n = 0;
  while (std::getline(lines, l)) {
    EXPECT_TRUE(IsLogLine(l)) << l;
    n++;
  }
  EXPECT_GE(n, 6);  // three spawns, three completions
  EXPECT_EQ(CountOf(err, "spawn task"), 3) << err;
  EXPECT_EQ(CountOf(err, "(obs_yielder)"), 3) << err;
}

TEST(ObserveTest, InvalidLogLevelWarnsOnceAndFallsBackToWarn) {
  testing::internal::CaptureStderr();
  obs_log_parse("loud");
  px_runtime *rt = NewRuntime();
  ASSERT_EQ(obs_run_yielders(rt, 3, 1), 0);
  px_runtime_free(rt);
  std::string err = testing::internal::GetCapturedStderr();
  obs_log_parse(nullptr);
  EXPECT_EQ(CountOf(err, "\n"), 1) << err;
  EXPECT_EQ(CountOf(err, "PX_LOG=loud"), 1) << err;
  EXPECT_EQ(CountOf(err, " warn "), 1) << err;
  EXPECT_EQ(CountOf(err, "spawn task"), 0) << err;  // debug stays off
}

TEST(ObserveTest, SlowPollWarnsOncePerSlowTask) {
  px_runtime *rt = NewRuntime();
  testing::internal::CaptureStderr();
  ASSERT_EQ(obs_run_slow(rt, 150, 20), 0);
  std::string err = testing::internal::GetCapturedStderr();
  px_runtime_free(rt);
  EXPECT_EQ(CountOf(err, "slow poll"), 1) << err;
  EXPECT_EQ(CountOf(err, "(obs_blocker)"), 1) << err;
  EXPECT_EQ(CountOf(err, "obs_yielder"), 0) << err;
  // The line is a log line, and its task column is the slow task.
  size_t at = err.find("slow poll: task ");
  ASSERT_NE(at, std::string::npos);
  size_t id_at = at + strlen("slow poll: task ");
  std::string id = err.substr(id_at, err.find(' ', id_at) - id_at);
  EXPECT_NE(err.find(" t=" + id + ": slow poll"), std::string::npos) << err;
  EXPECT_TRUE(IsLogLine(err.substr(0, err.find('\n')))) << err;
  // The time it reports is a lower bound (the watchdog saw the poll start
  // late, never early), and the watchdog marks no poll before the threshold.
  size_t ran_at = err.find(" ran ");
  ASSERT_NE(ran_at, std::string::npos) << err;
  EXPECT_GE(std::stoul(err.substr(ran_at + 5)), 100u) << err;
}

// PX_SLOW_POLL_MS sets the default threshold: a runtime made without a
// config warns at 30 ms, and 0 turns the check off. A slow poll at a
// 30 ms threshold runs 120 ms here and below: at 60 ms, a watchdog thread
// that a loaded machine ran 30 ms late saw the poll only as it ended, and
// did not warn (the matrix running twice as many tests as CPUs).
TEST(ObserveTest, SlowPollThresholdFromTheEnvironment) {
  ASSERT_EQ(setenv("PX_SLOW_POLL_MS", "30", 1), 0);
  px_config cfg;
  px_config_init(&cfg);
  EXPECT_EQ(cfg.slow_poll_ms, 30u);
  px_runtime *rt = nullptr;
  ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
  testing::internal::CaptureStderr();
  ASSERT_EQ(obs_run_slow(rt, 120, 2), 0);
  std::string err = testing::internal::GetCapturedStderr();
  px_runtime_free(rt);
  EXPECT_EQ(CountOf(err, "slow poll"), 1) << err;
  EXPECT_EQ(CountOf(err, "slow_poll_ms = 30"), 1) << err;

  ASSERT_EQ(setenv("PX_SLOW_POLL_MS", "0", 1), 0);
  ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
  testing::internal::CaptureStderr();
  ASSERT_EQ(obs_run_slow(rt, 60, 2), 0);
  err = testing::internal::GetCapturedStderr();
  px_runtime_free(rt);
  unsetenv("PX_SLOW_POLL_MS");
  EXPECT_EQ(CountOf(err, "slow poll"), 0) << err;
}

// A bad value warns once per process and keeps the default.
TEST(ObserveTest, InvalidSlowPollEnvWarnsOnceAndKeepsTheDefault) {
  obs_env_reset();
  testing::internal::CaptureStderr();
  px_config cfg;
  for (const char *bad : {"soon", "-5", " 7", "12ms", "3600001"}) {
    ASSERT_EQ(setenv("PX_SLOW_POLL_MS", bad, 1), 0);
    px_config_init(&cfg);
    EXPECT_EQ(cfg.slow_poll_ms, 100u) << bad;
  }
  ASSERT_EQ(setenv("PX_SLOW_POLL_MS", "3600000", 1), 0);
  px_config_init(&cfg);
  EXPECT_EQ(cfg.slow_poll_ms, 3600000u);
  unsetenv("PX_SLOW_POLL_MS");
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(CountOf(err, "PX_SLOW_POLL_MS=soon"), 1) << err;
  EXPECT_EQ(CountOf(err, "\n"), 1) << err;
  obs_env_reset();
}

TEST(ObserveTest, SlowPollOffWithZero) {
  px_runtime *rt = NewRuntime(0);
  testing::internal::CaptureStderr();
  ASSERT_EQ(obs_run_slow(rt, 120, 2), 0);
  std::string err = testing::internal::GetCapturedStderr();
  px_runtime_free(rt);
  EXPECT_EQ(CountOf(err, "slow poll"), 0) << err;
}

// An idle runtime does not keep the watchdog looking: it sleeps once no
// worker has polled for two looks, and the next poll wakes it in time to
// warn.
TEST(ObserveTest, SlowPollAfterAnIdleSpellStillWarns) {
  px_runtime *rt = NewRuntime(40);
  ASSERT_EQ(obs_run_yielders(rt, 2, 1), 0);
  ASSERT_EQ(obs_run_idle(rt, 300), 0);  // 60 looks' time at 5 ms
  // The park's end woke it (the thread could poll next); two idle looks
  // later it sleeps again.
  for (int i = 0; i < 100 && !obs_watchdog_asleep(); i++) usleep(2000);
  EXPECT_EQ(obs_watchdog_asleep(), 1);
  testing::internal::CaptureStderr();
  ASSERT_EQ(obs_run_slow(rt, 120, 2), 0);
  std::string err = testing::internal::GetCapturedStderr();
  px_runtime_free(rt);
  EXPECT_EQ(CountOf(err, "slow poll"), 1) << err;
  EXPECT_EQ(CountOf(err, "slow_poll_ms = 40"), 1) << err;
}

// A runtime whose workers all wait for work lets the watchdog sleep
// without a timeout: no look while they wait (the once-a-second look is
// for a runtime whose thread is away from it, between block_on calls);
// the park's end wakes the watchdog, so a slow poll after it is warned.
// block_on waits for a value another thread sends, so that its park has
// no timeout (a timer wheel may end a park early to cascade).
TEST(ObserveTest, ParkedRuntimeLetsTheWatchdogSleepForGood) {
  px_runtime *rt = NewRuntime(40);
  ASSERT_EQ(obs_run_yielders(rt, 2, 1), 0);
  px_oneshot_sender *tx;
  px_oneshot_receiver *rx;
  ASSERT_EQ(px_oneshot_new(&tx, &rx), 0);
  std::atomic<uint64_t> at_start{0}, at_end{0};
  std::thread sampler([&] {
    // Once it fell asleep (two idle looks, 5 ms apart, after block_on
    // parked); the window holds the 1 s look a bounded sleep would take.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (int i = 0; i < 1000 && !obs_watchdog_asleep(); i++)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    at_start = obs_watchdog_looks();
    std::this_thread::sleep_for(std::chrono::milliseconds(1300));
    at_end = obs_watchdog_looks();
    px_oneshot_send(tx, px_i64(1));
    px_oneshot_sender_drop(tx);
  });
  px_oneshot_recv r;
  ASSERT_EQ(px_runtime_block_on(rt, px_oneshot_recv_init(&r, rx)), 0);
  sampler.join();
  px_oneshot_receiver_drop(rx);
  EXPECT_EQ(at_end.load(), at_start.load());
  testing::internal::CaptureStderr();
  ASSERT_EQ(obs_run_slow(rt, 120, 2), 0);
  std::string err = testing::internal::GetCapturedStderr();
  px_runtime_free(rt);
  EXPECT_EQ(CountOf(err, "slow poll"), 1) << err;
}

// One watchdog serves every runtime, each at its own threshold: a short
// threshold is watched often enough while a long one is also watched, and
// the long one does not warn at the short one's.
TEST(ObserveTest, SlowPollThresholdIsPerRuntime) {
  px_runtime *lax = NewRuntime(3600000);
  px_runtime *strict = NewRuntime(30);
  testing::internal::CaptureStderr();
  ASSERT_EQ(obs_run_slow(lax, 90, 2), 0);
  ASSERT_EQ(obs_run_slow(strict, 120, 2), 0);
  std::string err = testing::internal::GetCapturedStderr();
  px_runtime_free(strict);
  px_runtime_free(lax);
  EXPECT_EQ(CountOf(err, "slow poll"), 1) << err;
  EXPECT_EQ(CountOf(err, "slow_poll_ms = 30"), 1) << err;
}

#if defined(__linux__)
// The threads of this process named px-watchdog (/proc/self/task/*/comm).
int WatchdogThreads() {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  while (struct dirent *e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string name;
    if (std::getline(comm, name) && name == "px-watchdog") n++;
  }
  closedir(d);
  return n;
}

// WatchdogThreads() once it equals `want`, or after 2 s. A joined thread
// can still be listed in /proc/self/task for a moment: pthread_join returns
// when the kernel clears the thread's tid, a little before it removes the
// task (seen once in the matrix, under ws/epoll/wheel: 1 where 0 was due).
int WatchdogThreadsSettled(int want) {
  int n = WatchdogThreads();
  for (int i = 0; i < 200 && n != want; i++) {
    usleep(10000);
    n = WatchdogThreads();
  }
  return n;
}

// The watchdog runs while a runtime that asks for the warning exists, one
// for all of them, and is gone once the last is freed: a process with no
// runtime has no thread of pollux's (a fork then forks one thread).
TEST(ObserveTest, WatchdogThreadLivesWhileATimedRuntimeDoes) {
  ASSERT_EQ(WatchdogThreadsSettled(0), 0);
  px_runtime *off = NewRuntime(0);
  EXPECT_EQ(WatchdogThreadsSettled(0), 0);
  px_runtime *a = NewRuntime(100);
  px_runtime *b = NewRuntime(30);
  EXPECT_EQ(WatchdogThreadsSettled(1), 1);
  px_runtime_free(a);
  EXPECT_EQ(WatchdogThreadsSettled(1), 1);
  px_runtime_free(b);
  EXPECT_EQ(WatchdogThreadsSettled(0), 0);
  px_runtime *again = NewRuntime(100);  // a new one starts for the next
  EXPECT_EQ(WatchdogThreadsSettled(1), 1);
  ASSERT_EQ(obs_run_yielders(again, 2, 2), 0);
  px_runtime_free(again);
  px_runtime_free(off);
  EXPECT_EQ(WatchdogThreadsSettled(0), 0);
}
#endif

// Forked while a runtime (and so the watchdog) runs, a child has no
// watchdog until its own first runtime starts one, and finds the locks
// free. The child checks its own stderr and sends back one
// byte (its exit status is valgrind's under tools/memcheck, which counts the
// parent's memory the child inherits). ThreadSanitizer does not support
// threads started after a fork of a threaded process, which this test does.
TEST(ObserveTest, SlowPollWarnsInAForkedChild) {
#if PX_TEST_TSAN
  GTEST_SKIP() << "ThreadSanitizer cannot start threads after fork";
#else
  px_runtime *parent = NewRuntime(30);  // the watchdog runs
  ASSERT_EQ(obs_run_slow(parent, 1, 1), 0);
  int result[2];
  ASSERT_EQ(pipe(result), 0);
  fflush(stderr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    char verdict = 'x';
    int fds[2];
    px_config cfg;
    px_config_init(&cfg);
    cfg.slow_poll_ms = 30;
    px_runtime *rt = nullptr;
    if (pipe(fds) == 0 && dup2(fds[1], 2) >= 0 &&
        px_runtime_new(&rt, &cfg) == 0 && obs_run_slow(rt, 120, 2) == 0) {
      px_runtime_free(rt);
      close(fds[1]);
      close(2);
      char buf[4096];
      ssize_t n = read(fds[0], buf, sizeof buf - 1);
      int warnings = n < 0 ? -1 : CountOf(std::string(buf, (size_t)n),
                                          "slow poll");
      verdict = (char)('0' + warnings);
    }
    if (write(result[1], &verdict, 1) != 1) _exit(2);
    _exit(0);
  }
  close(result[1]);
  char verdict = 0;
  EXPECT_EQ(read(result[0], &verdict, 1), 1);
  close(result[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  px_runtime_free(parent);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(verdict, '1') << "warnings in the child, x: it failed first";
#endif
}

}  // namespace
