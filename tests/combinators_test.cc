// Combinators and scopes through the public API: px_race (first success
// wins, failures ignored unless all fail), px_join_all (the px_join alias),
// and px_scope (join collects errors, cancel and drop abort children, every
// child future dropped exactly once, nothing leaks).
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "scope/scope_internal.h"
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
              if (built_with("executor=fifo")) {
                EXPECT_EQ(join.base.error, PX_EIO);
              } else {
                EXPECT_TRUE(join.base.error == PX_EIO ||
                            join.base.error == PX_EPIPE);
              }
              EXPECT_EQ(scope.errors, 2u);
              EXPECT_EQ(scope.first_error, join.base.error);
              // The join consumed every result: nothing is left to reap.
              EXPECT_EQ(px_scope_len(&scope), 0u);
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
                if (drops.load() == 1) {  // the quick child is gone
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
  EXPECT_EQ(px_scope_join_init(nullptr, &scope), nullptr);
  EXPECT_EQ(px_scope_join_next_init(nullptr, &scope), nullptr);
  EXPECT_EQ(px_scope_spawn_detached(nullptr, PX_FUTURE(&f)), PX_EINVAL);
  EXPECT_EQ(px_scope_spawn_detached(&scope, nullptr), PX_EINVAL);
  EXPECT_EQ(px_scope_spawn_detached(&scope, PX_FUTURE(&f)), PX_ENORUNTIME);
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
                g_alloc.fail_at = 1;  // the scope's shared set
                EXPECT_EQ(px_scope_spawn(&scope, PX_FUTURE(&f)), PX_ENOMEM);
                g_alloc.fail_at = 1;  // the child's entry
                EXPECT_EQ(px_scope_spawn(&scope, PX_FUTURE(&f)), PX_ENOMEM);
                g_alloc.fail_at = 2;  // the entry succeeds, the task fails
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

// join_next hands over each child's result as it finishes, in completion
// order, each exactly once, with its task id; then reports "none left".
TEST_F(CombinatorsTest, ScopeJoinNextReportsEachChildOnceAsItFinishes) {
  px__atomic(int) drops{0};
  px_scope scope;
  px_scope_join_next next;
  std::vector<std::pair<int64_t, int>> got;
  std::vector<uint64_t> ids;
  int step = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step == 0) {
                step = 1;
                px_scope_init(&scope);
                SpawnFailers(&scope,
                             {{px_ms(30), 0}, {0, PX_EIO}, {px_ms(10), 0}},
                             &drops);
                EXPECT_EQ(px_scope_len(&scope), 3u);
                px_scope_join_next_init(&next, &scope);
              }
              for (;;) {
                int r = px_future_poll(&next.base, cx);
                if (r == PX_PENDING) return PX_PENDING;
                if (!next.found) break;
                got.emplace_back(next.base.output.i64, next.base.error);
                ids.push_back(next.id);
                px_scope_join_next_init(&next, &scope);
              }
              EXPECT_EQ(next.base.error, 0);
              EXPECT_EQ(px_scope_len(&scope), 0u);
              px_scope_drop(&scope);
              return PX_READY;
            }),
            0);
  ASSERT_EQ(got.size(), 3u);
  // The failing child finishes on its first poll; the sleepers after.
  EXPECT_EQ(got[0], std::make_pair(int64_t{0}, int{PX_EIO}));
  EXPECT_EQ(got[1].first + got[2].first, 2);  // 2 and 0, in some order
  EXPECT_EQ(scope.errors, 1u);
  EXPECT_EQ(scope.first_error, PX_EIO);
  EXPECT_NE(ids[0], 0u);
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_NE(ids[1], ids[2]);
  EXPECT_EQ(drops.load(), 3);
}

TEST_F(CombinatorsTest, ScopeJoinNextOnAnEmptyOrDroppedScope) {
  px_scope scope;
  px_scope_init(&scope);
  px_scope_join_next next;
  EXPECT_EQ(RunFuture(px_scope_join_next_init(&next, &scope)), 0);
  EXPECT_EQ(next.found, 0);
  px_scope_drop(&scope);
  px_scope_join_next again;
  EXPECT_EQ(RunFuture(px_scope_join_next_init(&again, &scope)), PX_EINVAL);
  EXPECT_EQ(again.found, 0);
}

