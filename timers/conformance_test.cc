// The timer conformance suite: every case here runs against every timer
// backend through its ops table (timers/timer.h), all linked into one
// binary. Ordering, deadlines past and far in the future, cancel, callbacks
// that insert and cancel, allocation failure, and one long randomized
// sequence checked against a simple ordered-map model. Backend-specific
// cases (the wheel's cascades and levels) stay beside their backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "api/internal/px_internal.h"
#include "timers/timer.h"

extern "C" const px__timer_ops px__wheel_ops;
extern "C" const px__timer_ops px__heap_ops;

namespace {

const px__timer_ops *const kBackends[] = {&px__wheel_ops, &px__heap_ops};

constexpr uint64_t kEpoch = uint64_t{1} << 36;  // 64^6 ticks: the wheel's span

// One timer instance. Advance returns what fired, in order, and checks on
// the way that each node was disarmed and not early.
class Timer {
 public:
  explicit Timer(const px__timer_ops *ops, uint64_t now = 0)
      : ops_(ops), mem_(::operator new(ops->size)), now_(now) {
    ops_->init(mem_, now);
  }
  ~Timer() {
    ops_->destroy(mem_);
    ::operator delete(mem_);
  }
  Timer(const Timer &) = delete;
  Timer &operator=(const Timer &) = delete;

  // Expects success: callers that test failure use TryInsert.
  void Insert(px_timer_node *n, uint64_t tick) {
    EXPECT_EQ(TryInsert(n, tick), 0);
  }
  // The node's owner sets its tick while it is not armed (timer.h).
  int TryInsert(px_timer_node *n, uint64_t tick) {
    n->tick = tick;
    return ops_->insert(mem_, n);
  }
  void Cancel(px_timer_node *n) { ops_->cancel(mem_, n); }
  uint64_t NextTick() { return ops_->next_tick(mem_); }

  // One call to advance, firing at most `max`.
  std::vector<px_timer_node *> Advance(uint64_t now, size_t max = SIZE_MAX) {
    fired_.clear();
    now_ = std::max(now_, now);
    size_t n = ops_->advance(mem_, now, max, &Timer::OnFire, this);
    EXPECT_EQ(n, fired_.size());
    EXPECT_LE(n, max);
    return fired_;
  }

  // Runs after each fire, inside the callback.
  std::function<void(px_timer_node *)> on_fire;

 private:
  static void OnFire(px_timer_node *n, void *arg) {
    auto *self = static_cast<Timer *>(arg);
    EXPECT_FALSE(px__timer_armed(n)) << "fired while still armed";
    EXPECT_LE(n->tick, self->now_) << "fired early";
    self->fired_.push_back(n);
    if (self->on_fire) self->on_fire(n);
  }

