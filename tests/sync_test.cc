// Channels (oneshot, mpsc, watch) and synchronization primitives (mutex,
// semaphore, notify): values and ordering, wake-ups, cancel-safety, FIFO
// fairness, cross-thread use, misuse errors, and no leaks.
//
// Many tests poll futures by hand with a counting waker and no runtime: the
// primitives need no runtime, and hand-polling makes the order of wake-ups
// exact. The rest run tasks on a runtime, some fed from std::threads.
#include <gtest/gtest.h>

#include <sched.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/support.h"
#include "tests/sync_support.h"

namespace {

// Every test runs under the counting allocator and must give back every byte.
struct Sync : ::testing::Test {
  void SetUp() override { counting_allocator_install(); }
  void TearDown() override {
    EXPECT_EQ(g_alloc.live_bytes.load(), 0) << "leaked bytes";
    EXPECT_EQ(g_alloc.live_blocks.load(), 0) << "leaked blocks";
    counting_allocator_remove();
  }
};

// Polls futures by hand with one counting waker.
struct Hand {
  counting_waker cw{};
  px_waker w;
  px_context cx;
  Hand() {
    w = counting_waker_make(&cw);
    cx.waker = &w;
    cx.runtime = nullptr;
  }
  ~Hand() { px_waker_drop(&w); }
  int poll(px_future *f) { return px_future_poll(f, &cx); }
  int wakes() const { return cw.wakes.load() + cw.wakes_by_ref.load(); }
  // Clones handed out and not yet woken or dropped (the Hand's own excluded).
  int held() const { return cw.clones.load() - cw.drops.load() - 1; }
};

// Tasks queue on a primitive in the order they first run. Only the FIFO
// executor runs them in spawn order; others (work stealing) may not, so the
// runtime tests check arrival order there only (hand-polled tests check
// FIFO fairness exactly, on every build).
bool RunsInSpawnOrder() {
  return built_with("executor=fifo");
}

// A runtime for the tests that need one, created under the counting allocator.
struct SyncRt : Sync {
  px_runtime *rt = nullptr;
  void SetUp() override {
    Sync::SetUp();
    ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
  }
  void TearDown() override {
    px_runtime_free(rt);
    Sync::TearDown();
  }
};

TEST(SyncErrors, ClosedHasANameAndAMessage) {
  EXPECT_STREQ(px_err_name(PX_ECLOSED), "ECLOSED");
  EXPECT_STREQ(px_strerror(PX_ECLOSED), "channel closed");
}

// ---- oneshot ------------------------------------------------------------

TEST_F(Sync, OneshotSendThenRecv) {
  px_oneshot_sender *tx;
  px_oneshot_receiver *rx;
  ASSERT_EQ(px_oneshot_new(&tx, &rx), 0);
  px_value v;
  EXPECT_EQ(px_oneshot_try_recv(rx, &v), PX_EAGAIN);
  EXPECT_EQ(px_oneshot_send(tx, px_i64(42)), 0);
  EXPECT_EQ(px_oneshot_send(tx, px_i64(43)), PX_EINVAL);  // only once
  Hand h;
  px_oneshot_recv r;
  ASSERT_EQ(h.poll(px_oneshot_recv_init(&r, rx)), PX_READY);
  EXPECT_EQ(r.base.error, 0);
  EXPECT_EQ(r.base.output.i64, 42);
  px_future_drop(&r.base);
  EXPECT_EQ(px_oneshot_try_recv(rx, &v), PX_ECLOSED);  // the one value is gone
  px_oneshot_sender_drop(tx);
  px_oneshot_receiver_drop(rx);
}

TEST_F(Sync, OneshotRecvWaitsAndIsWoken) {
  px_oneshot_sender *tx;
  px_oneshot_receiver *rx;
  ASSERT_EQ(px_oneshot_new(&tx, &rx), 0);
  Hand h;
  px_oneshot_recv r;
  px_oneshot_recv_init(&r, rx);
  ASSERT_EQ(h.poll(&r.base), PX_PENDING);
  ASSERT_EQ(h.poll(&r.base), PX_PENDING);  // re-poll keeps one waker
  EXPECT_EQ(h.wakes(), 0);
  EXPECT_EQ(h.held(), 1);
  EXPECT_EQ(px_oneshot_send(tx, px_i64(7)), 0);
  EXPECT_EQ(h.wakes(), 1);
  ASSERT_EQ(h.poll(&r.base), PX_READY);
  EXPECT_EQ(r.base.output.i64, 7);
  px_future_drop(&r.base);
  px_oneshot_receiver_drop(rx);
  px_oneshot_sender_drop(tx);
  EXPECT_EQ(h.held(), 0);
}

TEST_F(Sync, OneshotReceiverLearnsSenderDropped) {
  px_oneshot_sender *tx;
  px_oneshot_receiver *rx;
  ASSERT_EQ(px_oneshot_new(&tx, &rx), 0);
  Hand h;
  px_oneshot_recv r;
  px_oneshot_recv_init(&r, rx);
  ASSERT_EQ(h.poll(&r.base), PX_PENDING);
  px_oneshot_sender_drop(tx);
  EXPECT_EQ(h.wakes(), 1);
  ASSERT_EQ(h.poll(&r.base), PX_READY);
  EXPECT_EQ(r.base.error, PX_ECLOSED);
  px_future_drop(&r.base);
  px_oneshot_receiver_drop(rx);
}

TEST_F(Sync, OneshotSenderLearnsReceiverDropped) {
  px_oneshot_sender *tx;
  px_oneshot_receiver *rx;
  ASSERT_EQ(px_oneshot_new(&tx, &rx), 0);
  EXPECT_FALSE(px_oneshot_sender_is_closed(tx));
  px_oneshot_receiver_drop(rx);
  EXPECT_TRUE(px_oneshot_sender_is_closed(tx));
  EXPECT_EQ(px_oneshot_send(tx, px_i64(1)), PX_ECLOSED);
  px_oneshot_sender_drop(tx);
}

TEST_F(Sync, OneshotValueSentBeforeSenderDropIsStillReceived) {
  px_oneshot_sender *tx;
  px_oneshot_receiver *rx;
  ASSERT_EQ(px_oneshot_new(&tx, &rx), 0);
  ASSERT_EQ(px_oneshot_send(tx, px_i64(5)), 0);
  px_oneshot_sender_drop(tx);
  px_value v;
  EXPECT_EQ(px_oneshot_try_recv(rx, &v), 0);
  EXPECT_EQ(v.i64, 5);
  px_oneshot_receiver_drop(rx);
}

TEST_F(Sync, OneshotMisuse) {
  px_oneshot_sender *tx;
  px_oneshot_receiver *rx;
  EXPECT_EQ(px_oneshot_new(nullptr, &rx), PX_EINVAL);
  EXPECT_EQ(px_oneshot_new(&tx, nullptr), PX_EINVAL);
  EXPECT_EQ(px_oneshot_send(nullptr, px_i64(1)), PX_EINVAL);
  px_value v;
  EXPECT_EQ(px_oneshot_try_recv(nullptr, &v), PX_EINVAL);
  EXPECT_TRUE(px_oneshot_sender_is_closed(nullptr));
  px_oneshot_sender_drop(nullptr);
  px_oneshot_receiver_drop(nullptr);
  EXPECT_EQ(px_oneshot_recv_init(nullptr, nullptr), nullptr);
  Hand h;
  px_oneshot_recv r;
  ASSERT_EQ(h.poll(px_oneshot_recv_init(&r, nullptr)), PX_READY);
  EXPECT_EQ(r.base.error, PX_EINVAL);
  EXPECT_EQ(h.poll(&r.base), PX_EDONE);  // use after completion
}

TEST_F(SyncRt, OneshotAcrossTasksWithASleep) {
  px_oneshot_sender *tx;
  px_oneshot_receiver *rx;
  ASSERT_EQ(px_oneshot_new(&tx, &rx), 0);
  oneshot_sender_task s;
  oneshot_sender_task_new(&s, tx, px_ms(5), 99);
  ASSERT_EQ(px_runtime_spawn(rt, &s.px.base, nullptr), 0);
  oneshot_waiter w;
  oneshot_waiter_new(&w, rx);
  EXPECT_EQ(px_runtime_block_on(rt, &w.px.base), 0);
  EXPECT_EQ(w.px.base.output.i64, 99);
  px_oneshot_receiver_drop(rx);
}

TEST_F(SyncRt, OneshotCancelledRecvLosesNothing) {
  px_oneshot_sender *tx;
  px_oneshot_receiver *rx;
  ASSERT_EQ(px_oneshot_new(&tx, &rx), 0);
  px_oneshot_recv r;
  px_timeout to;
  EXPECT_EQ(px_runtime_block_on(
                rt, px_timeout_init(&to, px_oneshot_recv_init(&r, rx), px_ms(2))),
            PX_ETIMEDOUT);
  ASSERT_EQ(px_oneshot_send(tx, px_i64(3)), 0);
  px_oneshot_sender_drop(tx);
  oneshot_waiter w;
  oneshot_waiter_new(&w, rx);
  EXPECT_EQ(px_runtime_block_on(rt, &w.px.base), 0);
  EXPECT_EQ(w.px.base.output.i64, 3);
  px_oneshot_receiver_drop(rx);
}

TEST_F(SyncRt, OneshotFromAnotherThread) {
  px_oneshot_sender *tx;
  px_oneshot_receiver *rx;
  ASSERT_EQ(px_oneshot_new(&tx, &rx), 0);
  std::thread t([tx] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    px_oneshot_send(tx, px_i64(1234));
    px_oneshot_sender_drop(tx);
  });
  oneshot_waiter w;
  oneshot_waiter_new(&w, rx);
  EXPECT_EQ(px_runtime_block_on(rt, &w.px.base), 0);
  EXPECT_EQ(w.px.base.output.i64, 1234);
  t.join();
  px_oneshot_receiver_drop(rx);
}

