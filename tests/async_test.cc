// Issue 13's programming model: results without ceremony (PX_AWAIT_INTO,
// PX_TRY_AWAIT_INTO, PX_AWAIT_ERR), cleanups the frame runs (PX_DEFER),
// select and join of two or three futures without arrays and a fair select,
// misuse that cannot pass silently (an await in a switch of one's own, a
// spawn of a polled future, nested block_on / px_run), one cooperative budget
// on every ready leaf and on the block_on future, and spawn_blocking with an
// owned argument.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "tests/async_support.h"
#include "tests/support.h"

namespace {

class Async : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(px_runtime_new(&rt, nullptr), 0); }
  void TearDown() override { px_runtime_free(rt); }
  px_runtime *rt = nullptr;
};

// ---- PX_AWAIT_INTO and friends ----------------------------------------------

TEST_F(Async, AwaitIntoStoresTypedOutputAndError) {
  into_probe f;
  ASSERT_EQ(px_runtime_block_on(rt, into_probe_new(&f, 0)), 0);
  EXPECT_EQ(f.n, 42u);
  EXPECT_EQ(f.err, 0);
  EXPECT_STREQ(f.s, "hi");
  EXPECT_EQ(f.err2, 0);
  EXPECT_EQ(f.v.i64, -7);
  EXPECT_EQ(f.i, -5);
  EXPECT_DOUBLE_EQ(f.d, 2.5);
  EXPECT_EQ(f.err3, PX_EIO);  // the future's error, the function goes on
  EXPECT_EQ(f.err4, PX_ETIMEDOUT);
  EXPECT_EQ(f.after, 1);
  EXPECT_EQ(f.px.base.output.u64, 42u);
}

TEST_F(Async, TryAwaitIntoFailsTheFunctionWithTheAwaitedError) {
  into_probe f;
  EXPECT_EQ(px_runtime_block_on(rt, into_probe_new(&f, 1)), PX_ECONNRESET);
  EXPECT_EQ(f.after, 0);
  EXPECT_EQ(f.n, 42u);  // left as it was: nothing stored on failure
}

TEST_F(Async, AwaitIntoOfNullIsMisuse) {
  into_null f;
  EXPECT_EQ(px_runtime_block_on(rt, into_null_new(&f)), PX_EINVAL);
  EXPECT_EQ(f.after, 0);
  EXPECT_EQ(f.err, 1);  // untouched: the function failed instead
}

TEST_F(Async, AwaitIntoRealFutures) {
  px_stream *r, *w;
  ASSERT_EQ(px_pipe(&r, &w), 0);
  px_tcp_listener *l;
  ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &l), 0);
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_unbounded(&tx, &rx), 0);
  ASSERT_EQ(px_mpsc_try_send(tx, px_i64(-123)), 0);
  into_io f;
  ASSERT_EQ(px_runtime_block_on(rt, into_io_new(&f, r, w, l, rx)), 0);
  EXPECT_EQ(f.n, 5u);  // bytes read
  EXPECT_EQ(f.err, 0);
  EXPECT_EQ(std::string(f.buf, f.n), "hello");
  ASSERT_NE(f.accepted, nullptr);  // px_tcp_stream *, no cast
  ASSERT_NE(f.client, nullptr);
  EXPECT_EQ(f.got, -123);  // received value into int64_t
  px_tcp_close(f.accepted);
  px_tcp_close(f.client);
  px_tcp_close(r);
  px_tcp_close(w);
  px_tcp_listener_close(l);
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
}

// ---- PX_DEFER -----------------------------------------------------------------

TEST_F(Async, DeferRunsOnceWhenTheFunctionFinishes) {
  defer_log log{};
  defer_counter a{}, b{};
  a.id = 1;
  a.log = &log;
  b.id = 2;
  b.log = &log;
  deferrer d;
  ASSERT_EQ(px_runtime_block_on(rt, deferrer_new(&d, &a, &b, px_ms(1))), 0);
  EXPECT_EQ(d.px.base.output.i64, 7);
  EXPECT_EQ(a.count.load(), 1);
  EXPECT_EQ(b.count.load(), 1);
  ASSERT_EQ(log.len.load(), 2);
  EXPECT_EQ(log.log[0], 2);  // newest first
  EXPECT_EQ(log.log[1], 1);
  px_future_drop(&d.px.base);  // already dropped by block_on: nothing again
  EXPECT_EQ(a.count.load() + b.count.load(), 2);
}

