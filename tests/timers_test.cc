// Time through the public API: px_sleep_reset before, while and after a
// sleep is pending, px_interval's first tick, schedule and missed-tick
// policies, and sleeps that never complete early. Assertions are about
// values and order (which tick, which instant), never about how fast the
// machine is: lower bounds are exact, upper bounds generous.
#include <gtest/gtest.h>

#include <time.h>

#include <functional>
#include <vector>

#include "tests/combinators_support.h"
#include "tests/fn_future.h"
#include "tests/support.h"

namespace {

using px_test::FnFuture;
using px_test::kFnVtable;
using px_test::RunFn;

// Blocks the runtime thread, as a task that hogs the CPU would: the way to
// make an interval miss ticks on purpose.
void Stall(px_duration d) {
  struct timespec ts = {static_cast<time_t>(d / 1000000000u),
                        static_cast<long>(d % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

class TimersTest : public ::testing::Test {
 protected:
  void SetUp() override { counting_allocator_install(); }
  void TearDown() override {
    EXPECT_EQ(g_alloc.live_blocks.load(), 0) << "leaked blocks";
    EXPECT_EQ(g_alloc.live_bytes.load(), 0) << "leaked bytes";
    counting_allocator_remove();
  }
};

// ---- sleep reset ----------------------------------------------------------

TEST_F(TimersTest, ResetNullIsInvalid) {
  EXPECT_EQ(px_sleep_reset(nullptr, 0), PX_EINVAL);
}

TEST_F(TimersTest, ResetBeforeTheFirstPollMovesTheDeadline) {
  px_sleep s;
  px_instant start = px_now();
  px_sleep_init(&s, px_secs(3600));
  px_instant deadline = start + px_ms(20);
  ASSERT_EQ(px_sleep_reset(&s, deadline), 0);
  px_instant done = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              int r = px_future_poll(&s.base, cx);
              if (r == PX_PENDING) return PX_PENDING;
              EXPECT_EQ(r, PX_READY);
              EXPECT_EQ(s.base.error, 0);
              done = px_now();
              return PX_READY;
            }),
            0);
  EXPECT_GE(done, deadline);
  EXPECT_LT(done - start, px_secs(60));
  px_future_drop(&s.base);
}

// While pending, the node moves at once: the task is woken for the new
// deadline only, so the main future is polled exactly twice (registering,
// then completing). Without the re-registration the old deadline would
// wake it once more for nothing (the later case) or never in time (the
// earlier case).
void ExpectResetWhilePending(px_duration first, px_duration second) {
  px_sleep s;
  px_instant start = px_now();
  px_instant deadline = 0;
  int polls = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              polls++;
              if (polls == 1) {
                px_sleep_until_init(&s, px_now() + first);
                if (px_future_poll(&s.base, cx) != PX_PENDING) {
                  // Too slow a machine for the first deadline: fail, but
                  // do not hang waiting for a wake that will not come.
                  ADD_FAILURE() << "the first sleep finished before reset";
                  polls = 2;
                  return PX_READY;
                }
                deadline = px_now() + second;
                EXPECT_EQ(px_sleep_reset(&s, deadline), 0);
                return PX_PENDING;
              }
              int r = px_future_poll(&s.base, cx);
              if (r == PX_PENDING) return PX_PENDING;
              EXPECT_GE(px_now(), deadline) << "completed early";
              EXPECT_EQ(s.base.error, 0);
              return PX_READY;
            }),
            0);
  EXPECT_EQ(polls, 2);
  EXPECT_LT(px_now() - start, px_secs(60));
  px_future_drop(&s.base);
}

TEST_F(TimersTest, ResetWhilePendingToAnEarlierDeadline) {
  ExpectResetWhilePending(px_secs(3600), px_ms(15));
}

TEST_F(TimersTest, ResetWhilePendingToALaterDeadline) {
  ExpectResetWhilePending(px_ms(60), px_ms(150));
}

TEST_F(TimersTest, ResetWhilePendingToThePast) {
  ExpectResetWhilePending(px_secs(3600), 0);
}