// ---- mpsc -----------------------------------------------------------------

TEST_F(Sync, MpscBoundedTrySendAndTryRecvInOrder) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(3, &tx, &rx), 0);
  for (int round = 0; round < 3; round++) {  // wraps the ring around
    for (int i = 0; i < 3; i++) EXPECT_EQ(px_mpsc_try_send(tx, px_i64(i)), 0);
    EXPECT_EQ(px_mpsc_try_send(tx, px_i64(9)), PX_EAGAIN);  // full
    EXPECT_EQ(px_mpsc_len(rx), 3u);
    px_value v;
    for (int i = 0; i < 3; i++) {
      ASSERT_EQ(px_mpsc_try_recv(rx, &v), 0);
      EXPECT_EQ(v.i64, i);
    }
    EXPECT_EQ(px_mpsc_try_recv(rx, &v), PX_EAGAIN);
  }
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
}

// Values sent and received so far, in order.
struct MpscOrder {
  int in = 0, out = 0;
};

// Sends 10 values and receives 7, so the ring is wrapped when it grows,
// then sends until `queued` values wait.
static void mpsc_wrap_then_fill(px_mpsc_sender *tx, px_mpsc_receiver *rx,
                                size_t queued, MpscOrder *o) {
  px_value v;
  for (int i = 0; i < 10; i++) ASSERT_EQ(px_mpsc_try_send(tx, px_i64(o->in++)), 0);
  for (int i = 0; i < 7; i++) {
    ASSERT_EQ(px_mpsc_try_recv(rx, &v), 0);
    EXPECT_EQ(v.i64, o->out++);
  }
  while (px_mpsc_len(rx) < queued) ASSERT_EQ(px_mpsc_try_send(tx, px_i64(o->in++)), 0);
}

// Receives everything queued: each value once, in the order sent.
static void mpsc_drain_in_order(px_mpsc_receiver *rx, MpscOrder *o) {
  px_value v;
  while (px_mpsc_try_recv(rx, &v) == 0) EXPECT_EQ(v.i64, o->out++);
  EXPECT_EQ(o->out, o->in);
}

TEST_F(Sync, MpscUnboundedGrowsAndKeepsOrder) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_unbounded(&tx, &rx), 0);
  MpscOrder o;
  mpsc_wrap_then_fill(tx, rx, 1003, &o);
  mpsc_drain_in_order(rx, &o);
  px_mpsc_sender_drop(tx);
  px_value v;
  EXPECT_EQ(px_mpsc_try_recv(rx, &v), PX_ECLOSED);
  px_mpsc_receiver_drop(rx);
}

TEST_F(Sync, MpscUnboundedOutOfMemoryIsAnError) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_unbounded(&tx, &rx), 0);
  for (int i = 0; i < 16; i++) ASSERT_EQ(px_mpsc_try_send(tx, px_i64(i)), 0);
  g_alloc.fail_at.store(1);  // the growth fails
  EXPECT_EQ(px_mpsc_try_send(tx, px_i64(16)), PX_ENOMEM);
  EXPECT_EQ(px_mpsc_try_send(tx, px_i64(16)), 0);  // the next one may grow
  EXPECT_EQ(px_mpsc_len(rx), 17u);
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
}

TEST_F(Sync, MpscBoundedRingGrowsToItsBoundAndKeepsOrder) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  // A bound far above what is queued costs only what is queued: the ring
  // starts small (tokio's benchmarks make channels of 1,000,000).
  ASSERT_EQ(px_mpsc_channel(1000000, &tx, &rx), 0);
  EXPECT_LT(g_alloc.live_bytes.load(), 4096);
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);

  ASSERT_EQ(px_mpsc_channel(40, &tx, &rx), 0);
  MpscOrder o;
  mpsc_wrap_then_fill(tx, rx, 40, &o);  // grows 16 -> 32 -> 40, wrapped
  EXPECT_EQ(px_mpsc_try_send(tx, px_i64(-1)), PX_EAGAIN);  // full at the bound
  mpsc_drain_in_order(rx, &o);
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
}

TEST_F(Sync, MpscBoundedGrowthOutOfMemoryKeepsThePermit) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(20, &tx, &rx), 0);
  for (int i = 0; i < 16; i++) ASSERT_EQ(px_mpsc_try_send(tx, px_i64(i)), 0);
  g_alloc.fail_at.store(1);  // the growth fails: no value, no permit taken
  EXPECT_EQ(px_mpsc_try_send(tx, px_i64(16)), PX_ENOMEM);
  px_mpsc_send s;
  Hand h;
  g_alloc.fail_at.store(1);  // the same through the send future
  ASSERT_EQ(h.poll(px_mpsc_send_init(&s, tx, px_i64(16))), PX_READY);
  EXPECT_EQ(s.base.error, PX_ENOMEM);
  px_future_drop(&s.base);
  EXPECT_EQ(px_mpsc_len(rx), 16u);
  // All 20 slots are still there.
  for (int i = 16; i < 20; i++) ASSERT_EQ(px_mpsc_try_send(tx, px_i64(i)), 0);
  EXPECT_EQ(px_mpsc_try_send(tx, px_i64(20)), PX_EAGAIN);
  px_value v;
  for (int i = 0; i < 20; i++) {
    ASSERT_EQ(px_mpsc_try_recv(rx, &v), 0);
    EXPECT_EQ(v.i64, i);
  }
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
}

TEST_F(Sync, MpscRecvClosedAfterAllSendersDroppedAndDrained) {
  px_mpsc_sender *tx, *tx2;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(4, &tx, &rx), 0);
  ASSERT_EQ(px_mpsc_sender_clone(tx, &tx2), 0);
  ASSERT_EQ(px_mpsc_try_send(tx, px_i64(1)), 0);
  ASSERT_EQ(px_mpsc_try_send(tx2, px_i64(2)), 0);
  px_mpsc_sender_drop(tx);
  Hand h;
  px_mpsc_recv r;
  for (int want = 1; want <= 2; want++) {
    ASSERT_EQ(h.poll(px_mpsc_recv_init(&r, rx)), PX_READY);
    EXPECT_EQ(r.base.output.i64, want);
    px_future_drop(&r.base);
  }
  px_mpsc_recv_init(&r, rx);
  ASSERT_EQ(h.poll(&r.base), PX_PENDING);  // tx2 is still alive
  px_mpsc_sender_drop(tx2);
  EXPECT_EQ(h.wakes(), 1);
  ASSERT_EQ(h.poll(&r.base), PX_READY);
  EXPECT_EQ(r.base.error, PX_ECLOSED);
  px_future_drop(&r.base);
  px_mpsc_receiver_drop(rx);
}

TEST_F(Sync, MpscReceiverCloseStopsSendsButDrains) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(1, &tx, &rx), 0);
  ASSERT_EQ(px_mpsc_try_send(tx, px_i64(1)), 0);
  Hand h;
  px_mpsc_send s;
  px_mpsc_send_init(&s, tx, px_i64(2));
  ASSERT_EQ(h.poll(&s.base), PX_PENDING);  // full: waits
  ASSERT_EQ(px_mpsc_receiver_close(rx), 0);
  EXPECT_EQ(h.wakes(), 1);                 // the waiting sender learns it
  ASSERT_EQ(h.poll(&s.base), PX_READY);
  EXPECT_EQ(s.base.error, PX_ECLOSED);
  px_future_drop(&s.base);
  EXPECT_EQ(px_mpsc_try_send(tx, px_i64(3)), PX_ECLOSED);  // send after close
  px_value v;
  ASSERT_EQ(px_mpsc_try_recv(rx, &v), 0);
  EXPECT_EQ(v.i64, 1);
  EXPECT_EQ(px_mpsc_try_recv(rx, &v), PX_ECLOSED);
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
  EXPECT_EQ(h.held(), 0);
}

