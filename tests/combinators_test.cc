// Combinators and scopes through the public API: px_race (first success
// wins, failures ignored unless all fail), px_join_all (the px_join alias),
// and px_scope (join collects errors, cancel and drop abort children, every
// child future dropped exactly once, nothing leaks).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tests/combinators_support.h"
#include "tests/fn_future.h"
#include "tests/support.h"

namespace {

using px_test::FnFuture;
using px_test::kFnVtable;
using px_test::RunFn;

// block_on(future) on a fresh runtime.
int RunFuture(px_future *f) {
  px_runtime *rt = nullptr;
  EXPECT_EQ(px_runtime_new(&rt, nullptr), 0);
  int rc = px_runtime_block_on(rt, f);
  px_runtime_free(rt);
  return rc;
}

class CombinatorsTest : public ::testing::Test {
 protected:
  void SetUp() override { counting_allocator_install(); }
  void TearDown() override {
    EXPECT_EQ(g_alloc.live_blocks.load(), 0) << "leaked blocks";
    EXPECT_EQ(g_alloc.live_bytes.load(), 0) << "leaked bytes";
    counting_allocator_remove();
  }
};

// ---- race -----------------------------------------------------------------

TEST_F(CombinatorsTest, RaceFirstSuccessWinsOverAnEarlierFailure) {
  px__atomic(int) drops[3];
  for (auto &d : drops) d = 0;
  failer fast_fail, slow_ok, slowest_ok;
  failer_new(&fast_fail, px_ms(1), PX_EIO, 0, &drops[0]);
  failer_new(&slow_ok, px_ms(20), 0, 7, &drops[1]);
  failer_new(&slowest_ok, px_secs(3600), 0, 9, &drops[2]);
  px_future *fs[] = {PX_FUTURE(&fast_fail), PX_FUTURE(&slow_ok),
                     PX_FUTURE(&slowest_ok)};
  px_race race;
  EXPECT_EQ(RunFuture(px_race_init(&race, fs, 3)), 0);
  EXPECT_EQ(race.index, 1u);
  EXPECT_EQ(race.failed, 1u);
  EXPECT_EQ(race.base.output.i64, 7);
  for (auto &d : drops) EXPECT_EQ(d.load(), 1);  // each dropped exactly once
}

// b and c fail on the first poll (in index order); a only after its sleep,
// so it is the last to fail whatever the machine's speed.
TEST_F(CombinatorsTest, RaceOfFailuresGivesTheLastError) {
  px__atomic(int) drops[3];
  for (auto &d : drops) d = 0;
  failer a, b, c;
  failer_new(&a, px_ms(20), PX_ECONNRESET, 0, &drops[0]);
  failer_new(&b, 0, PX_EIO, 0, &drops[1]);
  failer_new(&c, 0, PX_ECONNREFUSED, 0, &drops[2]);
  px_future *fs[] = {PX_FUTURE(&a), PX_FUTURE(&b), PX_FUTURE(&c)};
  px_race race;
  EXPECT_EQ(RunFuture(px_race_init(&race, fs, 3)), PX_ECONNRESET);
  EXPECT_EQ(race.base.error, PX_ECONNRESET);
  EXPECT_EQ(race.index, 0u);  // a failed last
  EXPECT_EQ(race.failed, 3u);
  for (auto &d : drops) EXPECT_EQ(d.load(), 1);
}

// Unlike px_select, an immediate failure does not end the race.
TEST_F(CombinatorsTest, RaceVersusSelectOnAnImmediateFailure) {
  px_ready bad, good;
  px_future *fs[] = {px_ready_init(&bad, px_i64(0), PX_EIO),
                     px_ready_init(&good, px_i64(5), 0)};
  px_race race;
  EXPECT_EQ(RunFuture(px_race_init(&race, fs, 2)), 0);
  EXPECT_EQ(race.index, 1u);
  EXPECT_EQ(race.base.output.i64, 5);

  px_ready bad2, good2;
  px_future *gs[] = {px_ready_init(&bad2, px_i64(0), PX_EIO),
                     px_ready_init(&good2, px_i64(5), 0)};
  px_select sel;
  EXPECT_EQ(RunFuture(px_select_biased(px_select_init(&sel, gs, 2))), PX_EIO);
  EXPECT_EQ(sel.index, 0u);
}

TEST_F(CombinatorsTest, RaceTieGoesToTheLowerIndex) {
  px_ready a, b;
  px_future *fs[] = {px_ready_init(&a, px_i64(1), 0),
                     px_ready_init(&b, px_i64(2), 0)};
  px_race race;
  EXPECT_EQ(RunFuture(px_race_init(&race, fs, 2)), 0);
  EXPECT_EQ(race.index, 0u);
  EXPECT_EQ(race.base.output.i64, 1);
}

TEST_F(CombinatorsTest, RaceWithNothingToRaceIsInvalid) {
  px_race race;
  EXPECT_EQ(px_race_init(nullptr, nullptr, 0), nullptr);
  EXPECT_EQ(RunFuture(px_race_init(&race, nullptr, 3)), PX_EINVAL);
  px_race empty;
  px_future *none[1] = {nullptr};
  EXPECT_EQ(RunFuture(px_race_init(&empty, none, 1)), PX_EINVAL);
}

TEST_F(CombinatorsTest, DroppingAPendingRaceDropsEveryChildOnce) {
  px__atomic(int) drops[2];
  for (auto &d : drops) d = 0;
  failer a, b;
  failer_new(&a, px_secs(3600), 0, 1, &drops[0]);
  failer_new(&b, px_secs(3600), 0, 2, &drops[1]);
  px_future *fs[] = {PX_FUTURE(&a), PX_FUTURE(&b)};
  px_race race;
  px_race_init(&race, fs, 2);
  EXPECT_EQ(RunFn([&](px_context *cx) {
              EXPECT_EQ(px_future_poll(&race.base, cx), PX_PENDING);
              px_future_drop(&race.base);
              px_future_drop(&race.base);  // a second drop does nothing
              return PX_READY;
            }),
            0);
  for (auto &d : drops) EXPECT_EQ(d.load(), 1);
}

// ---- join_all -------------------------------------------------------------

TEST_F(CombinatorsTest, JoinAllIsJoin) {
  failer a, b, c;
  failer_new(&a, px_ms(30), 0, 1, nullptr);
  failer_new(&b, px_ms(20), PX_EIO, 0, nullptr);
  failer_new(&c, 0, 0, 3, nullptr);
  px_future *fs[] = {PX_FUTURE(&a), PX_FUTURE(&b), PX_FUTURE(&c)};
  size_t order[3] = {9, 9, 9};
  px_join_all all;
  EXPECT_EQ(RunFuture(px_join_all_init(&all, fs, 3, order)), 0);
  EXPECT_EQ(all.base.output.u64, 3u);
  EXPECT_EQ(a.px.base.output.i64, 1);
  EXPECT_EQ(b.px.base.error, PX_EIO);  // each keeps its own error
  EXPECT_EQ(c.px.base.output.i64, 3);
  EXPECT_EQ(order[0], 2u);  // no sleep: done on the first poll
  EXPECT_EQ(order[1] + order[2], 1u);  // then the other two, in some order
}

// ---- scope ----------------------------------------------------------------

// Spawns one failer per (delay, err) into `scope`, all counting drops in
// `drops`; returns how many spawned.
int SpawnFailers(px_scope *scope,
                 const std::vector<std::pair<px_duration, int>> &children,
                 px__atomic(int) *drops) {
  int n = 0;
  for (size_t i = 0; i < children.size(); i++) {
    failer f;
    failer_new(&f, children[i].first, children[i].second,
               static_cast<int64_t>(i), drops);
    int rc = px_scope_spawn(scope, PX_FUTURE(&f));
    EXPECT_EQ(rc, 0);
    if (rc == 0) n++;
  }
  return n;
}

TEST_F(CombinatorsTest, ScopeJoinWaitsForAllAndCollectsErrors) {
  px__atomic(int) drops{0};
  px_scope scope;
  px_scope_join join;
  int step = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step++ == 0) {
                px_scope_init(&scope);
                SpawnFailers(&scope,
                             {{px_ms(8), 0},
                              {px_ms(2), PX_EIO},
                              {0, 0},
                              {px_ms(5), PX_EPIPE},
                              {px_ms(1), 0}},
                             &drops);
                px_scope_join_init(&join, &scope);
              }
              int r = px_future_poll(&join.base, cx);
              if (r == PX_PENDING) return PX_PENDING;
              EXPECT_EQ(join.base.output.u64, 5u);
              // The first failure seen: EIO (2 ms) unless a multi-threaded
              // executor happened to finish the 5 ms child first.
              if (std::string(px_build_info()).find("executor=fifo") !=
                  std::string::npos) {
                EXPECT_EQ(join.base.error, PX_EIO);
              } else {
                EXPECT_TRUE(join.base.error == PX_EIO ||
                            join.base.error == PX_EPIPE);
              }
              EXPECT_EQ(scope.errors, 2u);
              EXPECT_EQ(scope.first_error, join.base.error);
              // Every child's own result stays readable until the drop.
              EXPECT_EQ(px_scope_len(&scope), 5u);
              EXPECT_EQ(px_scope_child(&scope, 0)->base.output.i64, 0);
              EXPECT_EQ(px_scope_child(&scope, 1)->base.error, PX_EIO);
              EXPECT_EQ(px_scope_child(&scope, 3)->base.error, PX_EPIPE);
              EXPECT_EQ(px_scope_child(&scope, 4)->base.output.i64, 4);
              EXPECT_EQ(px_scope_child(&scope, 5), nullptr);
              px_future_drop(&join.base);
              px_scope_drop(&scope);
              return PX_READY;
            }),
            0);
  EXPECT_EQ(drops.load(), 5);
}