// The sub-future a frame awaits lives in the frame's output slot until the
// frame finishes (pollux/async.h), in the cleanups' record once it has one:
// px_async_awaiting names it while the frame is pending, the frame's drop
// drops it (the sleep leaves the timer and lets go of its waker) and clears
// the slot, and a finished frame's slot is its output.
TEST_F(Async, AwaitedSubFutureLivesInTheOutputSlotUntilReady) {
  static_assert(sizeof(px_async) == sizeof(px_future),
                "an async header is the future header, nothing else");
  counting_waker cw{};
  px_waker w = counting_waker_make(&cw);
  px_context cx{&w, rt};
  defer_counter a{}, b{};
  deferrer d;
  px_future *f = deferrer_new(&d, &a, &b, px_secs(3600));
  EXPECT_EQ(px_async_awaiting(&d.px), nullptr);  // not started
  ASSERT_EQ(px_future_poll(f, &cx), PX_PENDING);
  EXPECT_EQ(px_async_awaiting(&d.px), &d.nap.base);
  EXPECT_EQ(cw.clones.load(), 2);  // ours and the timer's
  px_future_drop(f);
  EXPECT_EQ(px_async_awaiting(&d.px), nullptr);
  EXPECT_NE(d.nap.base.state & PX_FUTURE_DROPPED, 0u);
  EXPECT_EQ(cw.drops.load(), 1);  // the timer let go of its clone
  EXPECT_EQ(a.count.load(), 1);
  EXPECT_EQ(b.count.load(), 1);
  px_waker_drop(&w);

  deferrer done;  // finished: the slot is the output, nothing is awaited
  ASSERT_EQ(px_runtime_block_on(rt, deferrer_new(&done, &a, &b, px_ms(1))), 0);
  EXPECT_EQ(px_async_awaiting(&done.px), nullptr);
  EXPECT_EQ(done.px.base.output.i64, 7);
  EXPECT_EQ(px_async_awaiting(nullptr), nullptr);
  // px_async_finish (what the macros call) refuses NULL and leaves a
  // finished frame's output alone.
  px_async_finish(nullptr);
  px_async_finish(&done.px);
  EXPECT_EQ(done.px.base.output.i64, 7);
}

// Cleanups run as the function finishes (Rust drops an async fn's locals at
// its return, Go runs defers there), after the return value was computed:
// the output is stored, READY returned, and the drop has nothing left to do.
TEST_F(Async, DeferRunsWhenTheFunctionReturnsBeforeTheDrop) {
  counting_waker cw{};
  px_waker w = counting_waker_make(&cw);
  px_context cx{&w, nullptr};
  for (int fail = 0; fail <= 1; fail++) {
    defer_counter a{};
    defer_return f;
    ASSERT_EQ(px_future_poll(defer_return_new(&f, &a, fail), &cx), PX_READY);
    EXPECT_EQ(a.count.load(), 1);  // ran at the return, before any drop
    EXPECT_EQ(f.px.base.error, fail ? PX_EIO : 0);
    EXPECT_EQ(f.px.base.output.i64, fail ? 0 : 100);  // computed first
    EXPECT_EQ(px_async_awaiting(&f.px), nullptr);
    // Too late to register: the cleanup runs at once, nothing leaks.
    defer_counter late{};
    EXPECT_EQ(px_async_defer(&f.px, defer_count, &late), PX_EDONE);
    EXPECT_EQ(late.count.load(), 1);
    EXPECT_EQ(px_async_undefer(&f.px, defer_count, &a), PX_ENOENT);
    px_future_drop(&f.px.base);
    EXPECT_EQ(a.count.load(), 1);  // exactly once
    EXPECT_EQ(f.px.base.output.i64, fail ? 0 : 100);  // the drop left it
  }
  px_waker_drop(&w);
}

TEST_F(Async, DeferRunsOnceWhenTheTaskIsCancelledMidway) {
  defer_counter a{}, b{};
  deferrer d;
  deferrer_new(&d, &a, &b, px_secs(3600));
  px_join_handle jh;
  ASSERT_EQ(px_runtime_spawn(rt, &d.px.base, &jh), 0);
  px_sleep nap;  // let it register its cleanups and park on the sleep
  ASSERT_EQ(px_runtime_block_on(rt, px_sleep_init(&nap, px_ms(5))), 0);
  EXPECT_EQ(a.count.load(), 0);
  ASSERT_EQ(px_join_handle_abort(&jh), 0);
  EXPECT_EQ(px_runtime_block_on(rt, &jh.base), PX_ECANCELED);
  EXPECT_EQ(a.count.load(), 1);
  EXPECT_EQ(b.count.load(), 1);
}

TEST_F(Async, DeferRunsOnceWhenTheRuntimeDropsTheTask) {
  defer_counter a{}, b{};
  {
    px_runtime *other;
    ASSERT_EQ(px_runtime_new(&other, nullptr), 0);
    deferrer d;
    deferrer_new(&d, &a, &b, px_secs(3600));
    ASSERT_EQ(px_runtime_spawn(other, &d.px.base, nullptr), 0);
    px_sleep nap;
    ASSERT_EQ(px_runtime_block_on(other, px_sleep_init(&nap, px_ms(5))), 0);
    px_runtime_free(other);
  }
  EXPECT_EQ(a.count.load(), 1);
  EXPECT_EQ(b.count.load(), 1);
}