TEST_F(Sync, MpscReceiverDropClosesForSenders) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_unbounded(&tx, &rx), 0);
  ASSERT_EQ(px_mpsc_try_send(tx, px_i64(1)), 0);
  px_mpsc_receiver_drop(rx);
  EXPECT_EQ(px_mpsc_try_send(tx, px_i64(2)), PX_ECLOSED);
  Hand h;
  px_mpsc_send s;
  ASSERT_EQ(h.poll(px_mpsc_send_init(&s, tx, px_i64(3))), PX_READY);
  EXPECT_EQ(s.base.error, PX_ECLOSED);
  px_future_drop(&s.base);
  px_mpsc_sender_drop(tx);
}

TEST_F(Sync, MpscWaitingSendersGetRoomInFifoOrder) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(1, &tx, &rx), 0);
  ASSERT_EQ(px_mpsc_try_send(tx, px_i64(0)), 0);
  Hand ha, hb;
  px_mpsc_send a, b;
  px_mpsc_send_init(&a, tx, px_i64(1));
  px_mpsc_send_init(&b, tx, px_i64(2));
  ASSERT_EQ(ha.poll(&a.base), PX_PENDING);
  ASSERT_EQ(hb.poll(&b.base), PX_PENDING);
  EXPECT_EQ(px_mpsc_try_send(tx, px_i64(9)), PX_EAGAIN);  // no barging
  px_value v;
  ASSERT_EQ(px_mpsc_try_recv(rx, &v), 0);
  EXPECT_EQ(v.i64, 0);
  EXPECT_EQ(ha.wakes(), 1);  // the room goes to the first waiter only
  EXPECT_EQ(hb.wakes(), 0);
  EXPECT_EQ(hb.poll(&b.base), PX_PENDING);  // b cannot overtake a
  EXPECT_EQ(px_mpsc_try_send(tx, px_i64(9)), PX_EAGAIN);  // promised to a
  ASSERT_EQ(ha.poll(&a.base), PX_READY);
  EXPECT_EQ(a.base.error, 0);
  ASSERT_EQ(px_mpsc_try_recv(rx, &v), 0);
  EXPECT_EQ(v.i64, 1);
  EXPECT_EQ(hb.wakes(), 1);
  ASSERT_EQ(hb.poll(&b.base), PX_READY);
  ASSERT_EQ(px_mpsc_try_recv(rx, &v), 0);
  EXPECT_EQ(v.i64, 2);
  px_future_drop(&a.base);
  px_future_drop(&b.base);
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
}

TEST_F(Sync, MpscDroppedSendSendsNothingAndPassesItsRoomOn) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(1, &tx, &rx), 0);
  ASSERT_EQ(px_mpsc_try_send(tx, px_i64(0)), 0);
  Hand ha, hb, hc;
  px_mpsc_send a, b, c;
  px_mpsc_send_init(&a, tx, px_i64(1));
  px_mpsc_send_init(&b, tx, px_i64(2));
  px_mpsc_send_init(&c, tx, px_i64(3));
  ASSERT_EQ(ha.poll(&a.base), PX_PENDING);
  ASSERT_EQ(hb.poll(&b.base), PX_PENDING);
  ASSERT_EQ(hc.poll(&c.base), PX_PENDING);
  px_future_drop(&b.base);  // cancelled while queued: just leaves the queue
  px_value v;
  ASSERT_EQ(px_mpsc_try_recv(rx, &v), 0);
  EXPECT_EQ(ha.wakes(), 1);
  px_future_drop(&a.base);  // cancelled after being handed the room
  EXPECT_EQ(hc.wakes(), 1);  // ... which goes to c
  ASSERT_EQ(hc.poll(&c.base), PX_READY);
  ASSERT_EQ(px_mpsc_try_recv(rx, &v), 0);
  EXPECT_EQ(v.i64, 3);  // neither 1 nor 2 was sent
  EXPECT_EQ(px_mpsc_try_recv(rx, &v), PX_EAGAIN);
  px_future_drop(&c.base);
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
  EXPECT_EQ(ha.held() + hb.held() + hc.held(), 0);
}

TEST_F(SyncRt, MpscCancelledRecvLosesNothing) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(2, &tx, &rx), 0);
  // A recv that loses a select against a sleep is dropped while pending.
  px_mpsc_recv r;
  px_sleep nap;
  px_future *both[] = {px_mpsc_recv_init(&r, rx), px_sleep_init(&nap, px_ms(2))};
  px_select sel;
  ASSERT_EQ(px_runtime_block_on(rt, px_select_init(&sel, both, 2)), 0);
  EXPECT_EQ(sel.index, 1u);
  ASSERT_EQ(px_mpsc_try_send(tx, px_i64(11)), 0);
  // And a recv cancelled by a timeout.
  px_mpsc_recv r2;
  px_mpsc_recv_init(&r2, rx);
  px_value v;
  ASSERT_EQ(px_mpsc_try_recv(rx, &v), 0);  // drain so r2 must wait
  EXPECT_EQ(v.i64, 11);
  px_timeout to;
  EXPECT_EQ(px_runtime_block_on(rt, px_timeout_init(&to, &r2.base, px_ms(2))),
            PX_ETIMEDOUT);
  ASSERT_EQ(px_mpsc_try_send(tx, px_i64(12)), 0);
  px_mpsc_recv r3;
  ASSERT_EQ(px_runtime_block_on(rt, px_mpsc_recv_init(&r3, rx)), 0);
  EXPECT_EQ(r3.base.output.i64, 12);
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
}

TEST_F(SyncRt, MpscTasksProduceAndConsumeInOrder) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(2, &tx, &rx), 0);
  const int kProducers = 3, kEach = 200;
  for (int p = 0; p < kProducers; p++) {
    px_mpsc_sender *mine;
    ASSERT_EQ(px_mpsc_sender_clone(tx, &mine), 0);
    mpsc_producer prod;
    mpsc_producer_new(&prod, mine, p * 100000, kEach);
    ASSERT_EQ(px_runtime_spawn(rt, &prod.px.base, nullptr), 0);
  }
  px_mpsc_sender_drop(tx);
  std::vector<int64_t> log(kProducers * kEach);
  mpsc_summer sum;
  mpsc_summer_new(&sum, rx, log.data());
  ASSERT_EQ(px_runtime_block_on(rt, &sum.px.base), 0);
  ASSERT_EQ(sum.px.base.output.i64, kProducers * kEach);
  // Each producer's values arrive in the order it sent them.
  int64_t next[kProducers] = {0, 0, 0};
  for (int64_t x : log) {
    int p = static_cast<int>(x / 100000);
    EXPECT_EQ(x % 100000, next[p]++);
  }
  px_mpsc_receiver_drop(rx);
}

// 4 threads x 10,000 values into a runtime task: two threads use try_send
// (spinning when full), two use the blocking send.
TEST_F(SyncRt, MpscManyThreadsIntoOneRuntimeTask) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(64, &tx, &rx), 0);
  const int kThreads = 4, kEach = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    px_mpsc_sender *mine;
    ASSERT_EQ(px_mpsc_sender_clone(tx, &mine), 0);
    threads.emplace_back([mine, t] {
      for (int i = 1; i <= kEach; i++) {
        px_value v = px_i64(static_cast<int64_t>(t) * kEach + i);
        if (t % 2 == 0) {
          int rc;
          while ((rc = px_mpsc_try_send(mine, v)) == PX_EAGAIN) sched_yield();
          ASSERT_EQ(rc, 0);
        } else {
          ASSERT_EQ(px_mpsc_send_blocking(mine, v), 0);
        }
      }
      px_mpsc_sender_drop(mine);
    });
  }
  px_mpsc_sender_drop(tx);
  mpsc_summer sum;
  mpsc_summer_new(&sum, rx, nullptr);
  ASSERT_EQ(px_runtime_block_on(rt, &sum.px.base), 0);
  for (auto &th : threads) th.join();
  const int64_t n = int64_t{kThreads} * kEach;
  EXPECT_EQ(sum.count, n);
  EXPECT_EQ(sum.sum, n * (n + 1) / 2);
  px_mpsc_receiver_drop(rx);
}

TEST_F(SyncRt, MpscBlockingRecvOnAPlainThread) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(1, &tx, &rx), 0);
  int64_t got = 0, count = 0;
  std::thread t([rx, &got, &count] {
    px_value v;
    int rc;
    while ((rc = px_mpsc_recv_blocking(rx, &v)) == 0) {
      got += v.i64;
      count++;
    }
    EXPECT_EQ(rc, PX_ECLOSED);
  });
  mpsc_producer prod;
  mpsc_producer_new(&prod, tx, 1, 100);  // the producer drops tx at the end
  ASSERT_EQ(px_runtime_block_on(rt, &prod.px.base), 0);
  t.join();
  EXPECT_EQ(count, 100);
  EXPECT_EQ(got, 100 * 101 / 2);
  px_mpsc_receiver_drop(rx);
}