// The sleep's node fired (its wake polls the task), but the task resets the
// sleep to a later deadline before polling it: the fired node holds no
// registration any more, so the poll must arm it again for the new deadline
// rather than take the waker it fired with for "still armed" and sleep
// forever. A 30 s watchdog turns that hang into a failure.
TEST_F(TimersTest, ResetAfterItFiredBeforeThePollWaitsForTheNewDeadline) {
  px_sleep s, watchdog;
  px_instant deadline = 0;
  int polls = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              polls++;
              if (polls == 1) {
                px_sleep_init(&s, px_ms(5));
                px_sleep_init(&watchdog, px_secs(30));
                EXPECT_EQ(px_future_poll(&watchdog.base, cx), PX_PENDING);
                EXPECT_EQ(px_future_poll(&s.base, cx), PX_PENDING);
                return PX_PENDING;
              }
              if (polls == 2) {
                // Only the sleep's node firing wakes this poll.
                deadline = px_now() + px_ms(20);
                EXPECT_EQ(px_sleep_reset(&s, deadline), 0);
              }
              if (px_future_poll(&watchdog.base, cx) == PX_READY) {
                ADD_FAILURE() << "the reset sleep never woke its task";
                px_future_drop(&s.base);  // before its runtime goes
                return PX_READY;
              }
              int r = px_future_poll(&s.base, cx);
              if (r == PX_PENDING) return PX_PENDING;
              EXPECT_GE(px_now(), deadline) << "completed early";
              EXPECT_EQ(s.base.error, 0);
              px_future_drop(&watchdog.base);  // before its runtime goes
              return PX_READY;
            }),
            0);
  EXPECT_EQ(polls, 3);
  px_future_drop(&s.base);
  px_future_drop(&watchdog.base);
}

// A completed sleep that is reset is a fresh sleep and may be awaited again.
TEST_F(TimersTest, ResetAfterCompletionRearms) {
  px_sleep s;
  bool started = false;
  int completions = 0;
  px_instant second_deadline = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (!started) {
                px_sleep_init(&s, px_ms(2));
                started = true;
              }
              int r = px_future_poll(&s.base, cx);
              if (r == PX_PENDING) return PX_PENDING;
              EXPECT_EQ(r, PX_READY);
              if (++completions == 1) {
                px_future_drop(&s.base);  // as PX_AWAIT does
                EXPECT_EQ(px_future_poll(&s.base, cx), PX_EDONE);
                second_deadline = px_now() + px_ms(10);
                EXPECT_EQ(px_sleep_reset(&s, second_deadline), 0);
                EXPECT_EQ(px_future_poll(&s.base, cx), PX_PENDING);
                return PX_PENDING;
              }
              EXPECT_GE(px_now(), second_deadline);
              return PX_READY;
            }),
            0);
  EXPECT_EQ(completions, 2);
  px_future_drop(&s.base);
}

// ---- never early --------------------------------------------------------

TEST_F(TimersTest, SleepsNeverCompleteEarly) {
  // Sub-millisecond, exact-millisecond and odd durations: the timer rounds
  // to 1 ms ticks, and the clock check must still hold every one back.
  const px_duration kDurations[] = {
      0,          px_us(1),   px_us(300), px_us(999), px_ms(1),
      px_us(1001), px_ms(2),  px_us(2500), px_ms(3),   px_us(4700)};
  size_t i = 0;
  px_sleep s;
  px_instant deadline = 0;
  bool armed = false;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              while (i < sizeof kDurations / sizeof kDurations[0]) {
                if (!armed) {
                  deadline = px_now() + kDurations[i];
                  px_sleep_until_init(&s, deadline);
                  armed = true;
                }
                int r = px_future_poll(&s.base, cx);
                if (r == PX_PENDING) return PX_PENDING;
                EXPECT_EQ(s.base.error, 0);
                EXPECT_GE(px_now(), deadline) << "sleep " << i << " early";
                px_future_drop(&s.base);
                armed = false;
                i++;
              }
              return PX_READY;
            }),
            0);
  EXPECT_EQ(i, sizeof kDurations / sizeof kDurations[0]);
}

// ---- interval -----------------------------------------------------------

TEST_F(TimersTest, IntervalRejectsBadArguments) {
  px_interval iv;
  EXPECT_EQ(px_interval_init(nullptr, px_ms(1), PX_MISSED_BURST), PX_EINVAL);
  EXPECT_EQ(px_interval_tick(nullptr), nullptr);
  EXPECT_EQ(px_interval_init(&iv, 0, PX_MISSED_BURST), PX_EINVAL);
  // A tick of the refused interval reports the error instead of hanging.
  px_waker noop = px_waker_noop();
  px_context cx = {&noop, nullptr};
  EXPECT_EQ(px_future_poll(px_interval_tick(&iv), &cx), PX_READY);
  EXPECT_EQ(iv.tick.error, PX_EINVAL);
  EXPECT_EQ(px_interval_init(&iv, px_ms(1), static_cast<px_missed_tick>(7)),
            PX_EINVAL);
  // Valid, but polled outside a runtime.
  ASSERT_EQ(px_interval_init(&iv, px_ms(1), PX_MISSED_SKIP), 0);
  EXPECT_EQ(px_future_poll(px_interval_tick(&iv), &cx), PX_READY);
  EXPECT_EQ(iv.tick.error, PX_ENORUNTIME);
  px_future_drop(&iv.tick);
}