TEST_F(Async, UndeferTakesARegistrationBackAndRunDeferredRunsItEarly) {
  defer_counter a{}, b{};
  deferrer d;
  deferrer_new(&d, &a, &b, px_ms(1));
  d.undefer_b = 1;
  d.early_a = 1;
  ASSERT_EQ(px_runtime_block_on(rt, &d.px.base), 0);
  EXPECT_EQ(d.undefer_rc, 0);
  EXPECT_EQ(d.undefer_again_rc, PX_ENOENT);
  EXPECT_EQ(b.count.load(), 0);  // taken back: never run
  EXPECT_EQ(a.count.load(), 1);  // run early, not again at the drop
}

TEST(Defer, ErrorPaths) {
  px_async frame;
  std::memset(&frame, 0, sizeof frame);
  defer_counter c{};
  EXPECT_EQ(px_async_defer(nullptr, defer_count, &c), PX_EINVAL);
  EXPECT_EQ(px_async_defer(&frame, nullptr, &c), PX_EINVAL);
  EXPECT_EQ(px_async_undefer(nullptr, defer_count, &c), PX_EINVAL);
  EXPECT_EQ(px_async_undefer(&frame, nullptr, &c), PX_EINVAL);
  EXPECT_EQ(px_async_undefer(&frame, defer_count, &c), PX_ENOENT);
  EXPECT_EQ(px_async_run_deferred(nullptr, defer_count, &c), PX_EINVAL);
  EXPECT_EQ(px_async_run_deferred(&frame, defer_count, &c), PX_ENOENT);
  EXPECT_EQ(c.count.load(), 0);
  // Same fn, different args: each is its own registration.
  defer_counter c2{};
  ASSERT_EQ(px_async_defer(&frame, defer_count, &c), 0);
  ASSERT_EQ(px_async_defer(&frame, defer_count, &c2), 0);
  EXPECT_EQ(px_async_run_deferred(&frame, defer_count, &c), 0);
  EXPECT_EQ(c.count.load(), 1);
  px_async_drop(&frame.base);
  EXPECT_EQ(c.count.load(), 1);
  EXPECT_EQ(c2.count.load(), 1);
  px_async_drop(&frame.base);  // the list is empty now
  EXPECT_EQ(c2.count.load(), 1);
}

TEST(Defer, OutOfMemoryRunsTheCleanupAtOnce) {
  counting_allocator_install();
  px_async frame;
  std::memset(&frame, 0, sizeof frame);
  defer_counter c{};
  g_alloc.fail_at = 1;
  EXPECT_EQ(px_async_defer(&frame, defer_count, &c), PX_ENOMEM);
  EXPECT_EQ(c.count.load(), 1);  // released, not leaked
  EXPECT_EQ(frame.base.output.u64, 0u);  // no record was made
  // The record came, the registration did not: the cleanup ran, and the
  // drop frees the record.
  g_alloc.fail_at = 2;
  EXPECT_EQ(px_async_defer(&frame, defer_count, &c), PX_ENOMEM);
  EXPECT_EQ(c.count.load(), 2);
  px_async_drop(&frame.base);
  EXPECT_EQ(c.count.load(), 2);
  EXPECT_EQ(frame.base.output.u64, 0u);
  EXPECT_EQ(g_alloc.live_blocks.load(), 0);
  g_alloc.fail_at = 0;
  counting_allocator_remove();
}

TEST(Defer, ReadyMadeCleanups) {
  px_ready r;
  px_ready_init(&r, px_i64(1), 0);
  px_defer_future_drop(&r.base);
  EXPECT_NE(r.base.state & PX_FUTURE_DROPPED, 0u);
  px_defer_free(std::malloc(16));  // ASan/valgrind: no leak
  px_defer_free(nullptr);
}

// ---- select2 / select3 / join2 / join3 ---------------------------------------

class Manual : public ::testing::Test {
 protected:
  px_waker w = px_waker_noop();
  px_context cx = {&w, nullptr};
};

TEST_F(Manual, Select2IsFairBetweenTwoReadyFutures) {
  int wins[2] = {0, 0};
  for (int i = 0; i < 400; i++) {
    px_ready a, b;
    px_select s;
    px_select2_init(&s, px_ready_init(&a, px_i64(10), 0),
                    px_ready_init(&b, px_i64(20), 0));
    ASSERT_EQ(px_future_poll(&s.base, &cx), PX_READY);
    ASSERT_LT(s.index, 2u);
    EXPECT_EQ(s.base.output.i64, s.index == 0 ? 10 : 20);
    wins[s.index]++;
    px_future_drop(&s.base);
  }
  // A random start: each wins about half; 50 of 400 is far below any
  // plausible draw (the chance is under 1e-50) and far above starvation.
  EXPECT_GE(wins[0], 50);
  EXPECT_GE(wins[1], 50);
}