TEST_F(SyncRt, MpscBlockingCallsRefuseOnARuntimeThread) {
  px_mpsc_sender *tx;
  px_mpsc_receiver *rx;
  ASSERT_EQ(px_mpsc_channel(1, &tx, &rx), 0);
  EXPECT_EQ(px_mpsc_send_blocking(tx, px_i64(1)), 0);  // not a runtime thread
  px_value v;
  EXPECT_EQ(px_mpsc_recv_blocking(rx, &v), 0);
  EXPECT_EQ(v.i64, 1);
  px_mpsc_sender_drop(tx);
  px_mpsc_receiver_drop(rx);
  // Inside block_on, the blocking calls would deadlock the runtime.
  struct Probe {
    px_future base;
  };
  static const px_future_vtable vt = {
      sizeof(Probe), "probe",
      [](px_future *self, px_context *) -> px_poll {
        px_mpsc_sender *t2;
        px_mpsc_receiver *r2;
        px_mpsc_channel(1, &t2, &r2);
        px_value v2;
        int a = px_mpsc_send_blocking(t2, px_i64(1));
        int b = px_mpsc_recv_blocking(r2, &v2);
        px_mpsc_sender_drop(t2);
        px_mpsc_receiver_drop(r2);
        self->output = px_i64(a == PX_EBUSY && b == PX_EBUSY);
        return PX_READY;
      },
      nullptr};
  Probe p;
  px_future_init(&p.base, &vt);
  ASSERT_EQ(px_runtime_block_on(rt, &p.base), 0);
  EXPECT_EQ(p.base.output.i64, 1);
}

TEST_F(Sync, MpscMisuse) {
  px_mpsc_sender *tx = nullptr;
  px_mpsc_receiver *rx = nullptr;
  EXPECT_EQ(px_mpsc_channel(0, &tx, &rx), PX_EINVAL);
  EXPECT_EQ(tx, nullptr);
  EXPECT_EQ(px_mpsc_channel(1, nullptr, &rx), PX_EINVAL);
  EXPECT_EQ(px_mpsc_unbounded(&tx, nullptr), PX_EINVAL);
  EXPECT_EQ(px_mpsc_try_send(nullptr, px_i64(1)), PX_EINVAL);
  EXPECT_EQ(px_mpsc_send_blocking(nullptr, px_i64(1)), PX_EINVAL);
  px_value v;
  EXPECT_EQ(px_mpsc_try_recv(nullptr, &v), PX_EINVAL);
  EXPECT_EQ(px_mpsc_recv_blocking(nullptr, &v), PX_EINVAL);
  EXPECT_EQ(px_mpsc_receiver_close(nullptr), PX_EINVAL);
  EXPECT_EQ(px_mpsc_sender_clone(nullptr, &tx), PX_EINVAL);
  EXPECT_EQ(px_mpsc_len(nullptr), 0u);
  px_mpsc_sender_drop(nullptr);
  px_mpsc_receiver_drop(nullptr);
  Hand h;
  px_mpsc_send s;
  ASSERT_EQ(h.poll(px_mpsc_send_init(&s, nullptr, px_i64(1))), PX_READY);
  EXPECT_EQ(s.base.error, PX_EINVAL);
  px_mpsc_recv r;
  ASSERT_EQ(h.poll(px_mpsc_recv_init(&r, nullptr)), PX_READY);
  EXPECT_EQ(r.base.error, PX_EINVAL);
  EXPECT_EQ(h.poll(&r.base), PX_EDONE);
}

// ---- mutex ------------------------------------------------------------------

TEST_F(Sync, MutexHandsOffInFifoOrder) {
  px_mutex *m;
  ASSERT_EQ(px_mutex_new(&m), 0);
  ASSERT_EQ(px_mutex_try_lock(m), 0);
  EXPECT_EQ(px_mutex_try_lock(m), PX_EBUSY);
  Hand h[3];
  px_mutex_lock l[3];
  for (int i = 0; i < 3; i++) {
    px_mutex_lock_init(&l[i], m);
    ASSERT_EQ(h[i].poll(&l[i].base), PX_PENDING);
  }
  EXPECT_EQ(px_mutex_free(m), PX_EBUSY);  // futures wait on it
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(px_mutex_unlock(m), 0);  // ownership goes to waiter i
    for (int j = 0; j < 3; j++) EXPECT_EQ(h[j].wakes(), j <= i ? 1 : 0);
    EXPECT_EQ(px_mutex_try_lock(m), PX_EBUSY);  // nobody barges in
    for (int j = i + 1; j < 3; j++) EXPECT_EQ(h[j].poll(&l[j].base), PX_PENDING);
    ASSERT_EQ(h[i].poll(&l[i].base), PX_READY);
    EXPECT_EQ(l[i].base.error, 0);
    px_future_drop(&l[i].base);  // completed: dropping keeps the lock
    EXPECT_EQ(px_mutex_try_lock(m), PX_EBUSY);
  }
  ASSERT_EQ(px_mutex_unlock(m), 0);
  EXPECT_EQ(px_mutex_unlock(m), PX_EINVAL);  // not locked
  EXPECT_EQ(px_mutex_free(m), 0);
}

TEST_F(Sync, MutexDroppedWaiterPassesOwnershipOn) {
  px_mutex *m;
  ASSERT_EQ(px_mutex_new(&m), 0);
  ASSERT_EQ(px_mutex_try_lock(m), 0);
  Hand ha, hb;
  px_mutex_lock a, b;
  ASSERT_EQ(ha.poll(px_mutex_lock_init(&a, m)), PX_PENDING);
  ASSERT_EQ(hb.poll(px_mutex_lock_init(&b, m)), PX_PENDING);
  ASSERT_EQ(px_mutex_unlock(m), 0);  // a owns it now, without knowing
  px_future_drop(&a.base);            // a is cancelled: b gets it
  EXPECT_EQ(hb.wakes(), 1);
  ASSERT_EQ(hb.poll(&b.base), PX_READY);
  px_future_drop(&b.base);
  ASSERT_EQ(px_mutex_unlock(m), 0);
  ASSERT_EQ(px_mutex_try_lock(m), 0);  // and nobody holds it afterwards
  ASSERT_EQ(px_mutex_unlock(m), 0);
  // A queued waiter that is cancelled simply leaves.
  ASSERT_EQ(px_mutex_try_lock(m), 0);
  px_mutex_lock c;
  Hand hc;
  ASSERT_EQ(hc.poll(px_mutex_lock_init(&c, m)), PX_PENDING);
  px_future_drop(&c.base);
  ASSERT_EQ(px_mutex_unlock(m), 0);
  EXPECT_EQ(hc.wakes(), 0);
  EXPECT_EQ(ha.held() + hb.held() + hc.held(), 0);
  EXPECT_EQ(px_mutex_free(m), 0);
}

TEST_F(SyncRt, MutexTasksRunTheirCriticalSectionsInArrivalOrder) {
  px_mutex *m;
  ASSERT_EQ(px_mutex_new(&m), 0);
  int log[8];
  px__atomic(int) len{0}, inside{0}, overlaps{0};
  px_join_handle jh[5];
  std::vector<px_future *> futs;
  for (int i = 0; i < 5; i++) {
    locker l;
    locker_new(&l, m, i, 3, log, &len, &inside, &overlaps);
    ASSERT_EQ(px_runtime_spawn(rt, &l.px.base, &jh[i]), 0);
    futs.push_back(&jh[i].base);
  }
  px_join j;
  ASSERT_EQ(px_runtime_block_on(rt, px_join_init(&j, futs.data(), 5, nullptr)), 0);
  ASSERT_EQ(len.load(), 5);
  if (RunsInSpawnOrder()) {
    for (int i = 0; i < 5; i++) EXPECT_EQ(log[i], i);
  }
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(px_mutex_free(m), 0);
}

TEST_F(SyncRt, MutexCancelledLockViaTimeout) {
  px_mutex *m;
  ASSERT_EQ(px_mutex_new(&m), 0);
  ASSERT_EQ(px_mutex_try_lock(m), 0);
  px_mutex_lock l;
  px_timeout to;
  EXPECT_EQ(px_runtime_block_on(
                rt, px_timeout_init(&to, px_mutex_lock_init(&l, m), px_ms(2))),
            PX_ETIMEDOUT);
  ASSERT_EQ(px_mutex_unlock(m), 0);
  EXPECT_EQ(px_mutex_try_lock(m), 0);  // the cancelled waiter took nothing
  ASSERT_EQ(px_mutex_unlock(m), 0);
  EXPECT_EQ(px_mutex_free(m), 0);
}

