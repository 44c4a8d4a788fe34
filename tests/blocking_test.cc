// The blocking pool (px_spawn_blocking) and files through it (px_fs_*).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/blocking_support.h"
#include "tests/support.h"

namespace {

using Clock = std::chrono::steady_clock;

px_runtime *make_rt(uint32_t threads = 64, uint32_t idle_ms = 10000,
                    uint32_t shutdown_ms = 5000) {
  px_config cfg;
  px_config_init(&cfg);
  cfg.blocking_threads = threads;
  cfg.blocking_idle_ms = idle_ms;
  cfg.blocking_shutdown_ms = shutdown_ms;
  px_runtime *rt = nullptr;
  EXPECT_EQ(px_runtime_new(&rt, &cfg), 0) << px_config_error();
  return rt;
}

// Waits (outside any runtime) until pred() holds or `ms` pass.
template <typename F>
bool wait_until(F pred, int ms = 5000) {
  auto end = Clock::now() + std::chrono::milliseconds(ms);
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// ---- Blocking functions ----------------------------------------------------

int add_fn(void *arg, px_value *out) {
  const int64_t *ab = static_cast<const int64_t *>(arg);
  *out = px_i64(ab[0] + ab[1]);
  return 0;
}

int fail_fn(void *, px_value *) { return PX_EIO; }

// Counts how many run at once and remembers the most seen.
struct Gauge {
  std::atomic<int> now{0}, max{0}, ran{0};
};
struct GaugeArg {
  Gauge *g;
  int64_t index;
};
int gauge_fn(void *arg, px_value *out) {
  GaugeArg *a = static_cast<GaugeArg *>(arg);
  int n = a->g->now.fetch_add(1) + 1;
  int m = a->g->max.load();
  while (n > m && !a->g->max.compare_exchange_weak(m, n)) {
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  a->g->now.fetch_sub(1);
  a->g->ran.fetch_add(1);
  *out = px_i64(a->index * 2);
  return 0;
}

// Runs until the gate opens; records that it started and finished.
struct Gate {
  std::atomic<bool> open{false};
  std::atomic<int> started{0}, finished{0};
};
int gate_fn(void *arg, px_value *out) {
  Gate *g = static_cast<Gate *>(arg);
  g->started.fetch_add(1);
  while (!g->open.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  g->finished.fetch_add(1);
  *out = px_i64(7);
  return 0;
}

int count_fn(void *arg, px_value *out) {
  static_cast<std::atomic<int> *>(arg)->fetch_add(1);
  *out = px_i64(1);
  return 0;
}

struct Stuck {
  std::atomic<int> started{0}, finished{0};
};
int stuck_fn(void *arg, px_value *) {
  Stuck *s = static_cast<Stuck *>(arg);
  s->started.fetch_add(1);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  s->finished.fetch_add(1);
  return 0;
}

// A context for polling by hand with the runtime's pool behind it.
px_context ctx(px_runtime *rt, const px_waker *w) {
  px_context cx;
  cx.waker = w;
  cx.runtime = rt;
  return cx;
}

// ---- Results ---------------------------------------------------------------

TEST(Blocking, ResultComesBack) {
  px_runtime *rt = make_rt();
  int64_t ab[2] = {40, 2};
  px_blocking b;
  EXPECT_EQ(px_runtime_block_on(rt, px_spawn_blocking_init(&b, add_fn, ab)), 0);
  EXPECT_EQ(b.base.output.i64, 42);
  EXPECT_GE(px_runtime_blocking_threads(rt), 1);
  px_runtime_free(rt);
}

TEST(Blocking, ErrorComesBack) {
  px_runtime *rt = make_rt();
  px_blocking b;
  EXPECT_EQ(px_runtime_block_on(rt, px_spawn_blocking_init(&b, fail_fn, nullptr)),
            PX_EIO);
  EXPECT_EQ(b.base.error, PX_EIO);
  px_runtime_free(rt);
}

TEST(Blocking, AwaitedFromAnAsyncFunction) {
  px_runtime *rt = make_rt();
  int64_t a[2] = {1, 2}, b[2] = {10, 20}, c[2] = {100, 200};
  void *args[3] = {a, b, c};
  blocking_sum f;
  EXPECT_EQ(px_runtime_block_on(rt, blocking_sum_new(&f, add_fn, args, 3)), 0);
  EXPECT_EQ(f.px.base.output.i64, 333);
  px_runtime_free(rt);
}

TEST(Blocking, SpawnedAsATask) {
  // px_spawn copies the future before its first poll: the job must be
  // queued from the copy, not from the original.
  px_runtime *rt = make_rt();
  int64_t ab[2] = {5, 6};
  px_blocking b;
  px_spawn_blocking_init(&b, add_fn, ab);
  px_join_handle jh;
  ASSERT_EQ(px_runtime_spawn(rt, &b.base, &jh), 0);
  EXPECT_EQ(px_runtime_block_on(rt, &jh.base), 0);
  EXPECT_EQ(jh.base.output.i64, 11);
  px_runtime_free(rt);
}

TEST(Blocking, ManyJobsBoundedByThePoolSize) {
  const int kJobs = 100;
  const uint32_t kThreads = 4;
  px_runtime *rt = make_rt(kThreads);
  Gauge g;
  std::vector<GaugeArg> args(kJobs);
  std::vector<px_blocking> jobs(kJobs);
  std::vector<px_future *> futs(kJobs);
  for (int i = 0; i < kJobs; i++) {
    args[i] = GaugeArg{&g, i};
    futs[i] = px_spawn_blocking_init(&jobs[i], gauge_fn, &args[i]);
  }
  px_join join;
  EXPECT_EQ(px_runtime_block_on(rt, px_join_init(&join, futs.data(), kJobs, nullptr)),
            0);
  EXPECT_EQ(g.ran.load(), kJobs);
  for (int i = 0; i < kJobs; i++) {
    EXPECT_EQ(jobs[i].base.error, 0);
    EXPECT_EQ(jobs[i].base.output.i64, 2 * i);
  }
  EXPECT_GE(g.max.load(), 1);
  EXPECT_LE(g.max.load(), static_cast<int>(kThreads));
  EXPECT_LE(px_runtime_blocking_threads(rt), static_cast<int>(kThreads));
  px_runtime_free(rt);
}

TEST(Blocking, IdleThreadsExit) {
  px_runtime *rt = make_rt(8, /*idle_ms=*/50);
  EXPECT_EQ(px_runtime_blocking_threads(rt), 0);  // created lazily
  Gauge g;
  std::vector<GaugeArg> args(8);
  std::vector<px_blocking> jobs(8);
  std::vector<px_future *> futs(8);
  for (int i = 0; i < 8; i++) {
    args[i] = GaugeArg{&g, i};
    futs[i] = px_spawn_blocking_init(&jobs[i], gauge_fn, &args[i]);
  }
  px_join join;
  EXPECT_EQ(px_runtime_block_on(rt, px_join_init(&join, futs.data(), 8, nullptr)), 0);
  EXPECT_GE(px_runtime_blocking_threads(rt), 1);
  EXPECT_TRUE(wait_until([&] { return px_runtime_blocking_threads(rt) == 0; }));
  // The pool still works after its threads are gone.
  int64_t ab[2] = {1, 1};
  px_blocking b;
  EXPECT_EQ(px_runtime_block_on(rt, px_spawn_blocking_init(&b, add_fn, ab)), 0);
  EXPECT_EQ(b.base.output.i64, 2);
  px_runtime_free(rt);
}

// ---- Cancellation ------------------------------------------------------------

TEST(Blocking, DropBeforeRunCancels) {
  counting_allocator_install();
  px_runtime *rt = make_rt(/*threads=*/1);
  counting_waker cw{};
  px_waker w = counting_waker_make(&cw);
  px_context cx = ctx(rt, &w);

  Gate gate;
  px_blocking busy;
  EXPECT_EQ(px_future_poll(px_spawn_blocking_init(&busy, gate_fn, &gate), &cx),
            PX_PENDING);
  ASSERT_TRUE(wait_until([&] { return gate.started.load() == 1; }));

  // The only thread is busy: this one waits in the queue, then is dropped.
  std::atomic<int> ran{0};
  px_blocking queued;
  EXPECT_EQ(px_future_poll(px_spawn_blocking_init(&queued, count_fn, &ran), &cx),
            PX_PENDING);
  px_future_drop(&queued.base);

  gate.open.store(true);
  ASSERT_TRUE(wait_until([&] { return cw.wakes.load() == 1; }));
  EXPECT_EQ(px_future_poll(&busy.base, &cx), PX_READY);
  EXPECT_EQ(busy.base.output.i64, 7);
  px_future_drop(&busy.base);
  px_runtime_free(rt);  // waits for the idle thread to exit
  EXPECT_EQ(ran.load(), 0);
  px_waker_drop(&w);
  EXPECT_EQ(cw.clones.load(), cw.drops.load());
  EXPECT_EQ(g_alloc.live_blocks.load(), 0);
  EXPECT_EQ(g_alloc.live_bytes.load(), 0);
  counting_allocator_remove();
}

TEST(Blocking, DropWhileRunningDetachesWithoutLeak) {
  counting_allocator_install();
  px_runtime *rt = make_rt();
  counting_waker cw{};
  px_waker w = counting_waker_make(&cw);
  px_context cx = ctx(rt, &w);
  Gate gate;
  px_blocking b;
  EXPECT_EQ(px_future_poll(px_spawn_blocking_init(&b, gate_fn, &gate), &cx),
            PX_PENDING);
  ASSERT_TRUE(wait_until([&] { return gate.started.load() == 1; }));
  px_future_drop(&b.base);  // detach: the job keeps running
  gate.open.store(true);
  ASSERT_TRUE(wait_until([&] { return gate.finished.load() == 1; }));
  px_runtime_free(rt);
  px_waker_drop(&w);
  EXPECT_EQ(cw.wakes.load(), 0);  // nobody to tell
  EXPECT_EQ(cw.clones.load(), cw.drops.load());
  EXPECT_EQ(g_alloc.live_blocks.load(), 0);
  EXPECT_EQ(g_alloc.live_bytes.load(), 0);
  counting_allocator_remove();
}

TEST(Blocking, DroppingATaskDropsItsJob) {
  // A task awaiting a queued job is aborted: the job never runs.
  px_runtime *rt = make_rt(/*threads=*/1);
  counting_waker cw{};
  px_waker w = counting_waker_make(&cw);
  px_context cx = ctx(rt, &w);
  Gate gate;
  px_blocking busy;
  px_future_poll(px_spawn_blocking_init(&busy, gate_fn, &gate), &cx);
  ASSERT_TRUE(wait_until([&] { return gate.started.load() == 1; }));
  std::atomic<int> ran{0};
  px_blocking b;
  px_spawn_blocking_init(&b, count_fn, &ran);
  px_join_handle jh;
  ASSERT_EQ(px_runtime_spawn(rt, &b.base, &jh), 0);
  px_yield y;  // one turn of the runtime polls the task: the job is queued
  EXPECT_EQ(px_runtime_block_on(rt, px_yield_init(&y)), 0);
  px_join_handle_abort(&jh);
  EXPECT_EQ(px_runtime_block_on(rt, &jh.base), PX_ECANCELED);
  gate.open.store(true);
  ASSERT_TRUE(wait_until([&] { return gate.finished.load() == 1; }));
  px_future_drop(&busy.base);
  px_runtime_free(rt);
  EXPECT_EQ(ran.load(), 0);
  px_waker_drop(&w);
}

TEST(Blocking, SelectLoserIsDetachedManyTimesWithoutLeak) {
  // A job that cannot finish yet races a short sleep: the sleep wins and
  // select drops the job while it runs (or, on a loaded machine, before it
  // started). Either way nothing leaks and each job is freed exactly once.
  counting_allocator_install();
  const int kRounds = 30;
  px_runtime *rt = make_rt(/*threads=*/64);
  Gate gate;
  for (int i = 0; i < kRounds; i++) {
    px_blocking job;
    px_sleep nap;
    px_future *both[2] = {px_spawn_blocking_init(&job, gate_fn, &gate),
                          px_sleep_init(&nap, px_ms(1))};
    px_select sel;
    EXPECT_EQ(px_runtime_block_on(rt, px_select_init(&sel, both, 2)), 0);
    EXPECT_EQ(sel.index, 1u);
  }
  gate.open.store(true);
  px_runtime_free(rt);  // waits for the detached jobs
  EXPECT_EQ(gate.finished.load(), gate.started.load());
  EXPECT_EQ(g_alloc.live_blocks.load(), 0);
  EXPECT_EQ(g_alloc.live_bytes.load(), 0);
  counting_allocator_remove();
}

// ---- Shutdown ------------------------------------------------------------------

TEST(Blocking, ShutdownAbandonsStuckJobsAndReports) {
  counting_allocator_install();
  px_runtime *rt = make_rt(/*threads=*/1, 10000, /*shutdown_ms=*/100);
  counting_waker cw{};
  px_waker w = counting_waker_make(&cw);
  px_context cx = ctx(rt, &w);
  Stuck stuck;
  px_blocking b;
  EXPECT_EQ(px_future_poll(px_spawn_blocking_init(&b, stuck_fn, &stuck), &cx),
            PX_PENDING);
  ASSERT_TRUE(wait_until([&] { return stuck.started.load() == 1; }));
  // Queued behind the stuck one: cancelled by shutdown, and told so.
  std::atomic<int> ran{0};
  px_blocking queued;
  EXPECT_EQ(px_future_poll(px_spawn_blocking_init(&queued, count_fn, &ran), &cx),
            PX_PENDING);

  testing::internal::CaptureStderr();
  auto t0 = Clock::now();
  px_runtime_free(rt);
  auto took = Clock::now() - t0;
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  EXPECT_NE(err.find("pollux: shutdown abandoned 1 blocking job(s) still "
                     "running after 100 ms"),
            std::string::npos)
      << err;
  EXPECT_EQ(stuck.finished.load(), 0);

  // The queued future was woken and completes with PX_ECANCELED.
  EXPECT_EQ(cw.wakes.load(), 1);
  px_context none = ctx(nullptr, &w);
  EXPECT_EQ(px_future_poll(&queued.base, &none), PX_READY);
  EXPECT_EQ(queued.base.error, PX_ECANCELED);
  px_future_drop(&queued.base);
  px_future_drop(&b.base);  // still running on its abandoned thread
  EXPECT_EQ(ran.load(), 0);

  // The abandoned thread finishes later and frees everything it kept.
  ASSERT_TRUE(wait_until([&] { return stuck.finished.load() == 1; }));
  EXPECT_TRUE(wait_until([&] { return g_alloc.live_blocks.load() == 0; }));
  EXPECT_EQ(g_alloc.live_bytes.load(), 0);
  px_waker_drop(&w);
  EXPECT_EQ(cw.clones.load(), cw.drops.load());
  counting_allocator_remove();
}

TEST(Blocking, ShutdownWaitsForShortJobs) {
  px_runtime *rt = make_rt(4, 10000, /*shutdown_ms=*/5000);
  px_waker w = px_waker_noop();
  px_context cx = ctx(rt, &w);
  Gate gate;
  px_blocking b;
  px_future_poll(px_spawn_blocking_init(&b, gate_fn, &gate), &cx);
  ASSERT_TRUE(wait_until([&] { return gate.started.load() == 1; }));
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    gate.open.store(true);
  });
  testing::internal::CaptureStderr();
  px_runtime_free(rt);
  std::string err = testing::internal::GetCapturedStderr();
  opener.join();
  EXPECT_EQ(gate.finished.load(), 1);  // it finished before free returned
  EXPECT_EQ(err, "");
  px_future_drop(&b.base);
}

// ---- Errors ----------------------------------------------------------------------

TEST(Blocking, Errors) {
  // Outside a runtime.
  px_waker w = px_waker_noop();
  px_context cx = ctx(nullptr, &w);
  int64_t ab[2] = {1, 2};
  px_blocking b;
  EXPECT_EQ(px_future_poll(px_spawn_blocking_init(&b, add_fn, ab), &cx), PX_READY);
  EXPECT_EQ(b.base.error, PX_ENORUNTIME);
  px_future_drop(&b.base);

  // Bad arguments.
  EXPECT_EQ(px_spawn_blocking_init(nullptr, add_fn, ab), nullptr);
  EXPECT_EQ(px_runtime_blocking_threads(nullptr), PX_EINVAL);
  px_runtime *rt = make_rt();
  EXPECT_EQ(px_runtime_block_on(rt, px_spawn_blocking_init(&b, nullptr, ab)),
            PX_EINVAL);

  // After shutdown began, nothing new is accepted.
  px_runtime_free(rt);

  // Bad configurations.
  px_config cfg;
  px_config_init(&cfg);
  EXPECT_EQ(cfg.blocking_threads, 64u);
  EXPECT_EQ(cfg.blocking_idle_ms, 10000u);
  EXPECT_EQ(cfg.blocking_shutdown_ms, 5000u);
  cfg.blocking_threads = 0;
  px_runtime *bad = reinterpret_cast<px_runtime *>(0x1);
  EXPECT_EQ(px_runtime_new(&bad, &cfg), PX_EINVAL);
  EXPECT_EQ(bad, nullptr);
  EXPECT_NE(std::string(px_config_error()).find("blocking_threads"),
            std::string::npos);
  cfg.blocking_threads = 4097;
  EXPECT_EQ(px_config_validate(&cfg), PX_EINVAL);
  px_config_init(&cfg);
  cfg.blocking_idle_ms = 3600001;
  EXPECT_EQ(px_config_validate(&cfg), PX_EINVAL);
  px_config_init(&cfg);
  cfg.blocking_shutdown_ms = 3600001;
  EXPECT_EQ(px_config_validate(&cfg), PX_EINVAL);
  cfg.blocking_shutdown_ms = 0;
  EXPECT_EQ(px_config_validate(&cfg), 0);
}

// ---- Files ----------------------------------------------------------------------

std::string tmp_path(const char *name) {
  const char *dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

TEST(Fs, WriteReadStatRoundTrip) {
  counting_allocator_install();
  px_runtime *rt = make_rt();
  std::string path = tmp_path("roundtrip.txt");
  const char text[] = "hello, pollux";
  char back[64] = {0};
  int64_t size = -1;
  fs_roundtrip f;
  EXPECT_EQ(px_runtime_block_on(rt, fs_roundtrip_new(&f, path.c_str(), text,
                                                      strlen(text), back, &size)),
            0);
  EXPECT_EQ(f.px.base.output.u64, strlen(text));
  EXPECT_EQ(size, static_cast<int64_t>(strlen(text)));
  EXPECT_STREQ(back, text);
  px_runtime_free(rt);
  EXPECT_EQ(g_alloc.live_blocks.load(), 0);
  EXPECT_EQ(g_alloc.live_bytes.load(), 0);
  counting_allocator_remove();
}

TEST(Fs, ReadAtOffsetAndEndOfFile) {
  px_runtime *rt = make_rt();
  std::string path = tmp_path("offset.txt");
  px_fs op;
  ASSERT_EQ(px_runtime_block_on(
                rt, px_fs_open_init(&op, path.c_str(), O_CREAT | O_TRUNC | O_RDWR, 0600)),
            0);
  int fd = static_cast<int>(op.blocking.base.output.i64);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(px_runtime_block_on(rt, px_fs_write_init(&op, fd, "abcdef", 6, -1)), 0);
  EXPECT_EQ(op.blocking.base.output.u64, 6u);
  char buf[8] = {0};
  EXPECT_EQ(px_runtime_block_on(rt, px_fs_read_init(&op, fd, buf, 3, 2)), 0);
  EXPECT_EQ(op.blocking.base.output.u64, 3u);
  EXPECT_EQ(std::string(buf, 3), "cde");
  EXPECT_EQ(px_runtime_block_on(rt, px_fs_read_init(&op, fd, buf, 8, 6)), 0);
  EXPECT_EQ(op.blocking.base.output.u64, 0u);  // end of file
  EXPECT_EQ(px_runtime_block_on(rt, px_fs_close_init(&op, fd)), 0);
  // The descriptor is gone now.
  EXPECT_EQ(px_runtime_block_on(rt, px_fs_close_init(&op, fd)), PX_EBADF);
  px_runtime_free(rt);
}

int count_fds() {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (readdir(d) != nullptr) n++;
  closedir(d);
  return n;
}

TEST(Fs, UnclaimedOpenIsClosedAgain) {
  int before = count_fds();  // the runtime's own descriptors come and go too
  px_runtime *rt = make_rt();
  int with_rt = count_fds();
  std::string path = tmp_path("unclaimed.txt");
  counting_waker cw{};
  px_waker w = counting_waker_make(&cw);
  px_context cx = ctx(rt, &w);

  // Finished but never read: the drop closes the descriptor.
  px_fs done;
  EXPECT_EQ(px_future_poll(px_fs_open_init(&done, path.c_str(), O_CREAT | O_RDWR, 0600),
                           &cx),
            PX_PENDING);
  ASSERT_TRUE(wait_until([&] { return cw.wakes.load() == 1; }));
  px_future_drop(&done.blocking.base);
  EXPECT_EQ(count_fds(), with_rt);

  // Dropped while open(2) blocks (a FIFO opens once both ends do): the pool
  // thread closes what it opened.
  std::string fifo = tmp_path("unclaimed.fifo");
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  px_fs blocked;
  EXPECT_EQ(px_future_poll(px_fs_open_init(&blocked, fifo.c_str(), O_RDONLY, 0), &cx),
            PX_PENDING);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  px_future_drop(&blocked.blocking.base);
  // Opening the write end lets the reader's open return. Non-blocking, so
  // that a job a loaded machine had not started yet (and the drop
  // cancelled) cannot hang the test: then no reader ever appears.
  int writer = -1;
  wait_until([&] {
    writer = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    return writer >= 0;
  }, 2000);
  if (writer >= 0) close(writer);
  px_runtime_free(rt);  // waits for the pool thread
  EXPECT_EQ(count_fds(), before);
  EXPECT_EQ(cw.wakes.load(), 1);
  px_waker_drop(&w);
  EXPECT_EQ(cw.clones.load(), cw.drops.load());
}

TEST(Fs, Errors) {
  px_runtime *rt = make_rt();
  std::string missing = tmp_path("does-not-exist/file");
  px_fs op;
  EXPECT_EQ(px_runtime_block_on(rt, px_fs_open_init(&op, missing.c_str(), O_RDONLY, 0)),
            PX_ENOENT);
  struct stat st;
  EXPECT_EQ(px_runtime_block_on(rt, px_fs_stat_init(&op, missing.c_str(), &st)),
            PX_ENOENT);
  EXPECT_EQ(px_runtime_block_on(rt, px_fs_open_init(&op, nullptr, O_RDONLY, 0)),
            PX_EINVAL);
  EXPECT_EQ(px_runtime_block_on(rt, px_fs_read_init(&op, -1, &st, 1, 0)), PX_EINVAL);
  EXPECT_EQ(px_runtime_block_on(rt, px_fs_stat_init(&op, "/", nullptr)), PX_EINVAL);
  EXPECT_EQ(px_fs_close_init(nullptr, 0), nullptr);
  px_runtime_free(rt);

  px_waker w = px_waker_noop();
  px_context cx = ctx(nullptr, &w);
  EXPECT_EQ(px_future_poll(px_fs_stat_init(&op, "/", &st), &cx), PX_READY);
  EXPECT_EQ(op.blocking.base.error, PX_ENORUNTIME);
}

}  // namespace