// A join_next dropped while it waits loses nothing: the child that
// finishes meanwhile is reported by the next one.
TEST_F(CombinatorsTest, ScopeJoinNextDroppedWhilePendingLosesNoResult) {
  px_scope scope;
  px_scope_join_next next;
  px_sleep nap;
  int step = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step == 0) {
                px_scope_init(&scope);
                SpawnFailers(&scope, {{px_ms(5), 0}}, nullptr);
                px_scope_join_next_init(&next, &scope);
                EXPECT_EQ(px_future_poll(&next.base, cx), PX_PENDING);
                px_future_drop(&next.base);
                px_sleep_init(&nap, px_ms(30));
                step = 1;
              }
              if (step == 1) {
                if (px_future_poll(&nap.base, cx) == PX_PENDING)
                  return PX_PENDING;
                px_future_drop(&nap.base);
                px_scope_join_next_init(&next, &scope);
                step = 2;
              }
              if (px_future_poll(&next.base, cx) == PX_PENDING)
                return PX_PENDING;
              EXPECT_EQ(next.found, 1);
              EXPECT_EQ(next.base.error, 0);
              px_scope_drop(&scope);
              return PX_READY;
            }),
            0);
}

// Detached children are supervised (the join waits for them, a drop aborts
// them) but their results are not reported and not counted.
TEST_F(CombinatorsTest, ScopeDetachedChildrenAreAwaitedButNotReported) {
  px__atomic(int) drops{0};
  px_scope scope;
  px_scope_join join;
  px_scope_join_next next;
  int step = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step == 0) {
                step = 1;
                px_scope_init(&scope);
                for (int i = 0; i < 3; i++) {
                  failer f;
                  failer_new(&f, px_ms(5), PX_EIO, i, &drops);
                  EXPECT_EQ(px_scope_spawn_detached(&scope, PX_FUTURE(&f)), 0);
                }
                // Only detached children: join_next has nothing to wait for.
                px_scope_join_next_init(&next, &scope);
                EXPECT_EQ(px_future_poll(&next.base, cx), PX_READY);
                EXPECT_EQ(next.found, 0);
                px_scope_join_init(&join, &scope);
              }
              if (px_future_poll(&join.base, cx) == PX_PENDING)
                return PX_PENDING;
              EXPECT_EQ(join.base.output.u64, 0u);  // none reported
              EXPECT_EQ(join.base.error, 0);        // their EIO not counted
              EXPECT_EQ(drops.load(), 3);           // but all three finished
              EXPECT_EQ(scope.errors, 0u);
              px_scope_drop(&scope);
              return PX_READY;
            }),
            0);
}