TEST_F(Manual, Select3GivesEveryReadyFutureItsTurn) {
  int wins[3] = {0, 0, 0};
  for (int i = 0; i < 600; i++) {
    px_ready a, b, c;
    px_select s;
    px_select3_init(&s, px_ready_init(&a, px_i64(0), 0),
                    px_ready_init(&b, px_i64(1), 0),
                    px_ready_init(&c, px_i64(2), 0));
    ASSERT_EQ(px_future_poll(&s.base, &cx), PX_READY);
    ASSERT_LT(s.index, 3u);
    EXPECT_EQ(s.base.output.i64, (int64_t)s.index);
    wins[s.index]++;
  }
  for (int k = 0; k < 3; k++) EXPECT_GE(wins[k], 50) << k;
}

TEST_F(Manual, BiasedSelectPollsInIndexOrder) {
  for (int i = 0; i < 100; i++) {
    px_ready a, b;
    px_select s;
    ASSERT_EQ(px_select_biased(px_select2_init(&s, px_ready_init(&a, px_i64(1), 0),
                                               px_ready_init(&b, px_i64(2), 0))),
              &s.base);
    ASSERT_EQ(px_future_poll(&s.base, &cx), PX_READY);
    EXPECT_EQ(s.index, 0u);
    EXPECT_EQ(b.base.state & PX_FUTURE_DROPPED, PX_FUTURE_DROPPED);  // loser
  }
}

TEST_F(Manual, SelectBiasedErrorPaths) {
  EXPECT_EQ(px_select_biased(nullptr), nullptr);
  px_ready r;
  EXPECT_EQ(px_select_biased(px_ready_init(&r, px_i64(0), 0)), nullptr);  // not a select
  px_yield y;
  px_select s;
  px_select2_init(&s, px_yield_init(&y), nullptr);
  ASSERT_EQ(px_future_poll(&s.base, &cx), PX_PENDING);
  EXPECT_EQ(px_select_biased(&s.base), nullptr);  // already started
  EXPECT_EQ(s.biased, 0);
  px_future_drop(&s.base);
}

TEST_F(Manual, Select2WithNullsAndJoinsWithoutArrays) {
  EXPECT_EQ(px_select2_init(nullptr, nullptr, nullptr), nullptr);
  EXPECT_EQ(px_select3_init(nullptr, nullptr, nullptr, nullptr), nullptr);
  EXPECT_EQ(px_join2_init(nullptr, nullptr, nullptr), nullptr);
  EXPECT_EQ(px_join3_init(nullptr, nullptr, nullptr, nullptr), nullptr);

  px_select none;
  px_select2_init(&none, nullptr, nullptr);
  ASSERT_EQ(px_future_poll(&none.base, &cx), PX_READY);
  EXPECT_EQ(none.base.error, PX_EINVAL);  // nothing could ever win

  px_ready b;
  px_select one;
  px_select2_init(&one, nullptr, px_ready_init(&b, px_i64(5), 0));
  ASSERT_EQ(px_future_poll(&one.base, &cx), PX_READY);
  EXPECT_EQ(one.index, 1u);
  EXPECT_EQ(one.base.output.i64, 5);

  px_ready x, y, z;
  px_yield later;
  px_join j2, j3;
  px_join2_init(&j2, px_ready_init(&x, px_i64(1), 0), px_yield_init(&later));
  EXPECT_EQ(px_future_poll(&j2.base, &cx), PX_PENDING);
  EXPECT_EQ(px_future_poll(&j2.base, &cx), PX_READY);
  EXPECT_EQ(j2.base.output.u64, 2u);
  EXPECT_EQ(x.base.output.i64, 1);
  px_join3_init(&j3, px_ready_init(&x, px_i64(1), 0), px_ready_init(&y, px_i64(2), PX_EIO),
                px_ready_init(&z, px_i64(3), 0));
  ASSERT_EQ(px_future_poll(&j3.base, &cx), PX_READY);
  EXPECT_EQ(j3.base.output.u64, 3u);
  EXPECT_EQ(j3.base.error, 0);
  EXPECT_EQ(y.base.error, PX_EIO);  // each keeps its own result
  EXPECT_EQ(z.base.output.i64, 3);
}