// Takes `n` ticks of `iv`, calling `between(k)` after tick k completes
// (k from 0); returns each tick's output (its scheduled instant) and checks
// that none completed before its instant.
std::vector<px_instant> Ticks(px_interval *iv, size_t n,
                              std::function<void(size_t)> between = {}) {
  std::vector<px_instant> out;
  bool armed = false;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              while (out.size() < n) {
                if (!armed) {
                  px_interval_tick(iv);
                  armed = true;
                }
                int r = px_future_poll(&iv->tick, cx);
                if (r == PX_PENDING) return PX_PENDING;
                EXPECT_EQ(iv->tick.error, 0);
                px_instant at = iv->tick.output.u64;
                EXPECT_GE(px_now(), at) << "tick " << out.size() << " early";
                px_future_drop(&iv->tick);
                armed = false;
                out.push_back(at);
                if (between) between(out.size() - 1);
              }
              return PX_READY;
            }),
            0);
  return out;
}

TEST_F(TimersTest, IntervalFirstTickIsImmediateThenEveryPeriod) {
  const px_duration period = px_ms(10);
  px_interval iv;
  px_instant start = px_now();
  ASSERT_EQ(px_interval_init(&iv, period, PX_MISSED_BURST), 0);
  px_instant first_done = 0;
  std::vector<px_instant> t = Ticks(&iv, 5, [&](size_t k) {
    if (k == 0) first_done = px_now();
  });
  ASSERT_EQ(t.size(), 5u);
  EXPECT_GE(t[0], start);
  EXPECT_LE(t[0], first_done);
  EXPECT_LT(first_done - start, px_secs(5));  // no wait before the first
  for (size_t k = 1; k < t.size(); k++) EXPECT_EQ(t[k], t[0] + k * period);
  EXPECT_GE(px_now(), t[0] + 4 * period);
}

TEST_F(TimersTest, IntervalAtStartsWhereItIsTold) {
  px_interval iv;
  px_instant start = px_now() + px_ms(15);
  ASSERT_EQ(px_interval_init_at(&iv, start, px_ms(5), PX_MISSED_DELAY), 0);
  std::vector<px_instant> t = Ticks(&iv, 2);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0], start);  // the first tick waits for `start`
  EXPECT_GE(t[1], start + px_ms(5));
}

// The scenario of pollux/time.h: period 10 ms, the task stalls for 35 ms
// after the first tick (at t0). Returns the stall's end and the ticks.
struct Missed {
  px_instant t0 = 0, stall_end = 0, late_done = 0;
  std::vector<px_instant> ticks;
  bool on_time = false; /* the first tick was taken on time */
};

Missed RunMissed(px_missed_tick policy) {
  // The scenario needs the first tick on time: taken more than the 5 ms
  // tolerance after t0 (a loaded machine, a sanitizer starting the
  // runtime's threads), it is itself a missed tick and the policy acts on
  // it instead. Such a run proves nothing, so it is run again; when no
  // attempt had its first tick on time (the matrix's thread-sanitizer
  // runs, twice as many tests as CPUs, once saw 5 late in a row), the
  // test is skipped rather than judged on a scenario that did not happen.
  Missed m;
  for (int attempt = 0; attempt < 20; attempt++) {
    m = Missed();
    px_instant first_seen = 0;
    px_interval iv;
    EXPECT_EQ(px_interval_init(&iv, px_ms(10), policy), 0);
    m.ticks = Ticks(&iv, 6, [&](size_t k) {
      if (k == 0) {
        first_seen = px_now();
        Stall(px_ms(35));
        m.stall_end = px_now();
      } else if (k == 1) {
        m.late_done = px_now();  // after the late tick completed
      }
    });
    m.t0 = m.ticks.empty() ? 0 : m.ticks[0];
    m.on_time = first_seen - m.t0 < px_ms(4);
    if (m.on_time) break;
  }
  return m;
}

TEST_F(TimersTest, IntervalBurstCatchesUpEveryMissedTick) {
  Missed m = RunMissed(PX_MISSED_BURST);
  if (!m.on_time) GTEST_SKIP() << "no run had its first tick on time";
  ASSERT_EQ(m.ticks.size(), 6u);
  // Every tick of the original schedule is delivered, none dropped.
  for (size_t k = 0; k < m.ticks.size(); k++)
    EXPECT_EQ(m.ticks[k], m.t0 + k * px_ms(10)) << "tick " << k;
  // Ticks 1..3 were due before the stall ended: they came back to back.
  EXPECT_LE(m.ticks[3], m.stall_end);
}