// px__scope_watch (px_serve's wait for connections that ended): the owner's
// waker is woken once the given number of children finished, detached ones
// included, which nothing else would wake it for; children that finished
// before the watch are answered with "reap now" instead.
TEST_F(CombinatorsTest, ScopeWatchWakesTheOwnerOnceEnoughChildrenFinish) {
  px__atomic(int) drops{0};
  px_scope scope;
  px_scope_join_next next;
  px_sleep guard, pause;
  int step = 0;
  auto reap = [&](px_context *cx) {
    px_scope_join_next_init(&next, &scope);
    EXPECT_EQ(px_future_poll(&next.base, cx), PX_READY);
    EXPECT_EQ(next.found, 0);  // detached: never reported
  };
  auto spawn = [&](px_duration delay) {
    failer f;
    failer_new(&f, delay, 0, 0, &drops);
    EXPECT_EQ(px_scope_spawn_detached(&scope, PX_FUTURE(&f)), 0);
  };
  EXPECT_EQ(RunFn([&](px_context *cx) {
              switch (step) {
                case 0:
                  px_scope_init(&scope);
                  // Nothing spawned: nothing to watch.
                  EXPECT_EQ(px__scope_watch(&scope, cx, 1), 0);
                  EXPECT_EQ(px__scope_watch(NULL, cx, 1), 0);
                  spawn(px_ms(5));
                  spawn(px_ms(40));
                  reap(cx);  // their handles now wake the scope
                  EXPECT_EQ(px__scope_watch(&scope, cx, 2), 0);
                  // Only the second child's end may wake us; the guard
                  // fails the test rather than hang it.
                  px_sleep_init(&guard, px_secs(10));
                  EXPECT_EQ(px_future_poll(&guard.base, cx), PX_PENDING);
                  step = 1;
                  return PX_PENDING;
                case 1:
                  EXPECT_EQ(px_future_poll(&guard.base, cx), PX_PENDING);
                  EXPECT_EQ(drops.load(), 2);  // not woken by the first
                  EXPECT_EQ(px_scope_len(&scope), 2u);  // ended, not reaped
                  reap(cx);
                  EXPECT_EQ(px_scope_len(&scope), 0u);
                  px_future_drop(&guard.base);
                  // A child that finishes while nobody watches: a watch
                  // for one, coming later, says to reap; one for two waits.
                  spawn(px_ms(1));
                  reap(cx);
                  px_sleep_init(&pause, px_ms(30));
                  step = 2;
                  [[fallthrough]];
                case 2:
                  if (px_future_poll(&pause.base, cx) == PX_PENDING)
                    return PX_PENDING;
                  EXPECT_EQ(drops.load(), 3);
                  EXPECT_EQ(px__scope_watch(&scope, cx, 2), 0);
                  EXPECT_EQ(px__scope_watch(&scope, cx, 1), 1);
                  EXPECT_EQ(px__scope_watch(&scope, cx, 0), 1);  // 0 is 1
                  reap(cx);
                  EXPECT_EQ(px_scope_len(&scope), 0u);
                  px_scope_drop(&scope);
                  EXPECT_EQ(px__scope_watch(&scope, cx, 1), 0);  // dropped
                  return PX_READY;
              }
              return PX_READY;
            }),
            0);
}

// A server's shape: 100,000 short children spawned into one scope, at most
// 32 running at a time (a connection cap). The scope's memory stays bounded
// by the children alive at once (each spawn reaps those that finished),
// instead of growing with every child ever spawned.
TEST_F(CombinatorsTest, ScopeMemoryStaysFlatOverAHundredThousandChildren) {
  for (int detached = 0; detached < 2; detached++) {
    px__atomic(int) finished{0};
    px_scope scope;
    px_scope_join_next next;
    int64_t peak = 0, at_10k = 0;
    int spawned = 0, reported = 0, yielded = 0;
    size_t left = 0, most = 0;
    EXPECT_EQ(RunFn([&](px_context *cx) {
                if (spawned == 0) px_scope_init(&scope);
                while (spawned < 100000) {
                  // The cap: wait (yielding) while 32 children still run.
                  // Also yield every 32 spawns: join_next spends the
                  // cooperative budget, and once this poll has spent it
                  // join_next answers PENDING until we give way (with the
                  // children finishing on other workers, the cap alone
                  // may never make this loop return).
                  if (spawned - finished.load() >= 32 ||
                      (spawned > 0 && spawned % 32 == 0 && !yielded)) {
                    yielded = 1;
                    px_waker_wake_by_ref(cx->waker);
                    return PX_PENDING;
                  }
                  failer f;
                  failer_new(&f, 0, 0, spawned, &finished);
                  int rc = detached ? px_scope_spawn_detached(&scope, PX_FUTURE(&f))
                                    : px_scope_spawn(&scope, PX_FUTURE(&f));
                  EXPECT_EQ(rc, 0);
                  if (rc < 0) return PX_READY;
                  spawned++;
                  yielded = 0;
                  if (!detached) {
                    // Take whatever finished, without waiting.
                    for (;;) {
                      px_scope_join_next_init(&next, &scope);
                      if (px_future_poll(&next.base, cx) == PX_PENDING) {
                        px_future_drop(&next.base);
                        break;
                      }
                      if (!next.found) break;
                      reported++;
                    }
                  }
                  most = std::max(most, px_scope_len(&scope));
                  int64_t live = g_alloc.live_bytes.load();
                  if (spawned == 10000) at_10k = live;
                  if (live > peak) peak = live;
                }
                left = px_scope_len(&scope);
                px_scope_drop(&scope);
                return PX_READY;
              }),
              0);
    EXPECT_EQ(spawned, 100000);
    // The last children, spawned or finished since the last reap.
    EXPECT_LE(left, 64u);
    if (!detached) {
      EXPECT_GE(reported + static_cast<int>(left), 100000);
    }
    // The scope holds the 32 children still running and those finished
    // since the last spawn, never the children it has reaped.
    EXPECT_LE(most, 64u) << "detached=" << detached;
    // So its memory is a few hundred bytes per child it holds: flat from
    // the 10,000th child on, far from 100,000 children's worth (tens of
    // MiB without reaping). Beyond that the allocator's counter sees the
    // freed blocks pollux keeps for reuse (api/alloc.c): a cache per
    // thread, filling on each worker as it frees the children it ran, and
    // the depot they spill into -- up to 2 MiB seen in CI under
    // ThreadSanitizer with two workers.
    px_config cfg;
    px_config_init(&cfg);
    const int64_t kept =
        PX__ALLOC_CACHE ? int64_t{cfg.workers + 1} * PX__ALLOC_CACHE_MAX_BYTES +
                              PX__ALLOC_DEPOT_MAX_BYTES
                        : 0;
    EXPECT_LT(peak, at_10k + (512 << 10) + kept) << "detached=" << detached;
    EXPECT_LT(peak, (2 << 20) + kept) << "detached=" << detached;
    printf("scope of 100,000 children (detached=%d): peak %lld bytes live, "
           "%lld at the 10,000th, at most %zu children held\n",
           detached, static_cast<long long>(peak),
           static_cast<long long>(at_10k), most);
  }
}

