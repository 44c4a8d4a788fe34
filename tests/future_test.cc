// The poll contract, wakers, errors and the small combinators, polled by hand
// (no runtime) so each step is visible.
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>

#include "tests/support.h"

namespace {

// A future that is PENDING `pending` times (waking by ref each time when
// asked to), then READY with `value`. Counts polls and drops.
struct Countdown {
  px_future base;
  int pending;
  int64_t value;
  int polls;
  int drops;
  bool self_wake;
};

px_poll countdown_poll(px_future *f, px_context *cx) {
  auto *c = reinterpret_cast<Countdown *>(f);
  c->polls++;
  if (c->pending > 0) {
    c->pending--;
    if (c->self_wake) px_waker_wake_by_ref(cx->waker);
    return PX_PENDING;
  }
  c->base.output = px_i64(c->value);
  return PX_READY;
}

void countdown_drop(px_future *f) { reinterpret_cast<Countdown *>(f)->drops++; }

const px_future_vtable countdown_vtable = {sizeof(Countdown), "countdown",
                                           countdown_poll, countdown_drop};

Countdown make_countdown(int pending, int64_t value) {
  Countdown c;
  std::memset(&c, 0, sizeof c);
  px_future_init(&c.base, &countdown_vtable);
  c.pending = pending;
  c.value = value;
  return c;
}

struct Manual : ::testing::Test {
  counting_waker cw{};
  px_waker waker{};
  px_context cx{};
  void SetUp() override {
    waker = counting_waker_make(&cw);
    cx.waker = &waker;
    cx.runtime = nullptr;
  }
  void TearDown() override { px_waker_drop(&waker); }
};

TEST_F(Manual, PollContractReadyOnceThenEdone) {
  Countdown c = make_countdown(2, 42);
  EXPECT_EQ(px_future_poll(&c.base, &cx), PX_PENDING);
  EXPECT_EQ(px_future_poll(&c.base, &cx), PX_PENDING);
  EXPECT_EQ(px_future_poll(&c.base, &cx), PX_READY);
  EXPECT_EQ(c.base.output.i64, 42);
  EXPECT_TRUE(px_future_is_done(&c.base));
  // Polling a completed future is a defined error and does not re-run it.
  EXPECT_EQ(px_future_poll(&c.base, &cx), PX_EDONE);
  EXPECT_EQ(c.polls, 3);
  EXPECT_EQ(c.base.output.i64, 42);
}

TEST_F(Manual, PollRejectsNullAndMissingVtable) {
  EXPECT_EQ(px_future_poll(nullptr, &cx), PX_EINVAL);
  Countdown c = make_countdown(0, 1);
  EXPECT_EQ(px_future_poll(&c.base, nullptr), PX_EINVAL);
  px_future bare;
  px_future_init(&bare, nullptr);
  EXPECT_EQ(px_future_poll(&bare, &cx), PX_EINVAL);
}

TEST_F(Manual, DropRunsOnceAndKeepsOutput) {
  Countdown c = make_countdown(0, 7);
  ASSERT_EQ(px_future_poll(&c.base, &cx), PX_READY);
  px_future_drop(&c.base);
  px_future_drop(&c.base);
  px_future_drop(nullptr);
  EXPECT_EQ(c.drops, 1);
  EXPECT_EQ(c.base.output.i64, 7);
  // A dropped future cannot be polled either.
  Countdown d = make_countdown(1, 0);
  px_future_drop(&d.base);
  EXPECT_EQ(px_future_poll(&d.base, &cx), PX_EDONE);
  EXPECT_EQ(d.polls, 0);
}

TEST_F(Manual, ReadyAndYield) {
  px_ready r;
  px_ready_init(&r, px_i64(5), PX_EIO);
  EXPECT_EQ(px_future_poll(&r.base, &cx), PX_READY);
  EXPECT_EQ(r.base.output.i64, 5);
  EXPECT_EQ(r.base.error, PX_EIO);

  px_yield y;
  px_yield_init(&y);
  EXPECT_EQ(px_future_poll(&y.base, &cx), PX_PENDING);
  EXPECT_EQ(cw.wakes_by_ref.load(), 1);  // it asked to be polled again
  EXPECT_EQ(px_future_poll(&y.base, &cx), PX_READY);
}

TEST_F(Manual, JoinKeepsArgumentOrderAndRecordsCompletionOrder) {
  Countdown a = make_countdown(3, 10), b = make_countdown(1, 20),
            c = make_countdown(2, 30);
  px_future *futs[] = {&a.base, &b.base, &c.base};
  size_t order[3] = {9, 9, 9};
  px_join j;
  px_join_init(&j, futs, 3, order);
  int r;
  int polls = 0;
  while ((r = px_future_poll(&j.base, &cx)) == PX_PENDING) polls++;
  EXPECT_EQ(r, PX_READY);
  EXPECT_EQ(polls, 3);
  EXPECT_EQ(j.base.output.u64, 3u);
  EXPECT_EQ(a.base.output.i64, 10);
  EXPECT_EQ(b.base.output.i64, 20);
  EXPECT_EQ(c.base.output.i64, 30);
  EXPECT_EQ(order[0], 1u);
  EXPECT_EQ(order[1], 2u);
  EXPECT_EQ(order[2], 0u);
  // Each child was dropped exactly once, as soon as it completed.
  px_future_drop(&j.base);
  EXPECT_EQ(a.drops + b.drops + c.drops, 3);
}

TEST_F(Manual, SelectFirstWinsLosersDropped) {
  Countdown a = make_countdown(5, 1), b = make_countdown(1, 2),
            c = make_countdown(1, 3);
  px_future *futs[] = {&a.base, &b.base, &c.base};
  px_select s;
  ASSERT_EQ(px_select_biased(px_select_init(&s, futs, 3)), &s.base);
  EXPECT_EQ(px_future_poll(&s.base, &cx), PX_PENDING);
  EXPECT_EQ(px_future_poll(&s.base, &cx), PX_READY);
  EXPECT_EQ(s.index, 1u);  // b and c tie; biased: the lower index wins
  EXPECT_EQ(s.base.output.i64, 2);
  EXPECT_EQ(a.drops, 1);
  EXPECT_EQ(b.drops, 1);
  EXPECT_EQ(c.drops, 1);
  EXPECT_FALSE(px_future_is_done(&a.base));
  px_future_drop(&s.base);
  EXPECT_EQ(a.drops + b.drops + c.drops, 3);  // no double drop
}

TEST_F(Manual, SelectWithNothingToWaitForIsAnError) {
  px_select s;
  px_select_init(&s, nullptr, 0);
  EXPECT_EQ(px_future_poll(&s.base, &cx), PX_READY);
  EXPECT_EQ(s.base.error, PX_EINVAL);
}

TEST_F(Manual, DroppingAnUnfinishedJoinDropsChildren) {
  Countdown a = make_countdown(5, 1), b = make_countdown(5, 2);
  px_future *futs[] = {&a.base, &b.base};
  px_join j;
  px_join_init(&j, futs, 2, nullptr);
  EXPECT_EQ(px_future_poll(&j.base, &cx), PX_PENDING);
  px_future_drop(&j.base);
  EXPECT_EQ(a.drops, 1);
  EXPECT_EQ(b.drops, 1);
}

TEST(Waker, CloneDropBalanceAndEmptyWaker) {
  counting_waker cw{};
  px_waker w = counting_waker_make(&cw);
  px_waker c1 = px_waker_clone(&w);
  px_waker c2 = px_waker_clone(&c1);
  EXPECT_TRUE(px_waker_will_wake(&w, &c2));
  px_waker_wake_by_ref(&c1);
  px_waker_wake(&c1);  // consumes
  EXPECT_TRUE(px_waker_is_empty(&c1));
  px_waker_wake(&c1);  // empty: no-op
  px_waker_drop(&c2);
  px_waker_drop(&w);
  EXPECT_EQ(cw.clones.load(), 3);
  EXPECT_EQ(cw.drops.load(), 3);
  EXPECT_EQ(cw.wakes.load(), 1);
  EXPECT_EQ(cw.wakes_by_ref.load(), 1);

  px_waker empty = PX_WAKER_EMPTY;
  px_waker e2 = px_waker_clone(&empty);
  EXPECT_TRUE(px_waker_is_empty(&e2));
  px_waker_drop(&empty);
  px_waker_wake_by_ref(&empty);
}

TEST(Waker, SetSkipsCloneForSameTarget) {
  counting_waker cw{};
  px_waker w = counting_waker_make(&cw);
  px_waker slot = PX_WAKER_EMPTY;
  px_waker_set(&slot, &w);
  px_waker_set(&slot, &w);
  EXPECT_EQ(cw.clones.load(), 2);  // make + one clone into the slot
  px_waker_drop(&slot);
  px_waker_drop(&w);
  EXPECT_EQ(cw.drops.load(), 2);
}

TEST(Waker, TakeMovesOutAndLeavesTheSlotEmpty) {
  counting_waker cw{};
  px_waker slot = counting_waker_make(&cw);
  px_waker w = px_waker_take(&slot);
  EXPECT_TRUE(px_waker_is_empty(&slot));
  EXPECT_FALSE(px_waker_is_empty(&w));
  px_waker again = px_waker_take(&slot);  // an empty slot gives an empty waker
  EXPECT_TRUE(px_waker_is_empty(&again));
  px_waker_wake(&w);
  // One reference, moved not cloned: the one wake released it.
  EXPECT_EQ(cw.clones.load(), 1);
  EXPECT_EQ(cw.wakes.load(), 1);
  EXPECT_EQ(cw.drops.load(), 1);
}

TEST(Waker, NoopWaker) {
  px_waker w = px_waker_noop();
  px_waker c = px_waker_clone(&w);
  px_waker_wake_by_ref(&c);
  px_waker_wake(&c);
  px_waker_drop(&w);
  SUCCEED();
}

TEST(Errors, EveryCodeHasANameAndAMessage) {
  std::set<std::string> names;
#define CHECK_CODE(name, value, msg)                                  \
  EXPECT_LT(PX_##name, 0);                                            \
  EXPECT_STREQ(px_err_name(PX_##name), #name);                        \
  EXPECT_STREQ(px_strerror(PX_##name), msg);                          \
  EXPECT_TRUE(names.insert(#name).second) << "duplicate " << #name;
  PX_ERRNO_MAP(CHECK_CODE)
#undef CHECK_CODE
  EXPECT_STREQ(px_strerror(0), "success");
  EXPECT_STREQ(px_strerror(-123456), "unknown error");
  EXPECT_STREQ(px_err_name(-123456), "UNKNOWN");
}

TEST(Errors, FromErrno) {
  EXPECT_EQ(px_err_from_errno(ECONNRESET), PX_ECONNRESET);
  EXPECT_EQ(px_err_from_errno(EWOULDBLOCK), PX_EAGAIN);
  EXPECT_EQ(px_err_from_errno(EINVAL), PX_EINVAL);
  EXPECT_EQ(px_err_from_errno(ENOTBLK), PX_EUNKNOWN);
}

}  // namespace