// Threads lock with try_lock (spinning), a runtime task with the lock future:
// the counter the mutex guards is a plain long, so tsan checks the hand-off.
TEST_F(SyncRt, MutexSharedBetweenThreadsAndATask) {
  px_mutex *m;
  ASSERT_EQ(px_mutex_new(&m), 0);
  long counter = 0;
  const int kThreads = 2, kRounds = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([m, &counter] {
      for (int i = 0; i < kRounds; i++) {
        while (px_mutex_try_lock(m) == PX_EBUSY) sched_yield();
        counter++;
        ASSERT_EQ(px_mutex_unlock(m), 0);
      }
    });
  }
  mutex_counter mc;
  mutex_counter_new(&mc, m, kRounds, &counter);
  ASSERT_EQ(px_runtime_block_on(rt, &mc.px.base), 0);
  for (auto &th : threads) th.join();
  EXPECT_EQ(counter, long{kThreads + 1} * kRounds);
  EXPECT_EQ(px_mutex_free(m), 0);
}

// Eight tasks (spread over the workers of a multi-threaded executor) hold
// the lock across a yield: a lost update would show in the count.
TEST_F(SyncRt, MutexManyTasksLoseNoUpdate) {
  px_mutex *m;
  ASSERT_EQ(px_mutex_new(&m), 0);
  long counter = 0;
  const int kTasks = 8, kRounds = 300;
  px_join_handle jh[kTasks];
  std::vector<px_future *> futs;
  for (int i = 0; i < kTasks; i++) {
    mutex_counter mc;
    mutex_counter_new(&mc, m, kRounds, &counter);
    ASSERT_EQ(px_runtime_spawn(rt, &mc.px.base, &jh[i]), 0);
    futs.push_back(&jh[i].base);
  }
  px_join j;
  ASSERT_EQ(px_runtime_block_on(rt, px_join_init(&j, futs.data(), kTasks, nullptr)), 0);
  EXPECT_EQ(counter, long{kTasks} * kRounds);
  EXPECT_EQ(px_mutex_free(m), 0);
}

TEST_F(Sync, MutexMisuse) {
  EXPECT_EQ(px_mutex_new(nullptr), PX_EINVAL);
  EXPECT_EQ(px_mutex_free(nullptr), PX_EINVAL);
  EXPECT_EQ(px_mutex_try_lock(nullptr), PX_EINVAL);
  EXPECT_EQ(px_mutex_unlock(nullptr), PX_EINVAL);
  EXPECT_EQ(px_mutex_lock_init(nullptr, nullptr), nullptr);
  Hand h;
  px_mutex_lock l;
  ASSERT_EQ(h.poll(px_mutex_lock_init(&l, nullptr)), PX_READY);
  EXPECT_EQ(l.base.error, PX_EINVAL);
  EXPECT_EQ(h.poll(&l.base), PX_EDONE);
}

// ---- semaphore ----------------------------------------------------------------

TEST_F(Sync, SemaphoreTryAcquireAndRelease) {
  px_semaphore *s;
  ASSERT_EQ(px_semaphore_new(&s, 3), 0);
  EXPECT_EQ(px_semaphore_try_acquire(s, 2), 0);
  EXPECT_EQ(px_semaphore_available(s), 1u);
  EXPECT_EQ(px_semaphore_try_acquire(s, 2), PX_EAGAIN);
  EXPECT_EQ(px_semaphore_try_acquire(s, 0), 0);
  EXPECT_EQ(px_semaphore_release(s, 2), 0);
  EXPECT_EQ(px_semaphore_available(s), 3u);
  EXPECT_EQ(px_semaphore_release(s, PX_SEMAPHORE_MAX_PERMITS), PX_EINVAL);
  EXPECT_EQ(px_semaphore_free(s), 0);
}

TEST_F(Sync, SemaphoreServesStrictlyFirstComeFirstServed) {
  px_semaphore *s;
  ASSERT_EQ(px_semaphore_new(&s, 0), 0);
  Hand ha, hb, hc;
  px_semaphore_acquire a, b, c;
  ASSERT_EQ(ha.poll(px_semaphore_acquire_init(&a, s, 3)), PX_PENDING);
  ASSERT_EQ(hb.poll(px_semaphore_acquire_init(&b, s, 1)), PX_PENDING);
  ASSERT_EQ(hc.poll(px_semaphore_acquire_init(&c, s, 1)), PX_PENDING);
  ASSERT_EQ(px_semaphore_release(s, 2), 0);
  // The big request at the head is not overtaken by the small ones.
  EXPECT_EQ(ha.wakes() + hb.wakes() + hc.wakes(), 0);
  EXPECT_EQ(px_semaphore_try_acquire(s, 1), PX_EAGAIN);  // waiters first
  ASSERT_EQ(px_semaphore_release(s, 2), 0);  // 4: a takes 3, b takes 1
  EXPECT_EQ(ha.wakes(), 1);
  EXPECT_EQ(hb.wakes(), 1);
  EXPECT_EQ(hc.wakes(), 0);
  EXPECT_EQ(px_semaphore_available(s), 0u);
  ASSERT_EQ(ha.poll(&a.base), PX_READY);
  ASSERT_EQ(hb.poll(&b.base), PX_READY);
  EXPECT_EQ(a.base.output.u64, 3u);
  px_future_drop(&a.base);
  px_future_drop(&b.base);
  EXPECT_EQ(px_semaphore_free(s), PX_EBUSY);  // c still waits
  ASSERT_EQ(px_semaphore_release(s, 4), 0);
  ASSERT_EQ(hc.poll(&c.base), PX_READY);
  px_future_drop(&c.base);
  EXPECT_EQ(px_semaphore_available(s), 3u);
  EXPECT_EQ(px_semaphore_free(s), 0);
}

TEST_F(Sync, SemaphoreCancelledWaitersGiveEverythingBack) {
  px_semaphore *s;
  ASSERT_EQ(px_semaphore_new(&s, 1), 0);
  Hand ha, hb, hc;
  px_semaphore_acquire a, b, c;
  ASSERT_EQ(ha.poll(px_semaphore_acquire_init(&a, s, 2)), PX_PENDING);
  ASSERT_EQ(hb.poll(px_semaphore_acquire_init(&b, s, 1)), PX_PENDING);
  ASSERT_EQ(hc.poll(px_semaphore_acquire_init(&c, s, 1)), PX_PENDING);
  // a was holding b back; cancelling a lets the permit on hand reach b.
  px_future_drop(&a.base);
  EXPECT_EQ(hb.wakes(), 1);
  // b is cancelled before it saw its permit: c gets it.
  px_future_drop(&b.base);
  EXPECT_EQ(hc.wakes(), 1);
  ASSERT_EQ(hc.poll(&c.base), PX_READY);
  px_future_drop(&c.base);
  ASSERT_EQ(px_semaphore_release(s, 1), 0);
  EXPECT_EQ(px_semaphore_available(s), 1u);  // nothing lost, nothing made up
  EXPECT_EQ(ha.held() + hb.held() + hc.held(), 0);
  EXPECT_EQ(px_semaphore_free(s), 0);
}

TEST_F(Sync, SemaphoreCloseFailsWaiters) {
  px_semaphore *s;
  ASSERT_EQ(px_semaphore_new(&s, 0), 0);
  Hand h;
  px_semaphore_acquire a;
  ASSERT_EQ(h.poll(px_semaphore_acquire_init(&a, s, 1)), PX_PENDING);
  ASSERT_EQ(px_semaphore_close(s), 0);
  EXPECT_EQ(h.wakes(), 1);
  ASSERT_EQ(h.poll(&a.base), PX_READY);
  EXPECT_EQ(a.base.error, PX_ECLOSED);
  px_future_drop(&a.base);
  EXPECT_EQ(px_semaphore_try_acquire(s, 0), PX_ECLOSED);
  px_semaphore_acquire b;
  ASSERT_EQ(h.poll(px_semaphore_acquire_init(&b, s, 1)), PX_READY);
  EXPECT_EQ(b.base.error, PX_ECLOSED);
  // A closed waiter that is dropped without another poll unpins too.
  px_semaphore *s2;
  ASSERT_EQ(px_semaphore_new(&s2, 0), 0);
  px_semaphore_acquire c;
  ASSERT_EQ(h.poll(px_semaphore_acquire_init(&c, s2, 1)), PX_PENDING);
  ASSERT_EQ(px_semaphore_close(s2), 0);
  px_future_drop(&c.base);
  EXPECT_EQ(px_semaphore_free(s2), 0);
  EXPECT_EQ(px_semaphore_free(s), 0);
}

