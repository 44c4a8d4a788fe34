// Tests of the timing wheel through its ops table, px__wheel_ops: ordering,
// cascades across every level, deadlines beyond the wheel's span, cancel,
// callbacks that insert and cancel, and a randomized comparison against a
// simple ordered-map model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "timers/timer.h"

extern "C" const px__timer_ops px__wheel_ops;

namespace {

constexpr uint64_t kEpoch = uint64_t{1} << 36;  // 64^6 ticks: the wheel's span

// One wheel instance. Advance returns what fired, in order, and checks on
// the way that each node was disarmed and not early.
class Wheel {
 public:
  explicit Wheel(uint64_t now = 0)
      : mem_(::operator new(px__wheel_ops.size)), now_(now) {
    px__wheel_ops.init(mem_, now);
  }
  ~Wheel() {
    px__wheel_ops.destroy(mem_);
    ::operator delete(mem_);
  }
  Wheel(const Wheel &) = delete;
  Wheel &operator=(const Wheel &) = delete;

  void Insert(px_timer_node *n, uint64_t tick) {
    px__wheel_ops.insert(mem_, n, tick);
  }
  void Cancel(px_timer_node *n) { px__wheel_ops.cancel(mem_, n); }
  uint64_t NextTick() { return px__wheel_ops.next_tick(mem_); }

  std::vector<px_timer_node *> Advance(uint64_t now) {
    fired_.clear();
    now_ = std::max(now_, now);
    size_t n = px__wheel_ops.advance(mem_, now, &Wheel::OnFire, this);
    EXPECT_EQ(n, fired_.size());
    return fired_;
  }

  // Runs after each fire, inside the callback.
  std::function<void(px_timer_node *)> on_fire;

 private:
  static void OnFire(px_timer_node *n, void *arg) {
    auto *self = static_cast<Wheel *>(arg);
    EXPECT_FALSE(n->flags & PX__TIMER_ARMED) << "fired while still armed";
    EXPECT_LE(n->tick, self->now_) << "fired early";
    self->fired_.push_back(n);
    if (self->on_fire) self->on_fire(n);
  }