  const px__timer_ops *ops_;
  void *mem_;
  uint64_t now_;
  std::vector<px_timer_node *> fired_;
};

using Nodes = std::vector<px_timer_node *>;

// The node is embedded in every sleep: its size is part of the contract
// (docs/BACKENDS.md states it: 40 bytes on 64-bit targets: the link, the
// tick and the waker, with no flag or index word).
TEST(TimerConformance, NodeFitsInACacheLine) {
  static_assert(sizeof(px_timer_node) <= 64, "px_timer_node grew past 64");
  EXPECT_LE(sizeof(px_timer_node), 64u);
  if (sizeof(void *) == 8) {
    EXPECT_EQ(sizeof(px_timer_node), 40u);
  }
}

// "Armed" is the link's first word (px__timer_armed), and the heap's mark
// overlays it: the two members must share their first word.
TEST(TimerConformance, HeapMarkOverlaysTheLink) {
  static_assert(offsetof(px_timer_node, at.heap.mark) ==
                    offsetof(px_timer_node, at.link.next),
                "the heap's mark must be read as the link's next");
  px_timer_node n{};
  EXPECT_FALSE(px__timer_armed(&n));
}

// Sleeps and interval ticks embed one px_timer_entry (the node with the
// one waker and the deadline as its tick; the runtime holding it is in the
// future's output slot while pending): bytes a sleeping task pays for, so a
// change shows up here before it shows up in million_timers' peak RSS.
TEST(TimerConformance, EntryLayout) {
  static_assert(offsetof(px_sleep, entry) == sizeof(px_future),
                "a sleep is its future header and its entry, nothing else");
  static_assert(sizeof(px_timer_entry) == sizeof(px_timer_node),
                "an entry is its node");
  if (sizeof(void *) == 8) {
    EXPECT_EQ(sizeof(px_timer_entry), 40u);
    EXPECT_EQ(sizeof(px_sleep), 64u);
    EXPECT_EQ(sizeof(px_interval), 88u);
  }
}

// A deadline's tick is its millisecond rounded up: never early, and a
// deadline on a millisecond is that millisecond (the end of time too).
TEST(TimerConformance, DeadlineTickRoundsUp) {
  EXPECT_EQ(px__timer_tick(0), 0u);
  EXPECT_EQ(px__timer_tick(1), 1u);
  EXPECT_EQ(px__timer_tick(999999), 1u);
  EXPECT_EQ(px__timer_tick(1000000), 1u);
  EXPECT_EQ(px__timer_tick(1000001), 2u);
  EXPECT_EQ(px__timer_tick(UINT64_MAX), UINT64_MAX / 1000000u + 1);
  // "Now" rounds down: an instant is in the tick it has reached.
  EXPECT_EQ(px__timer_tick_floor(999999), 0u);
  EXPECT_EQ(px__timer_tick_floor(1000000), 1u);
  EXPECT_EQ(px__timer_tick_floor(1999999), 1u);
}

class TimerTest : public ::testing::TestWithParam<const px__timer_ops *> {
 protected:
  const px__timer_ops *ops() const { return GetParam(); }
};

TEST_P(TimerTest, OpsTableIsComplete) {
  ASSERT_NE(ops()->name, nullptr);
  EXPECT_GT(std::string(ops()->name).size(), 0u);
  EXPECT_GT(ops()->size, 0u);
  EXPECT_NE(ops()->init, nullptr);
  EXPECT_NE(ops()->insert, nullptr);
  EXPECT_NE(ops()->cancel, nullptr);
  EXPECT_NE(ops()->next_tick, nullptr);
  EXPECT_NE(ops()->advance, nullptr);
  EXPECT_NE(ops()->destroy, nullptr);
}

// An allocator that refuses everything, to see insert report PX_ENOMEM.
void *RefuseAlloc(void *, size_t) { return nullptr; }
void FreeAlloc(void *, void *p, size_t) { std::free(p); }
void *MallocAlloc(void *, size_t n) { return std::malloc(n); }

// A backend that needs memory to arm a node must say so when it gets none,
// leave the node unarmed, and keep working once memory is back. Backends
// that never allocate (the wheel) just succeed.
TEST_P(TimerTest, InsertReportsOutOfMemoryAndStaysConsistent) {
  Timer w(ops(), 100);
  std::vector<px_timer_node> nodes(200);
  Nodes want;
  px_allocator refuse = {RefuseAlloc, FreeAlloc, nullptr};
  px_allocator plain = {MallocAlloc, FreeAlloc, nullptr};
  int failures = 0;
  for (size_t i = 0; i < nodes.size(); i++) {
    // Every third insert runs with memory, the others without.
    px_set_allocator(i % 3 == 0 ? &plain : &refuse);
    int rc = w.TryInsert(&nodes[i], 200 + i % 7);
    px_set_allocator(nullptr);
    if (rc == 0) {
      EXPECT_TRUE(px__timer_armed(&nodes[i]));
      want.push_back(&nodes[i]);
    } else {
      EXPECT_EQ(rc, PX_ENOMEM);
      EXPECT_FALSE(px__timer_armed(&nodes[i]));
      failures++;
    }
  }
  if (ops() == &px__heap_ops) {
    EXPECT_GT(failures, 0);
  }
  std::stable_sort(want.begin(), want.end(),
                   [](px_timer_node *a, px_timer_node *b) {
                     return a->tick < b->tick;
                   });
  EXPECT_EQ(w.Advance(1000), want);
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST_P(TimerTest, EmptyTimerHasNothingToDo) {
  Timer w(ops(), 42);
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
  EXPECT_TRUE(w.Advance(1000000).empty());
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST_P(TimerTest, ZeroDelayFiresOnNextAdvance) {
  Timer w(ops(), 500);
  px_timer_node a{};
  w.Insert(&a, 500);
  EXPECT_TRUE(px__timer_armed(&a));
  EXPECT_LE(w.NextTick(), 500u);
  EXPECT_EQ(w.Advance(500), Nodes{&a});  // same tick: no time needs to pass
  EXPECT_TRUE(w.Advance(500).empty());
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST_P(TimerTest, ZeroDelayAfterAnAdvance) {
  Timer w(ops(), 0);
  w.Advance(123456);  // empty: the current tick still moves
  px_timer_node a{};
  w.Insert(&a, 123456);
  EXPECT_EQ(w.Advance(123456), Nodes{&a});
}

TEST_P(TimerTest, PastDeadlinesFireFirstInDeadlineOrder) {
  Timer w(ops(), 1000);
  px_timer_node a{}, b{}, c{}, d{}, e{}, f{};
  w.Insert(&a, 900);
  w.Insert(&b, 800);
  w.Insert(&c, 950);
  w.Insert(&d, 800);
  w.Insert(&e, 1000);
  w.Insert(&f, 1001);
  EXPECT_EQ(w.NextTick(), 800u);
  EXPECT_EQ(w.Advance(1000), (Nodes{&b, &d, &a, &c, &e}));
  EXPECT_EQ(w.NextTick(), 1001u);
  EXPECT_EQ(w.Advance(1001), Nodes{&f});
}

TEST_P(TimerTest, AdvanceNeverGoesBackwards) {
  Timer w(ops(), 1000);
  px_timer_node a{};
  w.Insert(&a, 1010);
  EXPECT_TRUE(w.Advance(5).empty());
  EXPECT_TRUE(w.Advance(1009).empty());
  EXPECT_EQ(w.Advance(1010), Nodes{&a});
}

// (backend, start tick, delay): delays around every wheel level boundary,
// the end of the wheel's span and beyond it, from starts that put the
// deadline at different offsets within the blocks (one just before an epoch
// boundary). A heap has no levels, but the same cases cost little and keep
// the backends honest about the same edges.
class DelayTest
    : public ::testing::TestWithParam<
          std::tuple<const px__timer_ops *, uint64_t, uint64_t>> {
 protected:
  const px__timer_ops *ops() const { return std::get<0>(GetParam()); }
  uint64_t start() const { return std::get<1>(GetParam()); }
  uint64_t tick() const {
    return std::get<1>(GetParam()) + std::get<2>(GetParam());
  }
};

TEST_P(DelayTest, FiresExactlyAtItsTickWhenStepping) {
  Timer w(ops(), start());
  px_timer_node a{};
  w.Insert(&a, tick());
  EXPECT_LE(w.NextTick(), tick());
  uint64_t t = start();
  if (tick() > start() + 200) {
    t = tick() - 200;
    EXPECT_TRUE(w.Advance(t).empty());
  }
  for (; t < tick(); t++) {
    ASSERT_TRUE(w.Advance(t).empty()) << "early at " << t;
    ASSERT_LE(w.NextTick(), tick());
    ASSERT_GT(w.NextTick(), t);
  }
  EXPECT_EQ(w.Advance(tick()), Nodes{&a});
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
  for (t = tick() + 1; t < tick() + 3; t++) EXPECT_TRUE(w.Advance(t).empty());
}

TEST_P(DelayTest, FiresInOneBigJump) {
  Timer w(ops(), start());
  px_timer_node a{};
  w.Insert(&a, tick());
  EXPECT_EQ(w.Advance(tick()), Nodes{&a});

  Timer w2(ops(), start());
  px_timer_node b{};
  w2.Insert(&b, tick());
  EXPECT_TRUE(w2.Advance(tick() - 1).empty());
  EXPECT_EQ(w2.Advance(tick() + 1000000), Nodes{&b});
}

// A runtime sleeps until next_tick and advances there: the node must fire
// exactly when the target reaches its tick, after a few early wake-ups at
// most (a wheel's cascades; a heap needs none).
TEST_P(DelayTest, DrivenByNextTick) {
  Timer w(ops(), start());
  px_timer_node a{};
  w.Insert(&a, tick());
  int steps = 0;
  for (;;) {
    uint64_t next = w.NextTick();
    ASSERT_LE(next, tick());
    Nodes fired = w.Advance(next);
    steps++;
    if (next == tick()) {
      EXPECT_EQ(fired, Nodes{&a});
      break;
    }
    ASSERT_TRUE(fired.empty()) << "fired at " << next;
  }
  // The wheel: one wake-up per epoch boundary crossed, then at most one per
  // level. No backend may need more.
  EXPECT_LE(static_cast<uint64_t>(steps), (tick() >> 36) - (start() >> 36) + 6);
}

const uint64_t kStarts[] = {0, 1234567, kEpoch - 3, 5 * kEpoch + 987654321};
const uint64_t kDelays[] = {1,
                            2,
                            63,
                            64,
                            65,
                            127,
                            128,
                            4095,
                            4096,
                            4097,
                            262143,
                            262144,
                            262145,
                            16777215,
                            16777216,
                            16777217,
                            1073741823,
                            1073741824,
                            1073741825,
                            kEpoch - 1,
                            kEpoch,
                            kEpoch + 1,
                            uint64_t{1} << 40,
                            (uint64_t{1} << 40) + 12345};

INSTANTIATE_TEST_SUITE_P(
    Delays, DelayTest,
    ::testing::Combine(::testing::ValuesIn(kBackends),
                       ::testing::ValuesIn(kStarts),
                       ::testing::ValuesIn(kDelays)),
    [](const ::testing::TestParamInfo<DelayTest::ParamType> &info) {
      return std::string(std::get<0>(info.param)->name) + "_start" +
             std::to_string(std::get<1>(info.param)) + "_delay" +
             std::to_string(std::get<2>(info.param));
    });

TEST_P(TimerTest, MaximumDelayAndBeyondTheWheel) {
  Timer w(ops(), 0);
  px_timer_node last{}, edge{}, far{}, farther{}, farther2{}, never{};
  w.Insert(&never, UINT64_MAX - 1);
  w.Insert(&farther2, (uint64_t{1} << 48) + 1);
  w.Insert(&farther, uint64_t{1} << 48);
  w.Insert(&far, uint64_t{1} << 40);
  w.Insert(&edge, kEpoch);
  w.Insert(&last, kEpoch - 1);  // the latest deadline within the wheel
  for (px_timer_node *n : {&last, &edge, &far, &farther, &farther2}) {
    EXPECT_LE(w.NextTick(), n->tick);
    EXPECT_TRUE(w.Advance(n->tick - 1).empty());
    EXPECT_EQ(w.Advance(n->tick), Nodes{n});
  }
  EXPECT_LE(w.NextTick(), UINT64_MAX - 1);
  EXPECT_TRUE(px__timer_armed(&never));
  w.Cancel(&never);
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST_P(TimerTest, NearTheEndOfTime) {
  Timer w(ops(), UINT64_MAX - 100);
  px_timer_node a{}, b{};
  w.Insert(&a, UINT64_MAX - 1);
  w.Insert(&b, UINT64_MAX);
  EXPECT_TRUE(w.Advance(UINT64_MAX - 2).empty());
  EXPECT_EQ(w.Advance(UINT64_MAX - 1), Nodes{&a});
  EXPECT_EQ(w.Advance(UINT64_MAX), Nodes{&b});
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST_P(TimerTest, CancelBeforeFiring) {
  Timer w(ops(), 0);
  px_timer_node a{}, b{}, c{}, d{}, e{};
  w.Insert(&a, 10);
  w.Insert(&b, 10);
  w.Insert(&c, 10);
  w.Insert(&d, 5000);
  w.Insert(&e, 70000);
  w.Cancel(&b);
  w.Cancel(&e);
  EXPECT_FALSE(px__timer_armed(&b));
  EXPECT_FALSE(px__timer_armed(&e));
  EXPECT_TRUE(px__timer_armed(&a));
  EXPECT_EQ(w.Advance(100000), (Nodes{&a, &c, &d}));
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST_P(TimerTest, CancelClearsTheSlotSoNextTickMovesOn) {
  Timer w(ops(), 0);
  px_timer_node near{}, far{}, beyond{};
  w.Insert(&far, 5000);
  uint64_t far_only = w.NextTick();
  w.Insert(&near, 10);
  EXPECT_EQ(w.NextTick(), 10u);
  w.Cancel(&near);
  EXPECT_EQ(w.NextTick(), far_only);
  w.Cancel(&far);
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
  w.Insert(&beyond, uint64_t{1} << 40);
  EXPECT_NE(w.NextTick(), PX__TICK_NONE);
  w.Cancel(&beyond);
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
  EXPECT_TRUE(w.Advance(uint64_t{1} << 41).empty());
}

TEST_P(TimerTest, CancelPendingNode) {
  Timer w(ops(), 100);
  px_timer_node a{}, b{};
  w.Insert(&a, 50);
  w.Insert(&b, 100);
  w.Cancel(&a);
  EXPECT_EQ(w.NextTick(), 100u);
  w.Cancel(&b);
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
  EXPECT_TRUE(w.Advance(100).empty());
}

TEST_P(TimerTest, CancelAfterFiringIsANoOp) {
  Timer w(ops(), 0);
  px_timer_node a{}, b{};
  w.Insert(&a, 10);
  w.Insert(&b, 20);
  EXPECT_EQ(w.Advance(10), Nodes{&a});
  EXPECT_FALSE(px__timer_armed(&a));
  EXPECT_TRUE(px__timer_armed(&b));
  w.Cancel(&a);  // disarmed already: nothing to do, b is untouched
  EXPECT_LE(w.NextTick(), 20u);
  EXPECT_EQ(w.Advance(20), Nodes{&b});
  w.Insert(&a, 30);  // a fired node may be armed again
  EXPECT_EQ(w.Advance(30), Nodes{&a});
}

TEST_P(TimerTest, NeverTouchesTheWaker) {
  Timer w(ops(), 0);
  px_timer_node a{};
  int dummy = 0;
  a.waker.vtable = reinterpret_cast<const px_waker_vtable *>(&dummy);
  a.waker.data = &dummy;
  w.Insert(&a, 100000);
  w.Advance(99999);
  w.Cancel(&a);
  w.Insert(&a, 100001);
  w.Advance(100001);
  EXPECT_EQ(a.waker.vtable, reinterpret_cast<const px_waker_vtable *>(&dummy));
  EXPECT_EQ(a.waker.data, &dummy);
}

// Nodes of one deadline inserted at different times sit on different levels
// at first; cascades must still fire them in insertion order.
void ExpectFifo(const px__timer_ops *ops, uint64_t deadline, const std::vector<uint64_t> &insert_times) {
  Timer w(ops, insert_times.front());
  std::vector<px_timer_node> nodes(3 * insert_times.size());
  Nodes order;
  px_timer_node other_before{}, other_after{};
  w.Insert(&other_before, deadline - 1);
  w.Insert(&other_after, deadline + 1);
  size_t i = 0;
  for (uint64_t t : insert_times) {
    EXPECT_TRUE(w.Advance(t).empty());
    for (int k = 0; k < 3; k++, i++) {
      w.Insert(&nodes[i], deadline);
      order.push_back(&nodes[i]);
    }
  }
  EXPECT_EQ(w.Advance(deadline - 1), Nodes{&other_before});
  EXPECT_EQ(w.Advance(deadline), order);
  EXPECT_EQ(w.Advance(deadline + 1), Nodes{&other_after});
}

TEST_P(TimerTest, EqualDeadlinesFireInInsertionOrder) {
  ExpectFifo(ops(), 5000, {0, 100, 4096, 4990, 4998});
  ExpectFifo(ops(), 16777216 + 77, {0, 64, 262144, 16777216, 16777216 + 70});
  ExpectFifo(ops(), (uint64_t{1} << 40) + 7,
             {0, kEpoch - 1, kEpoch, (uint64_t{1} << 40) - kEpoch + 5,
              (uint64_t{1} << 40) - 3, (uint64_t{1} << 40) + 5});
}

// Arms every node of `nodes` (the timer starts at 1000) at random ticks: few
// distinct deadlines, so many are equal, spread over four levels. Returns
// the order they must fire in; *last is the latest tick.
Nodes ArmRandomly(Timer &w, std::vector<px_timer_node> &nodes, uint64_t seed,
                  uint64_t *last) {
  std::mt19937_64 rng(seed);
  std::vector<std::pair<uint64_t, size_t>> expected;
  *last = 0;
  for (size_t i = 0; i < nodes.size(); i++) {
    uint64_t tick = 1000 + (rng() % 512) * (1 + rng() % 40000);
    w.Insert(&nodes[i], tick);
    expected.emplace_back(tick, i);
    *last = std::max(*last, tick);
  }
  std::sort(expected.begin(), expected.end());
  Nodes want;
  for (auto &e : expected) want.push_back(&nodes[e.second]);
  return want;
}

// Cancel finds a node's slot from its tick (the wheel stores no index):
// after advances have moved every node through cascades, cancelling all of
// them leaves no slot marked occupied, so the timer says it is empty, and a
// node cancelled reads as not armed.
TEST_P(TimerTest, CancelAfterCascadesLeavesNothing) {
  for (uint64_t stop : {uint64_t{1000}, uint64_t{5000}, uint64_t{70000},
                        uint64_t{300000}, uint64_t{5000000}}) {
    std::vector<px_timer_node> nodes(3000);
    Timer w(ops(), 1000);
    uint64_t max_tick;
    Nodes want = ArmRandomly(w, nodes, stop, &max_tick);
    Nodes fired = w.Advance(stop);
    EXPECT_EQ(fired, Nodes(want.begin(), want.begin() + fired.size()));
    for (auto &n : nodes) {
      w.Cancel(&n);
      EXPECT_FALSE(px__timer_armed(&n));
    }
    EXPECT_EQ(w.NextTick(), PX__TICK_NONE) << "stop " << stop;
    EXPECT_TRUE(w.Advance(max_tick).empty());
  }
}

TEST_P(TimerTest, OneAdvanceFiresInDeadlineOrder) {
  std::vector<px_timer_node> nodes(3000);
  Timer w(ops(), 1000);
  uint64_t max_tick;
  Nodes want = ArmRandomly(w, nodes, 7, &max_tick);
  EXPECT_EQ(w.Advance(max_tick), want);
}

// The runtime fires a burst a batch at a time (advance's `max`): the
// batches together fire what one call would, in the same order, and
// between two batches the timer says it has work due.
TEST_P(TimerTest, AdvanceInBatchesFiresWhatOneCallWould) {
  for (size_t max : {size_t{1}, size_t{7}, size_t{32}}) {
    std::vector<px_timer_node> nodes(2000);
    Timer w(ops(), 1000);
    uint64_t max_tick;
    Nodes want = ArmRandomly(w, nodes, 11, &max_tick), got;
    for (;;) {
      Nodes batch = w.Advance(max_tick, max);
      got.insert(got.end(), batch.begin(), batch.end());
      if (batch.size() < max) break;
      if (got.size() < want.size()) {
        EXPECT_LE(w.NextTick(), max_tick) << "due nodes left, none said";
      }
    }
    EXPECT_EQ(got, want) << "max " << max;
    EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
  }
}

// Between two batches the nodes left can be cancelled, and a node inserted
// for the tick being fired (or earlier) fires in a later call; one for a
// later tick within `now` fires in deadline order.
TEST_P(TimerTest, InsertAndCancelBetweenBatches) {
  Timer w(ops(), 0);
  px_timer_node a{}, b{}, c{}, d{}, e{}, f{}, g{};
  w.Insert(&a, 10);
  w.Insert(&b, 10);
  w.Insert(&c, 10);
  w.Insert(&g, 10);
  w.Insert(&d, 15);
  EXPECT_EQ(w.Advance(20, 1), Nodes{&a});
  EXPECT_LE(w.NextTick(), 20u);
  w.Cancel(&g);
  EXPECT_FALSE(px__timer_armed(&g));
  w.Insert(&e, 5);   // before the tick being fired
  w.Insert(&f, 18);  // after it, within now
  Nodes got;
  for (int calls = 0; calls < 4 && w.NextTick() <= 20; calls++) {
    Nodes batch = w.Advance(20);
    got.insert(got.end(), batch.begin(), batch.end());
  }
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
  ASSERT_EQ(got.size(), 5u);
  auto at = [&](px_timer_node *n) {
    return std::find(got.begin(), got.end(), n) - got.begin();
  };
  EXPECT_LT(at(&b), at(&c));
  EXPECT_LT(at(&c), at(&d));
  EXPECT_LT(at(&d), at(&f));
  EXPECT_LT(at(&e), 5) << "e never fired";
}

TEST_P(TimerTest, PeriodicReinsertFromCallback) {
  Timer w(ops(), 0);
  px_timer_node a{};
  std::vector<uint64_t> ticks;
  w.on_fire = [&](px_timer_node *n) {
    ticks.push_back(n->tick);
    if (ticks.size() < 100) w.Insert(n, n->tick + 10);
  };
  w.Insert(&a, 10);
  EXPECT_EQ(w.Advance(1000).size(), 100u);  // every re-arm is due by 1000
  ASSERT_EQ(ticks.size(), 100u);
  for (size_t i = 0; i < ticks.size(); i++) EXPECT_EQ(ticks[i], 10 * (i + 1));
  EXPECT_FALSE(px__timer_armed(&a));
}

TEST_P(TimerTest, ReinsertForTheSameTickWaitsForTheNextAdvance) {
  Timer w(ops(), 0);
  px_timer_node a{};
  int fires = 0;
  w.on_fire = [&](px_timer_node *n) {
    if (++fires < 3) w.Insert(n, n->tick);
  };
  w.Insert(&a, 10);
  EXPECT_EQ(w.Advance(10), Nodes{&a});  // no endless loop
  EXPECT_EQ(w.NextTick(), 10u);
  EXPECT_EQ(w.Advance(10), Nodes{&a});
  EXPECT_EQ(w.Advance(50), Nodes{&a});
  EXPECT_TRUE(w.Advance(100).empty());
}

TEST_P(TimerTest, CallbackCancelsOthers) {
  Timer w(ops(), 0);
  px_timer_node a{}, b{}, c{}, d{};
  w.Insert(&a, 64);
  w.Insert(&b, 64);
  w.Insert(&c, 64);
  w.Insert(&d, 70);
  w.on_fire = [&](px_timer_node *n) {
    if (n == &a) {
      w.Cancel(&b);  // waiting on the same firing list
      w.Cancel(&d);  // a later tick in this same advance
    }
  };
  EXPECT_EQ(w.Advance(100), (Nodes{&a, &c}));
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

// a (64) and b (70) share a level-1 slot. a's callback inserts c for 70 and
// e for 65: c must fire after b, which was inserted earlier and cascades out
// of the same slot a fired from.
TEST_P(TimerTest, CallbackInsertKeepsFifoAcrossACascade) {
  Timer w(ops(), 0);
  px_timer_node a{}, b{}, c{}, e{};
  w.Insert(&a, 64);
  w.Insert(&b, 70);
  w.on_fire = [&](px_timer_node *n) {
    if (n == &a) {
      w.Insert(&c, 70);
      w.Insert(&e, 65);
    }
  };
  EXPECT_EQ(w.Advance(100), (Nodes{&a, &e, &b, &c}));
}

// Counts live blocks of px__alloc (single-threaded tests only).
long g_live_blocks = 0;
void *CountingAlloc(void *, size_t n) {
  g_live_blocks++;
  return std::malloc(n);
}
void CountingFree(void *, void *p, size_t) {
  g_live_blocks--;
  std::free(p);
}

// A few timers need no memory at all, and a burst of many gives its memory
// back once they have all fired or been cancelled: an empty timer holds no
// allocation, so a runtime's memory returns to where it was.
TEST_P(TimerTest, HoldsNoMemoryWhenEmpty) {
  px_allocator counting = {CountingAlloc, CountingFree, nullptr};
  px_set_allocator(&counting);
  g_live_blocks = 0;
  {
    Timer w(ops(), 0);
    std::vector<px_timer_node> nodes(1000);
    for (size_t i = 0; i < 4; i++) w.Insert(&nodes[i], 10 + i);
    EXPECT_EQ(g_live_blocks, 0) << "a few timers allocated";
    EXPECT_EQ(w.Advance(100).size(), 4u);
    for (size_t i = 0; i < nodes.size(); i++) w.Insert(&nodes[i], 200 + i);
    EXPECT_EQ(w.Advance(700).size(), 501u);
    for (size_t i = 501; i < nodes.size(); i++) w.Cancel(&nodes[i]);
    EXPECT_EQ(g_live_blocks, 0) << "an empty timer kept memory";
    for (size_t i = 0; i < nodes.size(); i++) w.Insert(&nodes[i], 900 + i);
  }  // destroyed with nodes still armed: destroy releases everything
  EXPECT_EQ(g_live_blocks, 0);
  px_set_allocator(nullptr);
}

// The wheel alone: a deadline two levels up is first due at its slot's
// start, where it cascades down a level instead of firing, and next_tick
// then names the lower slot.
TEST(WheelOnly, NextTickAtACascadePoint) {
  EXPECT_STREQ(px__wheel_ops.name, "wheel");
  Timer w(&px__wheel_ops, 0);
  px_timer_node a{};
  w.Insert(&a, 5000);  // level 2, slot 1: the slot starts at tick 4096
  EXPECT_EQ(w.NextTick(), 4096u);
  EXPECT_TRUE(w.Advance(4096).empty());  // a cascade, not a fire
  EXPECT_EQ(w.NextTick(), 5000u - 5000u % 64);  // now a level-1 slot
}

INSTANTIATE_TEST_SUITE_P(
    Backends, TimerTest, ::testing::ValuesIn(kBackends),
    [](const ::testing::TestParamInfo<const px__timer_ops *> &info) {
      return std::string(info.param->name);
    });

// One long random sequence of inserts (of every range, past deadlines included), cancels and
// advances, checked against an ordered map keyed by (deadline, insertion
// number). Callbacks also re-arm and cancel. The model's rule: an advance to
// `now` fires every node due by `now` in key order, except that a node armed
// from a callback for a tick not after the one being fired waits for the
// next advance.
void RunRandomized(const px__timer_ops *ops,
                   std::vector<std::pair<int, uint64_t>> *log) {
  constexpr int kNodes = 512;
  constexpr int kOps = 200000;
  using Key = std::pair<uint64_t, uint64_t>;  // (tick, insertion number)

  std::mt19937_64 rng(20240611);
  std::vector<px_timer_node> nodes(kNodes);
  std::vector<Key> key(kNodes);
  std::vector<bool> armed(kNodes, false);
  std::map<Key, int> model;
  std::vector<std::pair<Key, int>> deferred;  // armed during an advance
  uint64_t seq = 0;
  uint64_t now = kEpoch - 3000000;  // big jumps will cross an epoch
  uint64_t advance_from = now;
  bool advancing = false;
  uint64_t firing_tick = 0;  // while advancing: the tick being fired
  size_t total_fired = 0;
  Timer w(ops, now);

  auto index = [&](px_timer_node *n) {
    return static_cast<int>(n - nodes.data());
  };
  auto random_delay = [&]() -> uint64_t {
    uint64_t r = rng() % 100;
    if (r < 40) return rng() % 64;
    if (r < 65) return rng() % 4096;
    if (r < 80) return rng() % 262144;
    if (r < 92) return rng() % 16777216;
    if (r < 98) return rng() % (kEpoch + 1000);
    return rng() % (uint64_t{1} << 40);
  };
  auto arm = [&](int i, uint64_t tick) {
    w.Insert(&nodes[i], tick);
    key[i] = Key(tick, seq++);
    armed[i] = true;
    if (advancing && tick <= firing_tick)
      deferred.emplace_back(key[i], i);  // see the rule above
    else
      model.emplace(key[i], i);
  };
  auto disarm = [&](int i) {
    w.Cancel(&nodes[i]);
    armed[i] = false;
    if (model.erase(key[i]) == 0) {
      auto it = std::find_if(
          deferred.begin(), deferred.end(),
          [&](const std::pair<Key, int> &d) { return d.second == i; });
      ASSERT_NE(it, deferred.end());
      deferred.erase(it);
    }
  };

  w.on_fire = [&](px_timer_node *n) {
    int i = index(n);
    ASSERT_FALSE(model.empty());
    ASSERT_EQ(model.begin()->second, i) << "wrong node fired";
    model.erase(model.begin());
    armed[i] = false;
    total_fired++;
    log->emplace_back(i, n->tick);
    uint64_t r = rng() % 100;
    // The tick being fired: a past deadline fires at the advance's start.
    firing_tick = std::max(n->tick, advance_from);
    if (r < 10) {
      arm(i, firing_tick + 1 + rng() % 300);  // may be due in this advance
    } else if (r < 13) {
      arm(i, firing_tick - std::min<uint64_t>(firing_tick, rng() % 3));
    } else if (r < 18) {
      int j = static_cast<int>(rng() % kNodes);
      if (armed[j]) disarm(j);
    }
  };

  for (int op = 0; op < kOps; op++) {
    uint64_t r = rng() % 1000;
    int i = static_cast<int>(rng() % kNodes);
    if (r < 500) {
      if (!armed[i]) {
        uint64_t tick = now + random_delay();
        if (rng() % 20 == 0) tick = now - std::min<uint64_t>(now, rng() % 2000);
        arm(i, tick);
      } else {
        disarm(i);
      }
    } else if (r < 600) {
      if (armed[i]) disarm(i);
    } else {
      uint64_t target = now;
      if (r < 980) {
        target += (rng() % 4 == 0) ? 0 : rng() % 100;
      } else if (r < 997) {
        target += rng() % 100000;
      } else if (r < 999) {
        // Jump to the next deadline, as a parked runtime would. The model
        // says where it is: backends may answer next_tick differently (a
        // wheel wakes early to cascade), and the sequence must not depend
        // on the backend.
        if (!model.empty()) target = std::max(now, model.begin()->first.first);
      } else {
        target += rng() % (uint64_t{1} << 38);
      }
      advance_from = now;
      advancing = true;
      w.Advance(target);
      advancing = false;
      now = target;
      ASSERT_FALSE(::testing::Test::HasFailure()) << "after op " << op;
      ASSERT_TRUE(model.empty() || model.begin()->first.first > now);
      for (auto &d : deferred) model.emplace(d.first, d.second);
      deferred.clear();
    }
    uint64_t next = w.NextTick();
    if (model.empty()) {
      ASSERT_EQ(next, PX__TICK_NONE) << "op " << op;
    } else {
      ASSERT_LE(next, model.begin()->first.first) << "op " << op;
    }
  }
  EXPECT_GT(total_fired, 20000u);
}


// Both backends, driven by the same seed, must agree with the model and so
// with each other: the same nodes, at the same ticks, in the same order.
TEST(TimerConformance, RandomizedBackendsAgreeWithTheModel) {
  std::vector<std::pair<int, uint64_t>> logs[2];
  for (size_t b = 0; b < 2; b++) {
    SCOPED_TRACE(kBackends[b]->name);
    RunRandomized(kBackends[b], &logs[b]);
    ASSERT_FALSE(HasFatalFailure());
  }
  EXPECT_EQ(logs[0].size(), logs[1].size());
  EXPECT_TRUE(logs[0] == logs[1]) << "the backends fired differently";
}

}  // namespace