TEST_F(SyncRt, SemaphoreAcquireThatLosesASelectTakesNothing) {
  px_semaphore *s;
  ASSERT_EQ(px_semaphore_new(&s, 1), 0);
  ASSERT_EQ(px_semaphore_try_acquire(s, 1), 0);
  px_semaphore_acquire a;
  px_sleep nap;
  px_future *both[] = {px_semaphore_acquire_init(&a, s, 1),
                       px_sleep_init(&nap, px_ms(2))};
  px_select sel;
  ASSERT_EQ(px_runtime_block_on(rt, px_select_init(&sel, both, 2)), 0);
  EXPECT_EQ(sel.index, 1u);
  ASSERT_EQ(px_semaphore_release(s, 1), 0);
  EXPECT_EQ(px_semaphore_available(s), 1u);
  // And a notified future cancelled by a timeout leaves no trace either.
  px_notify *n;
  ASSERT_EQ(px_notify_new(&n), 0);
  px_notified f;
  px_timeout to;
  EXPECT_EQ(px_runtime_block_on(
                rt, px_timeout_init(&to, px_notified_init(&f, n), px_ms(2))),
            PX_ETIMEDOUT);
  EXPECT_EQ(px_notify_free(n), 0);
  EXPECT_EQ(px_semaphore_free(s), 0);
}

TEST_F(SyncRt, SemaphoreLimitsConcurrentTasksInOrder) {
  px_semaphore *s;
  ASSERT_EQ(px_semaphore_new(&s, 2), 0);
  int log[8];
  px__atomic(int) len{0};
  px_join_handle jh[6];
  std::vector<px_future *> futs;
  for (int i = 0; i < 6; i++) {
    acquirer a;
    acquirer_new(&a, s, 1 + (i % 2), i, log, &len);
    ASSERT_EQ(px_runtime_spawn(rt, &a.px.base, &jh[i]), 0);
    futs.push_back(&jh[i].base);
  }
  px_join j;
  ASSERT_EQ(px_runtime_block_on(rt, px_join_init(&j, futs.data(), 6, nullptr)), 0);
  ASSERT_EQ(len.load(), 6);
  if (RunsInSpawnOrder()) {
    for (int i = 0; i < 6; i++) EXPECT_EQ(log[i], i);
  }
  EXPECT_EQ(px_semaphore_available(s), 2u);
  EXPECT_EQ(px_semaphore_free(s), 0);
}

TEST_F(Sync, SemaphoreMisuse) {
  px_semaphore *s;
  EXPECT_EQ(px_semaphore_new(nullptr, 1), PX_EINVAL);
  EXPECT_EQ(px_semaphore_new(&s, PX_SEMAPHORE_MAX_PERMITS + 1), PX_EINVAL);
  EXPECT_EQ(px_semaphore_free(nullptr), PX_EINVAL);
  EXPECT_EQ(px_semaphore_try_acquire(nullptr, 1), PX_EINVAL);
  EXPECT_EQ(px_semaphore_release(nullptr, 1), PX_EINVAL);
  EXPECT_EQ(px_semaphore_close(nullptr), PX_EINVAL);
  EXPECT_EQ(px_semaphore_available(nullptr), 0u);
  Hand h;
  px_semaphore_acquire a;
  ASSERT_EQ(h.poll(px_semaphore_acquire_init(&a, nullptr, 1)), PX_READY);
  EXPECT_EQ(a.base.error, PX_EINVAL);
  ASSERT_EQ(px_semaphore_new(&s, 1), 0);
  px_semaphore_acquire b;
  ASSERT_EQ(h.poll(px_semaphore_acquire_init(&b, s, PX_SEMAPHORE_MAX_PERMITS + 1)),
            PX_READY);
  EXPECT_EQ(b.base.error, PX_EINVAL);
  EXPECT_EQ(px_semaphore_free(s), 0);
}

// ---- notify -----------------------------------------------------------------

TEST_F(Sync, NotifyOneStoresOnePermit) {
  px_notify *n;
  ASSERT_EQ(px_notify_new(&n), 0);
  ASSERT_EQ(px_notify_one(n), 0);
  ASSERT_EQ(px_notify_one(n), 0);  // permits do not add up
  Hand h;
  px_notified a, b;
  ASSERT_EQ(h.poll(px_notified_init(&a, n)), PX_READY);
  ASSERT_EQ(h.poll(px_notified_init(&b, n)), PX_PENDING);
  ASSERT_EQ(px_notify_one(n), 0);
  EXPECT_EQ(h.wakes(), 1);
  ASSERT_EQ(h.poll(&b.base), PX_READY);
  px_future_drop(&a.base);
  px_future_drop(&b.base);
  EXPECT_EQ(px_notify_free(n), 0);
}

TEST_F(Sync, NotifyOneWakesWaitersInFifoOrder) {
  px_notify *n;
  ASSERT_EQ(px_notify_new(&n), 0);
  Hand h[3];
  px_notified f[3];
  for (int i = 0; i < 3; i++)
    ASSERT_EQ(h[i].poll(px_notified_init(&f[i], n)), PX_PENDING);
  EXPECT_EQ(px_notify_free(n), PX_EBUSY);
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(px_notify_one(n), 0);
    for (int j = 0; j < 3; j++) EXPECT_EQ(h[j].wakes(), j <= i ? 1 : 0);
  }
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(h[i].poll(&f[i].base), PX_READY);
    px_future_drop(&f[i].base);
  }
  EXPECT_EQ(px_notify_free(n), 0);
}

TEST_F(Sync, NotifyWaitersWakesAllCurrentAndStoresNothing) {
  px_notify *n;
  ASSERT_EQ(px_notify_new(&n), 0);
  Hand h[3];
  px_notified f[3];
  for (int i = 0; i < 2; i++)
    ASSERT_EQ(h[i].poll(px_notified_init(&f[i], n)), PX_PENDING);
  px_notified_init(&f[2], n);  // created, not yet polled: still counts
  ASSERT_EQ(px_notify_waiters(n), 0);
  EXPECT_EQ(h[0].wakes(), 1);
  EXPECT_EQ(h[1].wakes(), 1);
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(h[i].poll(&f[i].base), PX_READY);
    px_future_drop(&f[i].base);
  }
  px_notified late;
  ASSERT_EQ(h[0].poll(px_notified_init(&late, n)), PX_PENDING);  // no permit
  px_future_drop(&late.base);
  EXPECT_EQ(px_notify_free(n), 0);
}

TEST_F(Sync, NotifyDroppedWaiterPassesTheNotificationOn) {
  px_notify *n;
  ASSERT_EQ(px_notify_new(&n), 0);
  Hand ha, hb;
  px_notified a, b;
  ASSERT_EQ(ha.poll(px_notified_init(&a, n)), PX_PENDING);
  ASSERT_EQ(hb.poll(px_notified_init(&b, n)), PX_PENDING);
  ASSERT_EQ(px_notify_one(n), 0);
  px_future_drop(&a.base);  // notified but never saw it
  EXPECT_EQ(hb.wakes(), 1);
  ASSERT_EQ(hb.poll(&b.base), PX_READY);
  px_future_drop(&b.base);
  // With nobody left to pass it to, a lost notification becomes the permit.
  px_notified c;
  ASSERT_EQ(ha.poll(px_notified_init(&c, n)), PX_PENDING);
  ASSERT_EQ(px_notify_one(n), 0);
  px_future_drop(&c.base);
  px_notified d;
  ASSERT_EQ(ha.poll(px_notified_init(&d, n)), PX_READY);
  EXPECT_EQ(ha.held() + hb.held(), 0);
  EXPECT_EQ(px_notify_free(n), 0);
}