TEST_F(TimersTest, IntervalDelayRestartsTheScheduleFromTheLateTick) {
  Missed m = RunMissed(PX_MISSED_DELAY);
  if (!m.on_time) GTEST_SKIP() << "no run had its first tick on time";
  ASSERT_EQ(m.ticks.size(), 6u);
  EXPECT_EQ(m.ticks[1], m.t0 + px_ms(10));  // the late tick itself
  // The next one is a full period after the late tick completed.
  EXPECT_GE(m.ticks[2], m.stall_end + px_ms(10));
  for (size_t k = 3; k < m.ticks.size(); k++)
    EXPECT_GE(m.ticks[k], m.ticks[k - 1] + px_ms(10)) << "tick " << k;
}

TEST_F(TimersTest, IntervalSkipKeepsThePhaseAndDropsMissedTicks) {
  Missed m = RunMissed(PX_MISSED_SKIP);
  if (!m.on_time) GTEST_SKIP() << "no run had its first tick on time";
  ASSERT_EQ(m.ticks.size(), 6u);
  EXPECT_EQ(m.ticks[1], m.t0 + px_ms(10));
  // The next tick is the first of the original schedule after the stall:
  // in phase with t0, after the stall, and at most one period later.
  EXPECT_EQ((m.ticks[2] - m.t0) % px_ms(10), 0u);
  EXPECT_GT(m.ticks[2], m.stall_end);
  EXPECT_LE(m.ticks[2], m.late_done + px_ms(10));
  for (size_t k = 3; k < m.ticks.size(); k++) {
    EXPECT_EQ((m.ticks[k] - m.t0) % px_ms(10), 0u) << "tick " << k;
    EXPECT_GT(m.ticks[k], m.ticks[k - 1]) << "tick " << k;
  }
}

// Calling px_interval_tick again while a tick is pending abandons it and
// releases its timer entry; dropping a pending tick does the same. The
// fixture's allocator checks that nothing leaks, ASan that nothing dangles.
// A pending sleep keeps the runtime that holds its node in its output slot
// (pollux/time.h: an output is only valid once READY); every way to READY
// releases the node first, so the output is 0 and the node is unlinked, and
// a poll outside any runtime does so too (it used to leave the node with
// the old runtime until the drop).
TEST_F(TimersTest, PendingSleepKeepsItsRuntimeInTheOutputSlot) {
  px_sleep s;
  px_sleep_init(&s, px_secs(3600));
  EXPECT_EQ(s.base.output.u64, 0u);
  EXPECT_EQ(RunFn([&](px_context *cx) {
              EXPECT_EQ(px_future_poll(&s.base, cx), PX_PENDING);
              EXPECT_EQ(s.base.output.ptr, (void *)cx->runtime);
              EXPECT_NE(s.entry.node.at.link.next, nullptr);  // armed
              px_context outside{cx->waker, nullptr};
              EXPECT_EQ(px_future_poll(&s.base, &outside), PX_READY);
              EXPECT_EQ(s.base.error, PX_ENORUNTIME);
              EXPECT_EQ(s.base.output.u64, 0u);
              EXPECT_EQ(s.entry.node.at.link.next, nullptr);  // released
              return PX_READY;
            }),
            0);
  px_future_drop(&s.base);
  EXPECT_EQ(s.base.output.u64, 0u);  // the drop leaves the output alone
}

TEST_F(TimersTest, AbandonedTicksReleaseTheirTimer) {
  px_interval iv;
  // A period no stall between two polls reaches (50 ms did, once, under
  // TSan on a loaded machine: the second tick was already due).
  ASSERT_EQ(px_interval_init(&iv, px_ms(500), PX_MISSED_BURST), 0);
  px_interval_tick(&iv);
  int step = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              // The first tick is due at init: it completes at the
              // runtime's next turn of its timers (pollux/time.h).
              if (step == 0 &&
                  px_future_poll(&iv.tick, cx) == PX_PENDING)
                return PX_PENDING;
              if (step == 0) {
                EXPECT_EQ(iv.tick.error, 0);
                EXPECT_EQ(px_future_poll(px_interval_tick(&iv), cx),
                          PX_PENDING);
                // Abandon the pending tick for a new one, then drop that.
                EXPECT_EQ(px_future_poll(px_interval_tick(&iv), cx),
                          PX_PENDING);
                px_future_drop(&iv.tick);
                step = 1;
              }
              // The schedule is unchanged: the next tick is still t0 + 500.
              int r = px_future_poll(px_interval_tick(&iv), cx);
              if (r == PX_PENDING) return PX_PENDING;
              EXPECT_EQ(iv.tick.error, 0);
              return PX_READY;
            }),
            0);
  px_future_drop(&iv.tick);
}

}  // namespace