TEST_F(CombinatorsTest, ScopeGrowsAndJoinsManyChildren) {
  px__atomic(int) drops{0};
  px_scope scope;
  px_scope_join join;
  std::vector<std::pair<px_duration, int>> children;
  for (int i = 0; i < 100; i++)
    children.emplace_back(px_us(100 * (i % 13)), i % 10 == 3 ? PX_EIO : 0);
  int step = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step++ == 0) {
                px_scope_init(&scope);
                EXPECT_EQ(SpawnFailers(&scope, children, &drops), 100);
                px_scope_join_init(&join, &scope);
              }
              int r = px_future_poll(&join.base, cx);
              if (r == PX_PENDING) return PX_PENDING;
              EXPECT_EQ(join.base.output.u64, 100u);
              EXPECT_EQ(scope.errors, 10u);
              px_scope_drop(&scope);
              return PX_READY;
            }),
            0);
  EXPECT_EQ(drops.load(), 100);
}

TEST_F(CombinatorsTest, EmptyScopeJoinsAtOnce) {
  px_scope scope;
  px_scope_init(&scope);
  px_scope_join join;
  EXPECT_EQ(RunFuture(px_scope_join_init(&join, &scope)), 0);
  EXPECT_EQ(join.base.output.u64, 0u);
  px_scope_drop(&scope);
}