// Runs one scope shutdown in a block_on: a scope with `children`, shut
// down with `grace`. `first` runs once, after the shutdown's first poll
// (if that was PX_PENDING); `done` runs when it completes, with the time it took, before
// the shutdown and the scope are dropped.
void RunScopeShutdown(const std::vector<std::pair<px_duration, int>> &children,
                      px_duration grace, px__atomic(int) *drops,
                      const std::function<void(px_scope_shutdown *)> &first,
                      const std::function<void(px_scope_shutdown *, px_scope *,
                                               px_duration)> &done) {
  px_scope scope;
  px_scope_shutdown sd;
  int step = 0;
  px_instant start = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step++ == 0) {
                px_scope_init(&scope);
                SpawnFailers(&scope, children, drops);
                start = px_now();
                px_scope_shutdown_init(&sd, &scope, grace);
                // A shutdown with nothing to wait for may end in its first
                // poll (under work stealing another worker can finish the
                // cancelled children meanwhile): `first` then never runs,
                // and the callers' `done` checks still hold.
                if (first && px_future_poll(&sd.base, cx) == PX_PENDING)
                  first(&sd);
              }
              if (px_future_poll(&sd.base, cx) == PX_PENDING)
                return PX_PENDING;
              done(&sd, &scope, px_now() - start);
              px_future_drop(&sd.base);
              px_scope_drop(&scope);
              return PX_READY;
            }),
            0);
}

// Graceful shutdown of a scope: children that finish within the grace
// period are not cancelled; the others are, and are counted.
TEST_F(CombinatorsTest, ScopeShutdownWaitsForTheGraceThenCancels) {
  px__atomic(int) drops{0};
  RunScopeShutdown({{px_ms(5), 0}, {px_secs(3600), 0}, {px_ms(1), PX_EIO}, {px_secs(3600), 0}},
                   px_ms(50), &drops, nullptr,
                   [&](px_scope_shutdown *sd, px_scope *scope, px_duration took) {
                     EXPECT_EQ(sd->base.error, 0);
                     EXPECT_EQ(sd->base.output.u64, 2u);  // the two long sleepers
                     EXPECT_GE(took, px_ms(50));
                     EXPECT_EQ(drops.load(), 4);      // all gone when it completes
                     EXPECT_EQ(scope->errors, 3u);    // EIO, and two PX_ECANCELED
                   });
}