TEST_F(SyncRt, NotifyFromAnotherThreadWakesTasks) {
  px_notify *n;
  ASSERT_EQ(px_notify_new(&n), 0);
  int log[4];
  px__atomic(int) len{0};
  px_join_handle jh[3];
  std::vector<px_future *> futs;
  for (int i = 0; i < 3; i++) {
    notify_waiter w;
    notify_waiter_new(&w, n, i, log, &len);
    ASSERT_EQ(px_runtime_spawn(rt, &w.px.base, &jh[i]), 0);
    futs.push_back(&jh[i].base);
  }
  // Notifications sent before anyone waits coalesce into one permit, so
  // keep notifying until all three tasks were woken.
  std::thread t([n, &len] {
    while (len.load() < 3) {
      px_notify_one(n);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  px_join j;
  ASSERT_EQ(px_runtime_block_on(rt, px_join_init(&j, futs.data(), 3, nullptr)), 0);
  t.join();
  EXPECT_EQ(len.load(), 3);
  EXPECT_EQ(px_notify_free(n), 0);
}

TEST_F(Sync, NotifyMisuse) {
  EXPECT_EQ(px_notify_new(nullptr), PX_EINVAL);
  EXPECT_EQ(px_notify_free(nullptr), PX_EINVAL);
  EXPECT_EQ(px_notify_one(nullptr), PX_EINVAL);
  EXPECT_EQ(px_notify_waiters(nullptr), PX_EINVAL);
  EXPECT_EQ(px_notified_init(nullptr, nullptr), nullptr);
  Hand h;
  px_notified f;
  ASSERT_EQ(h.poll(px_notified_init(&f, nullptr)), PX_READY);
  EXPECT_EQ(f.base.error, PX_EINVAL);
}

// ---- cancellation token ---------------------------------------------------

TEST_F(Sync, CancelTokenWakesEveryWaiterOnce) {
  px_cancel_token *t;
  ASSERT_EQ(px_cancel_token_new(&t), 0);
  EXPECT_FALSE(px_cancel_token_is_cancelled(t));
  Hand h;
  px_cancelled a, b;
  ASSERT_EQ(h.poll(px_cancelled_init(&a, t)), PX_PENDING);
  ASSERT_EQ(h.poll(px_cancelled_init(&b, t)), PX_PENDING);
  ASSERT_EQ(h.poll(&a.base), PX_PENDING);  // a second poll queues nothing more
  EXPECT_EQ(h.wakes(), 0);
  EXPECT_EQ(px_cancel_token_cancel(t), 0);
  EXPECT_EQ(h.wakes(), 2);
  EXPECT_TRUE(px_cancel_token_is_cancelled(t));
  EXPECT_EQ(h.poll(&a.base), PX_READY);
  EXPECT_EQ(a.base.error, 0);
  EXPECT_EQ(h.poll(&b.base), PX_READY);
  EXPECT_EQ(px_cancel_token_cancel(t), 0);  // idempotent, wakes nobody
  EXPECT_EQ(h.wakes(), 2);
  // Awaiting a cancelled token completes at once.
  px_cancelled c;
  EXPECT_EQ(h.poll(px_cancelled_init(&c, t)), PX_READY);
  px_future_drop(&a.base);
  px_future_drop(&b.base);
  px_future_drop(&c.base);
  EXPECT_EQ(h.held(), 0);
  px_cancel_token_drop(t);
}

TEST_F(Sync, CancelTokenDroppedWaiterLeavesTheQueue) {
  px_cancel_token *t;
  ASSERT_EQ(px_cancel_token_new(&t), 0);
  Hand h;
  px_cancelled a;
  ASSERT_EQ(h.poll(px_cancelled_init(&a, t)), PX_PENDING);
  px_future_drop(&a.base);
  EXPECT_EQ(h.held(), 0);  // its waker went with it
  EXPECT_EQ(px_cancel_token_cancel(t), 0);
  EXPECT_EQ(h.wakes(), 0);
  px_cancel_token_drop(t);
}

// Cancelling a parent cancels its children and grandchildren; cancelling
// a child leaves the parent and siblings alone; a child made from a
// cancelled parent starts cancelled.
TEST_F(Sync, CancelTokenTree) {
  px_cancel_token *root, *a, *b, *a1;
  ASSERT_EQ(px_cancel_token_new(&root), 0);
  ASSERT_EQ(px_cancel_token_child(root, &a), 0);
  ASSERT_EQ(px_cancel_token_child(root, &b), 0);
  ASSERT_EQ(px_cancel_token_child(a, &a1), 0);
  Hand h;
  px_cancelled w;
  ASSERT_EQ(h.poll(px_cancelled_init(&w, a1)), PX_PENDING);

  EXPECT_EQ(px_cancel_token_cancel(b), 0);
  EXPECT_TRUE(px_cancel_token_is_cancelled(b));
  EXPECT_FALSE(px_cancel_token_is_cancelled(root));
  EXPECT_FALSE(px_cancel_token_is_cancelled(a));
  EXPECT_EQ(h.wakes(), 0);

  EXPECT_EQ(px_cancel_token_cancel(root), 0);
  EXPECT_TRUE(px_cancel_token_is_cancelled(a));
  EXPECT_TRUE(px_cancel_token_is_cancelled(a1));
  EXPECT_EQ(h.wakes(), 1);  // the grandchild's waiter
  EXPECT_EQ(h.poll(&w.base), PX_READY);
  px_future_drop(&w.base);

  px_cancel_token *late;
  ASSERT_EQ(px_cancel_token_child(root, &late), 0);
  EXPECT_TRUE(px_cancel_token_is_cancelled(late));
  // Children keep parents alive: drop the root first, the rest after.
  px_cancel_token_drop(root);
  px_cancel_token_drop(a);
  px_cancel_token_drop(late);
  px_cancel_token_drop(b);
  px_cancel_token_drop(a1);
}

// A parent outlives a dropped child, which leaves its list at once: a
// later cancel does not touch freed memory (ASan) and nothing leaks.
TEST_F(Sync, CancelTokenChildDroppedBeforeTheParentIsCancelled) {
  px_cancel_token *root;
  ASSERT_EQ(px_cancel_token_new(&root), 0);
  for (int i = 0; i < 100; i++) {
    px_cancel_token *c;
    ASSERT_EQ(px_cancel_token_child(root, &c), 0);
    px_cancel_token *c2 = px_cancel_token_clone(c);
    px_cancel_token_drop(c);
    if (i % 2) px_cancel_token_drop(c2);
    else {
      EXPECT_EQ(px_cancel_token_cancel(root), 0);
      EXPECT_TRUE(px_cancel_token_is_cancelled(c2));
      px_cancel_token_drop(c2);
    }
  }
  px_cancel_token_drop(root);
}

// Many threads create, cancel and drop children of one root while another
// cancels the root: every child ends cancelled, nothing is freed twice
// (run under TSan and ASan in the matrix).
TEST_F(Sync, CancelTokenConcurrentCancelAndDrop) {
  px_cancel_token *root;
  ASSERT_EQ(px_cancel_token_new(&root), 0);
  std::vector<std::thread> threads;
  px__atomic(int) not_cancelled{0};
  for (int i = 0; i < 4; i++) {
    threads.emplace_back([root, &not_cancelled] {
      for (int j = 0; j < 500; j++) {
        px_cancel_token *c;
        if (px_cancel_token_child(root, &c) != 0) continue;
        if (j % 3 == 0) px_cancel_token_cancel(c);
        px_cancel_token_drop(c);
      }
      px_cancel_token *last;
      if (px_cancel_token_child(root, &last) == 0) {
        while (!px_cancel_token_is_cancelled(last)) sched_yield();
        px_cancel_token_drop(last);
      } else {
        not_cancelled++;
      }
    });
  }
  std::thread canceller([root] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    px_cancel_token_cancel(root);
  });
  for (auto &t : threads) t.join();
  canceller.join();
  EXPECT_EQ(not_cancelled.load(), 0);
  px_cancel_token_drop(root);
}

TEST_F(SyncRt, CancelTokenFromAnotherThreadEndsATaskWait) {
  px_cancel_token *t;
  ASSERT_EQ(px_cancel_token_new(&t), 0);
  std::thread th([t] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    px_cancel_token_cancel(t);
  });
  px_cancelled c;
  EXPECT_EQ(px_runtime_block_on(rt, px_cancelled_init(&c, t)), 0);
  th.join();
  px_cancel_token_drop(t);
}

TEST_F(Sync, CancelTokenMisuse) {
  EXPECT_EQ(px_cancel_token_new(nullptr), PX_EINVAL);
  px_cancel_token *out = reinterpret_cast<px_cancel_token *>(1);
  EXPECT_EQ(px_cancel_token_child(nullptr, &out), PX_EINVAL);
  EXPECT_EQ(out, nullptr);
  EXPECT_EQ(px_cancel_token_child(nullptr, nullptr), PX_EINVAL);
  px_cancel_token *root;
  ASSERT_EQ(px_cancel_token_new(&root), 0);
  EXPECT_EQ(px_cancel_token_child(root, nullptr), PX_EINVAL);
  px_cancel_token_drop(root);
  EXPECT_EQ(px_cancel_token_cancel(nullptr), PX_EINVAL);
  EXPECT_FALSE(px_cancel_token_is_cancelled(nullptr));
  EXPECT_EQ(px_cancel_token_clone(nullptr), nullptr);
  px_cancel_token_drop(nullptr);
  EXPECT_EQ(px_cancelled_init(nullptr, nullptr), nullptr);
  Hand h;
  px_cancelled f;
  ASSERT_EQ(h.poll(px_cancelled_init(&f, nullptr)), PX_READY);
  EXPECT_EQ(f.base.error, PX_EINVAL);
  // Out of memory is an error, not a crash.
  g_alloc.fail_at = 1;
  EXPECT_EQ(px_cancel_token_new(&root), PX_ENOMEM);
}

// ---- watch ------------------------------------------------------------------

TEST_F(Sync, WatchBorrowSendAndChanged) {
  px_watch_sender *tx;
  px_watch_receiver *rx;
  ASSERT_EQ(px_watch_new(px_i64(1), &tx, &rx), 0);
  px_value v;
  ASSERT_EQ(px_watch_borrow(rx, &v), 0);
  EXPECT_EQ(v.i64, 1);
  EXPECT_EQ(px_watch_has_changed(rx), 0);  // the initial value counts as seen
  Hand h;
  px_watch_changed c;
  ASSERT_EQ(h.poll(px_watch_changed_init(&c, rx)), PX_PENDING);
  ASSERT_EQ(px_watch_send(tx, px_i64(2)), 0);
  ASSERT_EQ(px_watch_send(tx, px_i64(3)), 0);  // only the latest matters
  EXPECT_EQ(h.wakes(), 1);
  ASSERT_EQ(h.poll(&c.base), PX_READY);
  EXPECT_EQ(c.base.output.i64, 3);
  px_future_drop(&c.base);
  EXPECT_EQ(px_watch_has_changed(rx), 0);
  ASSERT_EQ(px_watch_send(tx, px_i64(4)), 0);
  EXPECT_EQ(px_watch_has_changed(rx), 1);
  ASSERT_EQ(px_watch_borrow(rx, &v), 0);  // borrow does not mark it seen
  EXPECT_EQ(px_watch_has_changed(rx), 1);
  ASSERT_EQ(px_watch_borrow_and_update(rx, &v), 0);
  EXPECT_EQ(v.i64, 4);
  EXPECT_EQ(px_watch_has_changed(rx), 0);
  px_watch_sender_drop(tx);
  EXPECT_EQ(px_watch_has_changed(rx), PX_ECLOSED);
  px_watch_receiver_drop(rx);
}

TEST_F(Sync, WatchEveryReceiverIsWokenAndSenderDropCloses) {
  px_watch_sender *tx;
  px_watch_receiver *rx[3];
  ASSERT_EQ(px_watch_new(px_i64(0), &tx, &rx[0]), 0);
  ASSERT_EQ(px_watch_receiver_clone(rx[0], &rx[1]), 0);
  ASSERT_EQ(px_watch_receiver_clone(rx[0], &rx[2]), 0);
  EXPECT_EQ(px_watch_receiver_count(tx), 3u);
  Hand h[3];
  px_watch_changed c[3];
  for (int i = 0; i < 3; i++)
    ASSERT_EQ(h[i].poll(px_watch_changed_init(&c[i], rx[i])), PX_PENDING);
  ASSERT_EQ(px_watch_send(tx, px_i64(5)), 0);
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(h[i].wakes(), 1);
    ASSERT_EQ(h[i].poll(&c[i].base), PX_READY);
    EXPECT_EQ(c[i].base.output.i64, 5);
    px_future_drop(&c[i].base);
    ASSERT_EQ(h[i].poll(px_watch_changed_init(&c[i], rx[i])), PX_PENDING);
  }
  px_watch_sender_drop(tx);
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(h[i].wakes(), 2);
    ASSERT_EQ(h[i].poll(&c[i].base), PX_READY);
    EXPECT_EQ(c[i].base.error, PX_ECLOSED);
    px_future_drop(&c[i].base);
    px_watch_receiver_drop(rx[i]);
  }
}