TEST_F(CombinatorsTest, ScopeCancelAbortsChildrenAndJoinReportsIt) {
  px__atomic(int) drops{0};
  px_scope scope;
  px_scope_join join;
  int phase = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (phase == 0) {
                phase = 1;
                px_scope_init(&scope);
                SpawnFailers(&scope,
                             {{px_secs(3600), 0},
                              {0, 0},
                              {px_secs(3600), 0}},
                             &drops);
                px_scope_join_init(&join, &scope);
              }
              if (phase == 1) {
                // Wait (yielding) until the quick child finished, then
                // cancel the two that never would.
                EXPECT_EQ(px_future_poll(&join.base, cx), PX_PENDING);
                if (px_scope_child(&scope, 1)->base.state & PX_FUTURE_DONE) {
                  EXPECT_EQ(px_scope_cancel(&scope), 0);
                  phase = 2;
                } else {
                  px_waker_wake_by_ref(cx->waker);
                }
                return PX_PENDING;
              }
              int r = px_future_poll(&join.base, cx);
              if (r == PX_PENDING) return PX_PENDING;
              EXPECT_EQ(join.base.output.u64, 3u);
              EXPECT_EQ(join.base.error, PX_ECANCELED);
              EXPECT_EQ(scope.errors, 2u);
              EXPECT_EQ(px_scope_child(&scope, 0)->base.error, PX_ECANCELED);
              EXPECT_EQ(px_scope_child(&scope, 1)->base.error, 0);
              EXPECT_EQ(px_scope_child(&scope, 2)->base.error, PX_ECANCELED);
              EXPECT_EQ(drops.load(), 3);  // all gone before the join ended
              px_scope_drop(&scope);
              return PX_READY;
            }),
            0);
  EXPECT_EQ(drops.load(), 3);
  EXPECT_EQ(px_scope_cancel(nullptr), PX_EINVAL);
}

// Dropping the scope without joining aborts and detaches: each child's
// future is dropped exactly once, by the runtime, while it still runs.
TEST_F(CombinatorsTest, ScopeDropAbortsChildrenWithoutAJoin) {
  px__atomic(int) drops{0};
  px_scope scope;
  px_sleep wait;
  int step = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step == 0) {
                step = 1;
                px_scope_init(&scope);
                SpawnFailers(&scope, {{px_secs(3600), 0}, {px_secs(3600), 0}},
                             &drops);
                px_scope_drop(&scope);
                px_scope_drop(&scope);  // twice is harmless
                px_sleep_init(&wait, px_ms(1));
              }
              // Give the executor a moment to run the aborts, then check
              // that they happened while the runtime was still up.
              if (drops.load() < 2) {
                if (px_future_poll(&wait.base, cx) == PX_PENDING)
                  return PX_PENDING;
                px_future_drop(&wait.base);
                px_sleep_init(&wait, px_ms(1));
                px_waker_wake_by_ref(cx->waker);
                return PX_PENDING;
              }
              px_future_drop(&wait.base);
              return PX_READY;
            }),
            0);
  EXPECT_EQ(drops.load(), 2);
}

