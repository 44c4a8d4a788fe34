// Wheel-specific tests of px__wheel_ops: where next_tick lands (cascade
// points), how many wake-ups a far deadline costs, and FIFO order across
// cascades. The interface-level cases every timer backend must pass (order,
// cancel, callbacks, far deadlines, the randomized model) live in
// timers/conformance_test.cc, which runs them against the wheel too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
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
    EXPECT_EQ(px__wheel_ops.insert(mem_, n, tick), 0);
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

TEST(WheelTest, NameAndNextTickAtACascadePoint) {
  EXPECT_STREQ(px__wheel_ops.name, "wheel");
  Wheel w(0);
  px_timer_node a{};
  w.Insert(&a, 5000);  // level 2, slot 1: the slot starts at tick 4096
  EXPECT_EQ(w.NextTick(), 4096u);
  EXPECT_TRUE(w.Advance(4096).empty());  // a cascade, not a fire
  EXPECT_EQ(w.NextTick(), 5000u - 5000u % 64);  // now a level-1 slot
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

}  // namespace