// A second Ctrl-C: px_scope_shutdown_now ends the grace period early.
TEST_F(CombinatorsTest, ScopeShutdownNowCancelsWithoutWaitingForTheGrace) {
  px__atomic(int) drops{0};
  RunScopeShutdown({{px_secs(3600), 0}, {px_secs(3600), 0}}, px_secs(3600), &drops,
                   [](px_scope_shutdown *sd) { EXPECT_EQ(px_scope_shutdown_now(sd), 0); },
                   [&](px_scope_shutdown *sd, px_scope *, px_duration took) {
                     EXPECT_EQ(sd->base.output.u64, 2u);  // both were cancelled
                     EXPECT_LT(took, px_secs(60));         // not the grace
                     EXPECT_EQ(drops.load(), 2);
                     EXPECT_EQ(px_scope_shutdown_now(sd), PX_EDONE);  // completed
                   });
  EXPECT_EQ(px_scope_shutdown_now(nullptr), PX_EINVAL);
  px_scope_shutdown zero{};
  EXPECT_EQ(px_scope_shutdown_now(&zero), PX_EINVAL);  // never initialised
}

TEST_F(CombinatorsTest, ScopeShutdownNowRefusesAShutdownPastItsGrace) {
  // Past the grace (cancelling, waiting for the children to go) there is
  // nothing left to cut: PX_EDONE, and the shutdown ends as it would.
  // A zero grace ends when the runtime next fires its timers (a sleep of 0,
  // as in tokio), so the shutdown is polled until it is past it.
  px__atomic(int) drops{0};
  px_scope s;
  px_scope_shutdown past;
  int step = 0, refused = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step++ == 0) {
                px_scope_init(&s);
                SpawnFailers(&s, {{px_secs(3600), 0}}, &drops);
                px_scope_shutdown_init(&past, &s, 0);
              }
              if (px_future_poll(&past.base, cx) == PX_PENDING) {
                if (past.phase != 0) {
                  refused++;
                  EXPECT_EQ(px_scope_shutdown_now(&past), PX_EDONE);
                }
                return PX_PENDING;
              }
              EXPECT_EQ(past.base.output.u64, 1u);
              EXPECT_EQ(px_scope_shutdown_now(&past), PX_EDONE);
              px_future_drop(&past.base);
              px_scope_drop(&s);
              return PX_READY;
            }),
            0);
  // Single-threaded, the cancelled child goes after the poll that cancelled
  // it, so the shutdown is polled past its grace at least once; work
  // stealing may end it on another worker during that poll.
  if (!built_with("executor=work_stealing")) {
    EXPECT_GE(refused, 1);
  }
  EXPECT_EQ(drops.load(), 1);
  // Dropped before it completed: PX_EDONE too.
  px_scope scope;
  px_scope_init(&scope);
  px_scope_shutdown sd;
  px_scope_shutdown_init(&sd, &scope, px_secs(1));
  px_future_drop(&sd.base);  // drops the scope with it
  EXPECT_EQ(px_scope_shutdown_now(&sd), PX_EDONE);
}

TEST_F(CombinatorsTest, ScopeShutdownOfFinishedChildrenCancelsNothing) {
  RunScopeShutdown({{px_ms(1), 0}, {0, 0}}, px_secs(3600), nullptr, nullptr,
                   [](px_scope_shutdown *sd, px_scope *, px_duration took) {
                     EXPECT_EQ(sd->base.output.u64, 0u);
                     EXPECT_LT(took, px_secs(60));  // not the grace
                   });
  px_scope scope;  // a dropped scope: no shutdown of it can run
  px_scope_init(&scope);
  px_scope_drop(&scope);
  px_scope_shutdown bad;
  EXPECT_EQ(px_scope_shutdown_init(nullptr, &scope, 0), nullptr);
  EXPECT_EQ(RunFuture(px_scope_shutdown_init(&bad, &scope, 0)), PX_EINVAL);
}

}  // namespace