// The owner gives up on the join (here: it is dropped while pending, which
// is what happens when the owner is cancelled or loses a select): the
// children are aborted with it.
TEST_F(CombinatorsTest, DroppingAPendingJoinAbortsTheChildren) {
  px__atomic(int) drops{0};
  px_scope scope;
  px_scope_join join;
  px_timeout to;
  int step = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step++ == 0) {
                px_scope_init(&scope);
                SpawnFailers(&scope, {{px_secs(3600), 0}, {px_ms(1), 0}},
                             &drops);
                px_timeout_init(&to, px_scope_join_init(&join, &scope),
                                px_ms(20));
              }
              int r = px_future_poll(&to.base, cx);
              if (r == PX_PENDING) return PX_PENDING;
              EXPECT_EQ(to.base.error, PX_ETIMEDOUT);
              // The join was dropped by the timeout: the scope is closed.
              failer late;
              failer_new(&late, 0, 0, 0, nullptr);
              EXPECT_EQ(px_scope_spawn(&scope, PX_FUTURE(&late)), PX_EINVAL);
              px_future_drop(PX_FUTURE(&late));
              px_scope_join again;
              EXPECT_EQ(px_future_poll(px_scope_join_init(&again, &scope), cx),
                        PX_READY);
              EXPECT_EQ(again.base.error, PX_EINVAL);
              px_future_drop(&to.base);
              return PX_READY;
            }),
            0);
  // The long child was aborted, the short one had finished: one drop each,
  // whether the runtime ran the abort or its shutdown dropped the task.
  EXPECT_EQ(drops.load(), 2);
}

TEST_F(CombinatorsTest, ScopeMisuseGivesErrors) {
  px_scope scope;
  px_scope_init(&scope);
  px_scope_init(nullptr);  // ignored
  failer f;
  failer_new(&f, 0, 0, 0, nullptr);
  EXPECT_EQ(px_scope_spawn(nullptr, PX_FUTURE(&f)), PX_EINVAL);
  EXPECT_EQ(px_scope_spawn(&scope, nullptr), PX_EINVAL);
  EXPECT_EQ(px_scope_spawn(&scope, PX_FUTURE(&f)), PX_ENORUNTIME);
  EXPECT_EQ(g_alloc.total_allocs.load(), 0);  // nothing grown for nothing
  EXPECT_EQ(px_scope_len(&scope), 0u);
  EXPECT_EQ(px_scope_len(nullptr), 0u);
  EXPECT_EQ(px_scope_child(nullptr, 0), nullptr);
  EXPECT_EQ(px_scope_join_init(nullptr, &scope), nullptr);
  px_scope_drop(&scope);
  px_scope_drop(nullptr);
  px_future_drop(PX_FUTURE(&f));
}

TEST_F(CombinatorsTest, ScopeSpawnReportsOutOfMemory) {
  px__atomic(int) drops{0};
  px_scope scope;
  px_scope_join join;
  int step = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step++ == 0) {
                px_scope_init(&scope);
                failer f;
                failer_new(&f, 0, 0, 1, &drops);
                g_alloc.fail_at = 1;  // the scope's array
                EXPECT_EQ(px_scope_spawn(&scope, PX_FUTURE(&f)), PX_ENOMEM);
                g_alloc.fail_at = 2;  // the array succeeds, the task fails
                EXPECT_EQ(px_scope_spawn(&scope, PX_FUTURE(&f)), PX_ENOMEM);
                EXPECT_EQ(px_scope_len(&scope), 0u);
                EXPECT_EQ(px_scope_spawn(&scope, PX_FUTURE(&f)), 0);
                px_scope_join_init(&join, &scope);
              }
              int r = px_future_poll(&join.base, cx);
              if (r == PX_PENDING) return PX_PENDING;
              EXPECT_EQ(join.base.output.u64, 1u);
              EXPECT_EQ(join.base.error, 0);
              px_scope_drop(&scope);
              return PX_READY;
            }),
            0);
  EXPECT_EQ(drops.load(), 1);
}

}  // namespace