TEST_F(Sync, WatchUnseenValueSurvivesSenderDrop) {
  px_watch_sender *tx;
  px_watch_receiver *rx;
  ASSERT_EQ(px_watch_new(px_i64(0), &tx, &rx), 0);
  ASSERT_EQ(px_watch_send(tx, px_i64(8)), 0);
  px_watch_sender_drop(tx);
  Hand h;
  px_watch_changed c;
  ASSERT_EQ(h.poll(px_watch_changed_init(&c, rx)), PX_READY);
  EXPECT_EQ(c.base.error, 0);
  EXPECT_EQ(c.base.output.i64, 8);
  px_future_drop(&c.base);
  ASSERT_EQ(h.poll(px_watch_changed_init(&c, rx)), PX_READY);
  EXPECT_EQ(c.base.error, PX_ECLOSED);
  px_watch_receiver_drop(rx);
}

TEST_F(Sync, WatchSendWithoutReceiversIsClosed) {
  px_watch_sender *tx;
  px_watch_receiver *rx;
  ASSERT_EQ(px_watch_new(px_i64(0), &tx, &rx), 0);
  px_watch_receiver_drop(rx);
  EXPECT_EQ(px_watch_receiver_count(tx), 0u);
  EXPECT_EQ(px_watch_send(tx, px_i64(1)), PX_ECLOSED);
  px_watch_sender_drop(tx);
}

TEST_F(Sync, WatchCancelledChangedLosesNothing) {
  px_watch_sender *tx;
  px_watch_receiver *rx;
  ASSERT_EQ(px_watch_new(px_i64(0), &tx, &rx), 0);
  Hand h;
  px_watch_changed c;
  ASSERT_EQ(h.poll(px_watch_changed_init(&c, rx)), PX_PENDING);
  ASSERT_EQ(px_watch_send(tx, px_i64(1)), 0);
  px_future_drop(&c.base);  // woken but dropped: the change stays unseen
  EXPECT_EQ(px_watch_has_changed(rx), 1);
  ASSERT_EQ(h.poll(px_watch_changed_init(&c, rx)), PX_READY);
  EXPECT_EQ(c.base.output.i64, 1);
  px_watch_sender_drop(tx);
  px_watch_receiver_drop(rx);
  EXPECT_EQ(h.held(), 0);
}

TEST_F(SyncRt, WatchTaskSeesTheLastValueFromAnotherThread) {
  px_watch_sender *tx;
  px_watch_receiver *rx;
  ASSERT_EQ(px_watch_new(px_i64(0), &tx, &rx), 0);
  std::vector<int64_t> log(1001);
  std::thread t([tx] {
    for (int i = 1; i <= 1000; i++) {
      px_watch_send(tx, px_i64(i));
      if (i % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    px_watch_sender_drop(tx);
  });
  watcher w;
  watcher_new(&w, rx, log.data());
  ASSERT_EQ(px_runtime_block_on(rt, &w.px.base), 0);
  t.join();
  int64_t seen = w.px.base.output.i64;
  ASSERT_GE(seen, 1);
  ASSERT_LE(seen, 1000);
  EXPECT_EQ(log[seen - 1], 1000);  // the final value is always seen
  for (int64_t i = 1; i < seen; i++) EXPECT_LT(log[i - 1], log[i]);  // in order
  px_watch_receiver_drop(rx);
}

TEST_F(Sync, WatchMisuse) {
  px_watch_sender *tx;
  px_watch_receiver *rx;
  EXPECT_EQ(px_watch_new(px_i64(0), nullptr, &rx), PX_EINVAL);
  EXPECT_EQ(px_watch_new(px_i64(0), &tx, nullptr), PX_EINVAL);
  EXPECT_EQ(px_watch_send(nullptr, px_i64(0)), PX_EINVAL);
  px_value v;
  EXPECT_EQ(px_watch_borrow(nullptr, &v), PX_EINVAL);
  EXPECT_EQ(px_watch_borrow_and_update(nullptr, &v), PX_EINVAL);
  EXPECT_EQ(px_watch_has_changed(nullptr), PX_EINVAL);
  EXPECT_EQ(px_watch_receiver_clone(nullptr, &rx), PX_EINVAL);
  EXPECT_EQ(px_watch_receiver_count(nullptr), 0u);
  px_watch_sender_drop(nullptr);
  px_watch_receiver_drop(nullptr);
  Hand h;
  px_watch_changed c;
  ASSERT_EQ(h.poll(px_watch_changed_init(&c, nullptr)), PX_READY);
  EXPECT_EQ(c.base.error, PX_EINVAL);
}

// Failing allocations are reported, never crash, and leak nothing.
TEST_F(Sync, OutOfMemoryAtCreation) {
  g_alloc.fail_at.store(1);
  px_oneshot_sender *otx;
  px_oneshot_receiver *orx;
  EXPECT_EQ(px_oneshot_new(&otx, &orx), PX_ENOMEM);
  for (int k = 1; k <= 2; k++) {
    px_mpsc_sender *tx;
    px_mpsc_receiver *rx;
    g_alloc.fail_at.store(k);
    EXPECT_EQ(px_mpsc_channel(4, &tx, &rx), PX_ENOMEM);
    px_watch_sender *wtx;
    px_watch_receiver *wrx;
    g_alloc.fail_at.store(k);
    EXPECT_EQ(px_watch_new(px_i64(0), &wtx, &wrx), PX_ENOMEM);
  }
  g_alloc.fail_at.store(1);
  px_mutex *m;
  EXPECT_EQ(px_mutex_new(&m), PX_ENOMEM);
  g_alloc.fail_at.store(1);
  px_notify *n;
  EXPECT_EQ(px_notify_new(&n), PX_ENOMEM);
  g_alloc.fail_at.store(0);
}

}  // namespace