  void *mem_;
  uint64_t now_;
  std::vector<px_timer_node *> fired_;
};

using Nodes = std::vector<px_timer_node *>;

TEST(WheelTest, NodeFitsInACacheLine) {
  static_assert(sizeof(px_timer_node) <= 64, "px_timer_node grew past 64");
  EXPECT_LE(sizeof(px_timer_node), 64u);
}

TEST(WheelTest, OpsTableIsComplete) {
  EXPECT_STREQ(px__wheel_ops.name, "wheel");
  EXPECT_GT(px__wheel_ops.size, 0u);
  EXPECT_NE(px__wheel_ops.init, nullptr);
  EXPECT_NE(px__wheel_ops.insert, nullptr);
  EXPECT_NE(px__wheel_ops.cancel, nullptr);
  EXPECT_NE(px__wheel_ops.next_tick, nullptr);
  EXPECT_NE(px__wheel_ops.advance, nullptr);
  EXPECT_NE(px__wheel_ops.destroy, nullptr);
}

TEST(WheelTest, EmptyWheelHasNothingToDo) {
  Wheel w(42);
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
  EXPECT_TRUE(w.Advance(1000000).empty());
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST(WheelTest, ZeroDelayFiresOnNextAdvance) {
  Wheel w(500);
  px_timer_node a{};
  w.Insert(&a, 500);
  EXPECT_TRUE(a.flags & PX__TIMER_ARMED);
  EXPECT_LE(w.NextTick(), 500u);
  EXPECT_EQ(w.Advance(500), Nodes{&a});  // same tick: no time needs to pass
  EXPECT_TRUE(w.Advance(500).empty());
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST(WheelTest, ZeroDelayAfterAnAdvance) {
  Wheel w(0);
  w.Advance(123456);  // empty: the current tick still moves
  px_timer_node a{};
  w.Insert(&a, 123456);
  EXPECT_EQ(w.Advance(123456), Nodes{&a});
}

TEST(WheelTest, PastDeadlinesFireFirstInDeadlineOrder) {
  Wheel w(1000);
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

TEST(WheelTest, AdvanceNeverGoesBackwards) {
  Wheel w(1000);
  px_timer_node a{};
  w.Insert(&a, 1010);
  EXPECT_TRUE(w.Advance(5).empty());
  EXPECT_TRUE(w.Advance(1009).empty());
  EXPECT_EQ(w.Advance(1010), Nodes{&a});
}

// (start tick, delay): delays around every level boundary, the end of the
// wheel's span and beyond it, from starts that put the deadline at different
// offsets within the blocks (one just before an epoch boundary).
class WheelDelayTest
    : public ::testing::TestWithParam<std::tuple<uint64_t, uint64_t>> {
 protected:
  uint64_t start() const { return std::get<0>(GetParam()); }
  uint64_t tick() const {
    return std::get<0>(GetParam()) + std::get<1>(GetParam());
  }
};

TEST_P(WheelDelayTest, FiresExactlyAtItsTickWhenStepping) {
  Wheel w(start());
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

TEST_P(WheelDelayTest, FiresInOneBigJump) {
  Wheel w(start());
  px_timer_node a{};
  w.Insert(&a, tick());
  EXPECT_EQ(w.Advance(tick()), Nodes{&a});

  Wheel w2(start());
  px_timer_node b{};
  w2.Insert(&b, tick());
  EXPECT_TRUE(w2.Advance(tick() - 1).empty());
  EXPECT_EQ(w2.Advance(tick() + 1000000), Nodes{&b});
}

// A runtime sleeps until next_tick and advances there: the node must fire
// exactly when the target reaches its tick, after a few cascade wake-ups.
TEST_P(WheelDelayTest, DrivenByNextTick) {
  Wheel w(start());
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
  // One wake-up per epoch boundary crossed, then at most one per level.
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
    Delays, WheelDelayTest,
    ::testing::Combine(::testing::ValuesIn(kStarts),
                       ::testing::ValuesIn(kDelays)),
    [](const ::testing::TestParamInfo<WheelDelayTest::ParamType> &info) {
      return "start" + std::to_string(std::get<0>(info.param)) + "_delay" +
             std::to_string(std::get<1>(info.param));
    });

TEST(WheelTest, MaximumDelayAndBeyondTheWheel) {
  Wheel w(0);
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
  EXPECT_TRUE(never.flags & PX__TIMER_ARMED);
  w.Cancel(&never);
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST(WheelTest, NearTheEndOfTime) {
  Wheel w(UINT64_MAX - 100);
  px_timer_node a{}, b{};
  w.Insert(&a, UINT64_MAX - 1);
  w.Insert(&b, UINT64_MAX);
  EXPECT_TRUE(w.Advance(UINT64_MAX - 2).empty());
  EXPECT_EQ(w.Advance(UINT64_MAX - 1), Nodes{&a});
  EXPECT_EQ(w.Advance(UINT64_MAX), Nodes{&b});
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST(WheelTest, CancelBeforeFiring) {
  Wheel w(0);
  px_timer_node a{}, b{}, c{}, d{}, e{};
  w.Insert(&a, 10);
  w.Insert(&b, 10);
  w.Insert(&c, 10);
  w.Insert(&d, 5000);
  w.Insert(&e, 70000);
  w.Cancel(&b);
  w.Cancel(&e);
  EXPECT_FALSE(b.flags & PX__TIMER_ARMED);
  EXPECT_FALSE(e.flags & PX__TIMER_ARMED);
  EXPECT_TRUE(a.flags & PX__TIMER_ARMED);
  EXPECT_EQ(w.Advance(100000), (Nodes{&a, &c, &d}));
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
}

TEST(WheelTest, CancelClearsTheSlotSoNextTickMovesOn) {
  Wheel w(0);
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

TEST(WheelTest, CancelPendingNode) {
  Wheel w(100);
  px_timer_node a{}, b{};
  w.Insert(&a, 50);
  w.Insert(&b, 100);
  w.Cancel(&a);
  EXPECT_EQ(w.NextTick(), 100u);
  w.Cancel(&b);
  EXPECT_EQ(w.NextTick(), PX__TICK_NONE);
  EXPECT_TRUE(w.Advance(100).empty());
}

TEST(WheelTest, CancelAfterFiringIsANoOp) {
  Wheel w(0);
  px_timer_node a{}, b{};
  w.Insert(&a, 10);
  w.Insert(&b, 20);
  EXPECT_EQ(w.Advance(10), Nodes{&a});
  EXPECT_FALSE(a.flags & PX__TIMER_ARMED);
  EXPECT_TRUE(b.flags & PX__TIMER_ARMED);
  w.Cancel(&a);  // disarmed already: nothing to do, b is untouched
  EXPECT_LE(w.NextTick(), 20u);
  EXPECT_EQ(w.Advance(20), Nodes{&b});
  w.Insert(&a, 30);  // a fired node may be armed again
  EXPECT_EQ(w.Advance(30), Nodes{&a});
}

TEST(WheelTest, NeverTouchesTheWaker) {
  Wheel w(0);
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
void ExpectFifo(uint64_t deadline, const std::vector<uint64_t> &insert_times) {
  Wheel w(insert_times.front());
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

TEST(WheelTest, EqualDeadlinesFireInInsertionOrder) {
  ExpectFifo(5000, {0, 100, 4096, 4990, 4998});
  ExpectFifo(16777216 + 77, {0, 64, 262144, 16777216, 16777216 + 70});
  ExpectFifo((uint64_t{1} << 40) + 7,
             {0, kEpoch - 1, kEpoch, (uint64_t{1} << 40) - kEpoch + 5,
              (uint64_t{1} << 40) - 3, (uint64_t{1} << 40) + 5});
}

TEST(WheelTest, OneAdvanceFiresInDeadlineOrder) {
  std::mt19937_64 rng(7);
  std::vector<px_timer_node> nodes(3000);
  std::vector<std::pair<uint64_t, size_t>> expected;
  Wheel w(1000);
  uint64_t max_tick = 0;
  for (size_t i = 0; i < nodes.size(); i++) {
    // Few distinct deadlines, so many are equal; spread over four levels.
    uint64_t tick = 1000 + (rng() % 512) * (1 + rng() % 40000);
    w.Insert(&nodes[i], tick);
    expected.emplace_back(tick, i);
    max_tick = std::max(max_tick, tick);
  }
  std::sort(expected.begin(), expected.end());
  Nodes want;
  for (auto &e : expected) want.push_back(&nodes[e.second]);
  EXPECT_EQ(w.Advance(max_tick), want);
}

TEST(WheelTest, PeriodicReinsertFromCallback) {
  Wheel w(0);
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
  EXPECT_FALSE(a.flags & PX__TIMER_ARMED);
}

TEST(WheelTest, ReinsertForTheSameTickWaitsForTheNextAdvance) {
  Wheel w(0);
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

TEST(WheelTest, CallbackCancelsOthers) {
  Wheel w(0);
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
TEST(WheelTest, CallbackInsertKeepsFifoAcrossACascade) {
  Wheel w(0);
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

// Random inserts (of every range, past deadlines included), cancels and
// advances, checked against an ordered map keyed by (deadline, insertion
// number). Callbacks also re-arm and cancel. The model's rule: an advance to
// `now` fires every node due by `now` in key order, except that a node armed
// from a callback for a tick not after the one being fired waits for the
// next advance.
TEST(WheelTest, RandomizedAgainstReferenceModel) {
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
  Wheel w(now);

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
        uint64_t next = w.NextTick();
        if (next != PX__TICK_NONE) target = std::max(now, next);
      } else {
        target += rng() % (uint64_t{1} << 38);
      }
      advance_from = now;
      advancing = true;
      w.Advance(target);
      advancing = false;
      now = target;
      ASSERT_FALSE(HasFailure()) << "after op " << op;
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

}  // namespace