// A loop that selects between two channels that always have a value: the
// default select serves both; the biased one only ever the first.
TEST_F(Async, SelectInALoopStarvesNobody) {
  px_mpsc_sender *tx1, *tx2;
  px_mpsc_receiver *rx1, *rx2;
  ASSERT_EQ(px_mpsc_unbounded(&tx1, &rx1), 0);
  ASSERT_EQ(px_mpsc_unbounded(&tx2, &rx2), 0);
  const int n = 200;
  for (int i = 0; i < n; i++) {
    ASSERT_EQ(px_mpsc_try_send(tx1, px_i64(i)), 0);
    ASSERT_EQ(px_mpsc_try_send(tx2, px_i64(i)), 0);
  }
  select_loop fair;
  ASSERT_EQ(px_runtime_block_on(rt, select_loop_new(&fair, rx1, rx2, n, 0)), 0);
  EXPECT_GE(fair.wins[0], 20);
  EXPECT_GE(fair.wins[1], 20);
  EXPECT_EQ(fair.wins[0] + fair.wins[1], n);
  // The loser's recv was dropped while ready: cancel-safe, nothing lost.
  int left = 0;
  px_value v;
  while (px_mpsc_try_recv(rx1, &v) == 0) left++;
  while (px_mpsc_try_recv(rx2, &v) == 0) left++;
  EXPECT_EQ(left, n);

  for (int i = 0; i < 50; i++) {
    ASSERT_EQ(px_mpsc_try_send(tx1, px_i64(i)), 0);
    ASSERT_EQ(px_mpsc_try_send(tx2, px_i64(i)), 0);
  }
  select_loop biased;
  ASSERT_EQ(px_runtime_block_on(rt, select_loop_new(&biased, rx1, rx2, 50, 1)), 0);
  EXPECT_EQ(biased.wins[0], 50);
  EXPECT_EQ(biased.wins[1], 0);
  px_mpsc_sender_drop(tx1);
  px_mpsc_sender_drop(tx2);
  px_mpsc_receiver_drop(rx1);
  px_mpsc_receiver_drop(rx2);
}

// ---- misuse ---------------------------------------------------------------------

TEST_F(Async, AwaitInsideAUserSwitchFailsAtItsFirstResume) {
  switch_misuse f;
  testing::internal::CaptureStderr();
  int rc = px_runtime_block_on(rt, switch_misuse_new(&f));
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, PX_EMISUSE);
  EXPECT_EQ(f.after, 0);  // not "success" with the rest skipped
  EXPECT_NE(log.find("switch_misuse"), std::string::npos) << log;
  EXPECT_NE(log.find("switch of your own"), std::string::npos) << log;
  EXPECT_STREQ(px_err_name(PX_EMISUSE), "EMISUSE");
}

TEST_F(Async, SpawnOfAPolledFutureIsRefused) {
  px_yield y;
  px_yield_init(&y);
  px_waker w = px_waker_noop();
  px_context cx = {&w, nullptr};
  ASSERT_EQ(px_future_poll(&y.base, &cx), PX_PENDING);  // started, not done
  px_join_handle jh;
  EXPECT_EQ(px_runtime_spawn(rt, &y.base, &jh), PX_EINVAL);
  EXPECT_EQ(jh.task, nullptr);
  px_yield fresh;
  EXPECT_EQ(px_runtime_spawn(rt, px_yield_init(&fresh), &jh), 0);  // unpolled: fine
  EXPECT_EQ(px_runtime_block_on(rt, &jh.base), 0);
}

TEST_F(Async, NestedRunIsRefusedWithAReason) {
  nested_run f;
  testing::internal::CaptureStderr();
  ASSERT_EQ(px_runtime_block_on(rt, nested_run_new(&f)), 0);
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(f.px.base.output.i64, PX_EBUSY);
  EXPECT_NE(log.find("px_run called from inside a runtime"), std::string::npos) << log;
}

TEST_F(Async, NestedBlockOnLogsWhy) {
  // tests/support.c's nested_block_on calls block_on from inside block_on.
  nested_block_on n;
  nested_block_on_new(&n);
  testing::internal::CaptureStderr();
  ASSERT_EQ(px_runtime_block_on(rt, &n.px.base), 0);
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(n.px.base.output.i64, PX_EBUSY);
  EXPECT_NE(log.find("block_on called from inside a runtime"), std::string::npos) << log;
}

