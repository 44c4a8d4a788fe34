// Stress: many tasks, many timers, many sockets, shutdown under load. Each
// test is bounded in count and finishes in seconds; they assert exact
// counts and zero leaked bytes, never speed.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/stress_support.h"

namespace {

struct Counted : ::testing::Test {
  px_runtime *rt = nullptr;
  void SetUp() override {
    counting_allocator_install();
    ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
  }
  void TearDown() override {
    px_runtime_free(rt);  // NULL when the test freed it itself
    EXPECT_EQ(g_alloc.live_blocks.load(), 0) << "leaked allocations";
    EXPECT_EQ(g_alloc.live_bytes.load(), 0);
    counting_allocator_remove();
  }
};

TEST_F(Counted, MillionTasksAliveAtOnce) {
  // spawn_many spawns all of them before it first yields, so with a
  // single-threaded executor all 1,000,000 exist at the same moment.
  px__atomic(int) remaining{1000000};
  spawn_many m;
  spawn_many_new(&m, 1000000, &remaining);
  ASSERT_EQ(px_runtime_block_on(rt, &m.px.base), 0);
  EXPECT_EQ(remaining.load(), 0);
  // Each task was allocated; under work stealing the workers run (and
  // free) the first while later ones are spawned, and block_on's thread
  // reuses their blocks (api/alloc.c's depot), so fewer reach the allocator.
  if (built_with("executor=work_stealing"))
    EXPECT_GT(g_alloc.total_allocs.load(), 0);
  else
    EXPECT_GE(g_alloc.total_allocs.load(), 1000000);
}

TEST_F(Counted, TimerStormHalfCancelled) {
  // Half of the timers are cancelled (their tasks aborted) right after
  // spawning. Those wait a second or more, so with any executor, even one
  // whose workers start them at once, none can fire before its abort.
  constexpr int kTimers = 1000000;
  px__atomic(int) fired{0}, drops{0};
  std::vector<px_join_handle> handles(kTimers);
  for (int i = 0; i < kTimers; i++) {
    timer_task t;
    // Distinct deadlines spread over 64 ms, crossing wheel levels.
    px_duration d = px_us((uint64_t)(i % 64000));
    if (i % 2 == 0) d += px_secs(1);
    timer_task_new(&t, d + px_ms(1), &fired, &drops, nullptr);
    ASSERT_EQ(px_runtime_spawn(rt, &t.px.base, &handles[i]), 0);
    if (i % 2 == 0) {
      ASSERT_EQ(px_join_handle_abort(&handles[i]), 0);
    }
  }
  await_count w;
  await_count_new(&w, &fired, kTimers / 2);
  ASSERT_EQ(px_runtime_block_on(rt, &w.px.base), 0);
  EXPECT_EQ(fired.load(), kTimers / 2);
  px_waker nw = px_waker_noop();
  px_context cx = {&nw, nullptr};
  // Let every aborted task finish its cancellation, then check handles.
  for (int i = 0; i < kTimers; i += 99991) {
    px_join_handle &h = handles[i];
    while (px_future_poll(&h.base, &cx) == PX_PENDING) {
      px_sleep nap;
      ASSERT_EQ(px_runtime_block_on(rt, px_sleep_init(&nap, px_ms(1))), 0);
    }
    EXPECT_EQ(h.base.error, i % 2 == 0 ? PX_ECANCELED : 0) << i;
  }
  for (auto &h : handles) px_future_drop(&h.base);
  px_runtime_free(rt);  // drops anything still finishing its cancellation
  rt = nullptr;
  EXPECT_EQ(drops.load(), kTimers);  // every future dropped exactly once
}

TEST_F(Counted, AbortAndDropInEveryState) {
  // Four groups: aborted at once, detached, aborted mid-flight (parked on a
  // long timer or still queued), aborted after completion. Every future
  // must be dropped exactly once and every handle must report the truth,
  // whichever executor runs them.
  constexpr int kTasks = 10000;
  px__atomic(int) fired{0}, drops{0};
  std::vector<px_join_handle> h(kTasks);
  for (int i = 0; i < kTasks; i++) {
    timer_task t;
    bool long_wait = i % 4 == 0 || i % 4 == 2;
    timer_task_new(&t, long_wait ? px_secs(2) : px_ms(1 + i % 3), &fired,
                   &drops, nullptr);
    ASSERT_EQ(px_runtime_spawn(rt, &t.px.base, &h[i]), 0);
    if (i % 4 == 0) {
      ASSERT_EQ(px_join_handle_abort(&h[i]), 0);  // at once
    }
    if (i % 4 == 1) px_future_drop(&h[i].base);  // detached
  }
  px_yield y;
  px_yield_init(&y);
  ASSERT_EQ(px_runtime_block_on(rt, &y.base), 0);
  for (int i = 2; i < kTasks; i += 4) ASSERT_EQ(px_join_handle_abort(&h[i]), 0);
  // The detached and the short group fire.
  await_count w;
  await_count_new(&w, &fired, kTasks / 2);
  ASSERT_EQ(px_runtime_block_on(rt, &w.px.base), 0);
  EXPECT_EQ(fired.load(), kTasks / 2);
  for (int i = 3; i < kTasks; i += 4) ASSERT_EQ(px_join_handle_abort(&h[i]), 0);
  px_waker nw = px_waker_noop();
  px_context cx = {&nw, nullptr};
  for (int i = 0; i < kTasks; i++) {
    if (i % 4 == 1) continue;
    // A cancellation may still be on its way on another worker.
    while (px_future_poll(&h[i].base, &cx) == PX_PENDING) {
      px_sleep nap;
      ASSERT_EQ(px_runtime_block_on(rt, px_sleep_init(&nap, px_ms(1))), 0);
    }
    EXPECT_EQ(h[i].base.error, i % 4 == 3 ? 0 : PX_ECANCELED) << i;
  }
  px_runtime_free(rt);
  rt = nullptr;
  EXPECT_EQ(drops.load(), kTasks);
}

TEST(Shutdown, LiveTasksOpenSocketsAndPendingTimers) {
  counting_allocator_install();
  px_runtime *rt;
  ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
  std::vector<idle_sockets> idle(50);
  for (auto &s : idle) {
    idle_sockets_new(&s);
    ASSERT_EQ(px_runtime_spawn(rt, &s.px.base, nullptr), 0);
  }
  px_sleep nap;
  ASSERT_EQ(px_runtime_block_on(rt, px_sleep_init(&nap, px_ms(20))), 0);
  px_runtime_free(rt);  // must neither hang nor leak
  EXPECT_EQ(g_alloc.live_blocks.load(), 0);
  counting_allocator_remove();
}

// The clients' side, run in a forked child with a runtime of its own: each
// process then needs one descriptor per connection, not two.
int run_clients(uint16_t port, int n) {
  px_runtime *rt;
  if (px_runtime_new(&rt, nullptr) < 0) return 10;
  std::vector<px_tcp_stream *> streams(n, nullptr);
  px__atomic(int) ok{0}, bad{0}, done{0};
  client_spawner spawner;
  client_spawner_new(&spawner, n, port, streams.data(), &ok, &bad, nullptr);
  if (px_runtime_spawn(rt, &spawner.px.base, nullptr) < 0) return 11;
  // Every client counts itself in ok or bad; wait for all of them by
  // driving the runtime in small steps (no waker shared across threads).
  px_instant give_up = px_now() + px_secs(120);
  while (ok.load() + bad.load() < n && px_now() < give_up) {
    px_sleep nap;
    if (px_runtime_block_on(rt, px_sleep_init(&nap, px_ms(2))) < 0) return 12;
  }
  (void)done;
  int open = 0;
  for (auto *s : streams) open += s != nullptr;
  // All n connections are open at this moment: that is the concurrency.
  for (auto *s : streams) px_tcp_close(s);
  px_runtime_free(rt);
  if (bad.load() != 0) return 13;
  if (ok.load() != n) return 14;
  if (open != n) return 15;
  return 0;
}

TEST(Tcp, TenThousandConcurrentConnections) {
  constexpr int kConns = 10000;
  if (built_with("reactor=select"))
    GTEST_SKIP() << "the select reactor refuses descriptors >= FD_SETSIZE "
                    "(1024), so it cannot hold 10,000 connections";
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  const rlim_t need = kConns + 256;
  if (rl.rlim_cur < need) {
    struct rlimit want = {need, rl.rlim_max < need ? need : rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &want) != 0)
      GTEST_SKIP() << "the OS refused RLIMIT_NOFILE = " << need
                   << " (hard limit " << rl.rlim_max << ")";
  }
  counting_allocator_install();
  px_tcp_listener *l;
  ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &l), 0);
  uint16_t port = (uint16_t)px_tcp_listener_port(l);

  fflush(nullptr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    px_tcp_listener_close(l);  // the child is only a client
    _exit(run_clients(port, kConns));
  }

  px_runtime *rt;
  ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
  echo_server server;
  echo_server_new(&server, l, kConns);
  px_join_handle server_jh;
  ASSERT_EQ(px_runtime_spawn(rt, &server.px.base, &server_jh), 0);
  // The child exits once every client verified its echo and closed.
  wait_child wc;
  wait_child_new(&wc, pid);
  ASSERT_EQ(px_runtime_block_on(rt, &wc.px.base), 0);
  int status = (int)wc.px.base.output.i64;
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "client side failed (see run_clients)";
  ASSERT_EQ(px_runtime_block_on(rt, &server_jh.base), 0);
  px_runtime_free(rt);
  EXPECT_EQ(g_alloc.live_blocks.load(), 0);
  counting_allocator_remove();
}

}  // namespace