TEST_F(Async, BlockingCallsOnARuntimeThreadLogWhy) {
  // A *_blocking call inside block_on would park the runtime's thread.
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_unbounded(&tx, &rx), 0);
  struct Ctx {
    px_mpsc_sender *tx;
    px_mpsc_receiver *rx;
    int send_rc, recv_rc;
  } c{tx, rx, 0, 0};
  // A hand-written future: C++ cannot use the async macros.
  struct Probe {
    px_future base;
    Ctx *c;
  };
  static const px_future_vtable vt = {
      sizeof(Probe), "blocking_probe",
      [](px_future *self, px_context *) -> px_poll {
        Ctx *c = reinterpret_cast<Probe *>(self)->c;
        c->send_rc = px_mpsc_send_blocking(c->tx, px_i64(1));
        px_value v;
        c->recv_rc = px_mpsc_recv_blocking(c->rx, &v);
        return PX_READY;
      },
      nullptr};
  Probe p;
  px_future_init(&p.base, &vt);
  p.c = &c;
  testing::internal::CaptureStderr();
  ASSERT_EQ(px_runtime_block_on(rt, &p.base), 0);
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(c.send_rc, PX_EBUSY);
  EXPECT_EQ(c.recv_rc, PX_EBUSY);
  EXPECT_NE(log.find("px_mpsc_send_blocking called on a runtime thread"), std::string::npos)
      << log;
  EXPECT_NE(log.find("px_mpsc_recv_blocking called on a runtime thread"), std::string::npos)
      << log;
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
}

// ---- the cooperative budget ---------------------------------------------------------

// Polls `inner` (which stays where it is) and counts the polls: how many
// times the task gave way is then exact on every executor, unlike watching
// another task, which the work-stealing executor runs in parallel.
struct PollCounter {
  px_future base;
  px_future *inner;
  std::atomic<int> *polls;
};
const px_future_vtable kPollCounterVtable = {
    sizeof(PollCounter), "poll_counter",
    [](px_future *self, px_context *cx) -> px_poll {
      PollCounter *p = reinterpret_cast<PollCounter *>(self);
      p->polls->fetch_add(1);
      int r = px_future_poll(p->inner, cx);
      if (r == PX_PENDING) return PX_PENDING;
      self->output = p->inner->output;
      self->error = r < 0 ? r : p->inner->error;
      return PX_READY;
    },
    [](px_future *self) { px_future_drop(reinterpret_cast<PollCounter *>(self)->inner); }};

// Each kind of leaf, ready every time, in a loop of n: the task must give
// way every PX__COOP_BUDGET operations (and a ticker task gets its turns).
TEST_F(Async, EveryReadyLeafSpendsTheBudget) {
  const char *names[COOP_KINDS] = {
      "mpsc_send",  "bounded_send", "oneshot",    "mutex",     "semaphore",
      "notify",     "watch",        "sleep_due",  "join",      "scope_next",
      "scope_join", "cancelled",    "buf_line",   "buf_exact", "buf_stream",
      "buf_write",  "frame_write"};
  for (int k = 0; k < COOP_KINDS; k++) {
    SCOPED_TRACE(names[k]);
    const int n = 2000;
    px__atomic(int) ticks{0}, stop{0};
    coop_looper c;
    coop_looper_new(&c, static_cast<coop_kind>(k), n, &ticks);
    ticker t;
    ticker_new(&t, &ticks, &stop);
    std::atomic<int> polls{0};
    PollCounter pc;
    px_future_init(&pc.base, &kPollCounterVtable);
    pc.inner = &c.px.base;
    pc.polls = &polls;
    px_join_handle jc, jt;
    ASSERT_EQ(px_runtime_spawn(rt, &pc.base, &jc), 0);
    ASSERT_EQ(px_runtime_spawn(rt, &t.px.base, &jt), 0);
    ASSERT_EQ(px_runtime_block_on(rt, &jc.base), 0);
    stop = 1;
    ASSERT_EQ(px_runtime_block_on(rt, &jt.base), 0);
    // 2,000 ready operations at 128 per poll: at least 15 polls (without a
    // budget: one, plus the few waits of the setup).
    EXPECT_GE(polls.load(), n / PX__COOP_BUDGET);
    EXPECT_LE(polls.load(), n);  // but not one poll per operation
    if (!built_with("executor=work_stealing")) {
      EXPECT_GE(jc.base.output.i64, n / PX__COOP_BUDGET);  // one thread: the ticker ran between
    }
    coop_looper_free(&c);
  }
}

// A scope reaps its children's join handles with a waker of its own; those
// handles spend the budget, so a spent budget must not make the reap spin.
TEST_F(Async, ScopeReapsFinishedChildrenWithTheBudgetSpent) {
  scope_reap_spent f;
  ASSERT_EQ(px_runtime_block_on(rt, scope_reap_spent_new(&f, 50)), 0);
  EXPECT_EQ(f.px.base.output.i64, 50);
}

// The case: a task awaiting ready sends in a loop for 300 ms must
// not hold up a 1 ms interval for all of it.
struct StarveRun {
  int64_t sent = 0, ticks = 0;
  uint64_t worst_ns = 0;
  // The ticker kept ticking while the sender ran (without a budget it
  // ticks once before the sender's one endless poll and once after), and
  // no tick waited anywhere near the 300 ms the sender ran: a budget of
  // 128 sends is microseconds (milliseconds under valgrind).
  bool ok() const { return ticks >= 5 && worst_ns < px_ms(100); }
};

static StarveRun RunSendsBesideATicker(px_runtime *rt) {
  StarveRun r;
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  EXPECT_EQ(px_mpsc_unbounded(&tx, &rx), 0);
  px__atomic(int) stop{0};
  late_ticker lt;
  late_ticker_new(&lt, &stop, &r.worst_ns);
  px_join_handle jt, js;
  EXPECT_EQ(px_runtime_spawn(rt, &lt.px.base, &jt), 0);
  busy_sender bs;
  busy_sender_new(&bs, tx, rx, 300, &stop);
  EXPECT_EQ(px_runtime_spawn(rt, &bs.px.base, &js), 0);
  EXPECT_EQ(px_runtime_block_on(rt, &js.base), 0);
  EXPECT_EQ(px_runtime_block_on(rt, &jt.base), 0);
  r.sent = js.base.output.i64;
  r.ticks = jt.base.output.i64;
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
  return r;
}

TEST_F(Async, ReadySendsInALoopDoNotStarveAnInterval) {
  // A runtime without a budget starves the ticker on every try; a loaded
  // machine (valgrind beside other tests on a 2-CPU CI runner stalled one
  // tick 126 ms) fails one try now and then, so up to 5 tries.
  StarveRun r;
  for (int i = 0; i < 5; i++) {
    r = RunSendsBesideATicker(rt);
    if (r.ok()) break;
  }
  EXPECT_GT(r.sent, 0);
  EXPECT_GE(r.ticks, 5);
  EXPECT_LT(r.worst_ns, px_ms(100)) << r.worst_ns / 1000000 << " ms late";
}

// An accept loop in the block_on future under a connect flood: the accepted
// connections' tasks must run while connections are still waiting in the
// backlog, not only after the flood drained.
TEST_F(Async, AcceptLoopInBlockOnLetsAcceptedConnectionsRun) {
  px_tcp_listener *l;
  ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &l), 0);
  int port = px_tcp_listener_port(l);
  ASSERT_GT(port, 0);
  const int n = 3 * PX__COOP_BUDGET;  // all in the backlog before block_on
  std::vector<int> clients;
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0) << i;
    clients.push_back(fd);
  }
  px__atomic(int) accepted{0}, first_seen{-1}, served{0};
  accept_loop al;
  ASSERT_EQ(px_runtime_block_on(rt, accept_loop_new(&al, l, n, &accepted,
                                                    &first_seen, &served)),
            0);
  EXPECT_EQ(accepted.load(), n);
  EXPECT_EQ(served.load(), n);
  EXPECT_GE(first_seen.load(), 1);
  // On one thread the first connection was served long before the last
  // was accepted (without a budget on the block_on future: only after all
  // n). Work stealing runs them on its workers, which a loaded machine may
  // not give the CPU before the block_on thread took the whole backlog
  // (io_uring's multishot accept hands it over at once): no order promised.
  if (!built_with("executor=work_stealing")) {
    EXPECT_LT(first_seen.load(), n);
  }
  for (int fd : clients) close(fd);
  px_tcp_listener_close(l);
}

// ---- spawn_blocking with an owned argument ----------------------------------------

std::atomic<int> g_frees{0}, g_runs{0};
void free_owned(void *arg) {
  g_frees.fetch_add(1);
  delete static_cast<int *>(arg);
}
int run_owned(void *arg, px_value *out) {
  g_runs.fetch_add(1);
  *out = px_i64(*static_cast<int *>(arg) * 2);
  return 0;
}
std::atomic<bool> g_gate{false};
int gate_job(void *, px_value *out) {
  while (!g_gate.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  *out = px_i64(0);
  return 0;
}

bool WaitFor(const std::function<bool()> &pred, int ms = 5000) {
  for (int i = 0; i < ms && !pred(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return pred();
}

class Owned : public ::testing::Test {
 protected:
  void SetUp() override {
    g_frees = 0;
    g_runs = 0;
    g_gate = false;
  }
};

TEST_F(Owned, FreedOnceAfterTheJobRan) {
  px_runtime *rt;
  ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
  px_blocking job;
  ASSERT_EQ(px_runtime_block_on(rt, px_spawn_blocking_owned_init(&job, run_owned,
                                                                  new int(21), free_owned)),
            0);
  EXPECT_EQ(job.base.output.i64, 42);
  EXPECT_EQ(g_runs.load(), 1);
  // Freed by whichever of the future and the pool thread let go last.
  EXPECT_TRUE(WaitFor([] { return g_frees.load() == 1; }));
  px_runtime_free(rt);
  EXPECT_EQ(g_frees.load(), 1);
}

TEST_F(Owned, FreedOnceWhenCancelledBeforeItRan) {
  px_config cfg;
  px_config_init(&cfg);
  cfg.blocking_threads = 1;  // the gate job holds the only thread
  px_runtime *rt;
  ASSERT_EQ(px_runtime_new(&rt, &cfg), 0);
  px_blocking gate;
  px_join_handle jg;
  ASSERT_EQ(px_runtime_spawn(rt, px_spawn_blocking_init(&gate, gate_job, nullptr), &jg), 0);
  px_sleep settle;  // the gate job is queued first and takes the thread
  ASSERT_EQ(px_runtime_block_on(rt, px_sleep_init(&settle, px_ms(5))), 0);
  px_blocking job;
  px_sleep nap;
  px_select sel;
  ASSERT_EQ(px_runtime_block_on(
                rt, px_select2_init(&sel,
                                    px_spawn_blocking_owned_init(&job, run_owned, new int(1),
                                                                 free_owned),
                                    px_sleep_init(&nap, px_ms(10)))),
            0);
  EXPECT_EQ(sel.index, 1u);  // the job was still queued when it was dropped
  EXPECT_EQ(g_runs.load(), 0);
  EXPECT_EQ(g_frees.load(), 1);
  g_gate = true;
  EXPECT_EQ(px_runtime_block_on(rt, &jg.base), 0);
  px_runtime_free(rt);
  EXPECT_EQ(g_runs.load(), 0);
  EXPECT_EQ(g_frees.load(), 1);
}

TEST_F(Owned, FreedOnceWhenNeverPolledOrTheFirstPollFailed) {
  px_blocking job;
  px_spawn_blocking_owned_init(&job, run_owned, new int(1), free_owned);
  px_future_drop(&job.base);
  EXPECT_EQ(g_frees.load(), 1);
  px_future_drop(&job.base);
  EXPECT_EQ(g_frees.load(), 1);

  // Outside a runtime the first poll fails; the argument is still the
  // future's, released by its drop.
  px_waker w = px_waker_noop();
  px_context cx = {&w, nullptr};
  px_spawn_blocking_owned_init(&job, run_owned, new int(1), free_owned);
  ASSERT_EQ(px_future_poll(&job.base, &cx), PX_READY);
  EXPECT_EQ(job.base.error, PX_ENORUNTIME);
  EXPECT_EQ(g_frees.load(), 1);
  px_future_drop(&job.base);
  EXPECT_EQ(g_frees.load(), 2);
  EXPECT_EQ(g_runs.load(), 0);
}

TEST_F(Owned, NullArgumentsFreeAtOnce) {
  px_blocking job;
  EXPECT_EQ(px_spawn_blocking_owned_init(nullptr, run_owned, new int(1), free_owned), nullptr);
  EXPECT_EQ(g_frees.load(), 1);
  EXPECT_EQ(px_spawn_blocking_owned_init(&job, nullptr, new int(1), free_owned), nullptr);
  EXPECT_EQ(g_frees.load(), 2);
  // No free function: a plain, borrowing spawn_blocking.
  int arg = 4;
  px_runtime *rt;
  ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
  ASSERT_EQ(px_runtime_block_on(rt, px_spawn_blocking_owned_init(&job, run_owned, &arg,
                                                                  nullptr)),
            0);
  EXPECT_EQ(job.base.output.i64, 8);
  px_runtime_free(rt);
  EXPECT_EQ(g_frees.load(), 2);
}

TEST_F(Owned, FreedOnceWhenTheRuntimeShutsDownWithTheJobQueued) {
  px_config cfg;
  px_config_init(&cfg);
  cfg.blocking_threads = 1;
  cfg.blocking_shutdown_ms = 0;  // do not wait for the gate job
  px_runtime *rt;
  ASSERT_EQ(px_runtime_new(&rt, &cfg), 0);
  px_blocking gate, job;
  ASSERT_EQ(px_runtime_spawn(rt, px_spawn_blocking_init(&gate, gate_job, nullptr), nullptr), 0);
  px_sleep settle;
  ASSERT_EQ(px_runtime_block_on(rt, px_sleep_init(&settle, px_ms(5))), 0);
  ASSERT_EQ(px_runtime_spawn(rt, px_spawn_blocking_owned_init(&job, run_owned, new int(1),
                                                              free_owned),
                             nullptr),
            0);
  ASSERT_EQ(px_runtime_block_on(rt, px_sleep_init(&settle, px_ms(5))), 0);
  testing::internal::CaptureStderr();  // the abandoned gate job is reported
  px_runtime_free(rt);
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(g_runs.load(), 0);
  EXPECT_EQ(g_frees.load(), 1);
  g_gate = true;  // let the abandoned thread finish
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

}  // namespace
