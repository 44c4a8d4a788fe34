// Tests of the epoll reactor and of the px__io readiness record it feeds.
//
// They drive the backend directly (no runtime): register a socket, make the
// kernel produce an event, poll, and look at what px__io recorded and which
// wakers fired. The reactor internals are reached through a small C shim,
// epoll_test_shim.h, because reactor.h's C11 atomics are not C++.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "reactors/epoll/epoll_test_shim.h"

namespace {

// A waker that counts what is done with it, to check that the reactor wakes
// each stored waker exactly once and releases every clone it takes.
struct Counter {
  std::atomic<int> wakes{0};
  std::atomic<int> live{0};  // clones not yet consumed or dropped
};

px_waker counting_clone(void *data);
void counting_wake(void *data) {
  auto *c = static_cast<Counter *>(data);
  c->wakes++;
  c->live--;
}
void counting_wake_by_ref(void *data) { static_cast<Counter *>(data)->wakes++; }
void counting_drop(void *data) { static_cast<Counter *>(data)->live--; }

const px_waker_vtable counting_vtable = {counting_clone, counting_wake,
                                         counting_wake_by_ref, counting_drop};

px_waker counting_clone(void *data) {
  static_cast<Counter *>(data)->live++;
  return px_waker{&counting_vtable, data};
}

// The waker a test lends to poll_ready; it is borrowed, so not counted.
px_waker borrowed(Counter *c) { return px_waker{&counting_vtable, c}; }

using Clock = std::chrono::steady_clock;

long ms_since(Clock::time_point t) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t)
          .count());
}

class EpollTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(shim_reactor_new(0, &reactor_), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_), 0);
  }
  void TearDown() override {
    if (io_ != nullptr) shim_io_free(io_);
    for (int fd : fds_)
      if (fd >= 0) close(fd);
    shim_reactor_free(reactor_);
  }

  // Registers fds_[0] and consumes the initial "writable" edge epoll
  // reports for a fresh socket, so tests start from a quiet state.
  void RegisterQuiet() {
    io_ = shim_io_new(fds_[0]);
    ASSERT_NE(io_, nullptr);
    ASSERT_EQ(shim_register(io_, reactor_), 0);
    ASSERT_EQ(shim_poll(reactor_, 1000), 1);
    ASSERT_EQ(shim_ready_bits(io_), unsigned{SHIM_WRITABLE});
  }

  void Send(const char *s) {
    ASSERT_EQ(write(fds_[1], s, strlen(s)), static_cast<ssize_t>(strlen(s)));
  }

  // Reads fds_[0] until EAGAIN, like a future that wants to clear.
  void Drain() {
    char buf[256];
    while (read(fds_[0], buf, sizeof buf) > 0) {
    }
    ASSERT_EQ(errno, EAGAIN);
  }

  shim_reactor *reactor_ = nullptr;
  shim_io *io_ = nullptr;
  int fds_[2] = {-1, -1};
};

TEST_F(EpollTest, DescribesItself) {
  EXPECT_STREQ(shim_name(), "epoll");
  EXPECT_EQ(shim_features(), 0x1u | 0x2u);  // EDGE | O1
}

TEST_F(EpollTest, ReadableWhenDataArrives) {
  RegisterQuiet();
  unsigned ready;
  uint64_t tick;
  EXPECT_FALSE(shim_poll_ready(io_, nullptr, SHIM_READABLE, &ready, &tick));

  Send("x");
  ASSERT_EQ(shim_poll(reactor_, 1000), 1);
  ASSERT_TRUE(shim_poll_ready(io_, nullptr, SHIM_READABLE, &ready, &tick));
  EXPECT_EQ(ready, unsigned{SHIM_READABLE});
}

TEST_F(EpollTest, WritableWhenRegistered) {
  io_ = shim_io_new(fds_[0]);
  ASSERT_EQ(shim_register(io_, reactor_), 0);
  // Registering twice with the same reactor is a no-op, not EEXIST.
  EXPECT_EQ(shim_register(io_, reactor_), 0);
  ASSERT_EQ(shim_poll(reactor_, 1000), 1);
  unsigned ready;
  uint64_t tick;
  ASSERT_TRUE(shim_poll_ready(io_, nullptr, SHIM_WRITABLE, &ready, &tick));
  EXPECT_EQ(ready, unsigned{SHIM_WRITABLE});
  // Edge-triggered: no new edge, no new event.
  EXPECT_EQ(shim_poll(reactor_, 0), 0);
}

TEST_F(EpollTest, WritableAgainAfterTheBufferDrains) {
  RegisterQuiet();
  // Fill the socket buffer until the kernel says EAGAIN.
  char chunk[4096] = {0};
  while (write(fds_[0], chunk, sizeof chunk) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);
  unsigned ready;
  uint64_t tick;
  ASSERT_TRUE(shim_poll_ready(io_, nullptr, SHIM_WRITABLE, &ready, &tick));
  shim_clear_ready(io_, ready, tick);
  Counter c;
  px_waker w = borrowed(&c);
  EXPECT_FALSE(shim_poll_ready(io_, &w, SHIM_WRITABLE, &ready, &tick));

  // The peer reads everything: room again, one new edge.
  char sink[65536];
  while (read(fds_[1], sink, sizeof sink) > 0) {
  }
  ASSERT_EQ(shim_poll(reactor_, 1000), 1);
  EXPECT_EQ(c.wakes.load(), 1);
  EXPECT_TRUE(shim_poll_ready(io_, nullptr, SHIM_WRITABLE, &ready, &tick));
  EXPECT_EQ(c.live.load(), 0);
}

TEST_F(EpollTest, WakeupFromAnotherThread) {
  auto start = Clock::now();
  std::thread waker([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(shim_wakeup(reactor_), 0);
  });
  // Wakeups are not registrations, so the count is 0.
  EXPECT_EQ(shim_poll(reactor_, -1), 0);
  waker.join();
  EXPECT_GE(ms_since(start), 40);
  EXPECT_LT(ms_since(start), 5000);
}

TEST_F(EpollTest, WakeupBeforePollMakesTheNextPollReturn) {
  ASSERT_EQ(shim_wakeup(reactor_), 0);
  ASSERT_EQ(shim_wakeup(reactor_), 0);
  auto start = Clock::now();
  EXPECT_EQ(shim_poll(reactor_, 5000), 0);
  EXPECT_LT(ms_since(start), 1000);
  // The eventfd was drained: the next poll waits again.
  start = Clock::now();
  EXPECT_EQ(shim_poll(reactor_, 30), 0);
  EXPECT_GE(ms_since(start), 25);
}

TEST_F(EpollTest, PollTimesOut) {
  auto start = Clock::now();
  EXPECT_EQ(shim_poll(reactor_, 80), 0);
  long took = ms_since(start);
  EXPECT_GE(took, 75);
  EXPECT_LT(took, 2000);
  // Zero means "just look".
  start = Clock::now();
  EXPECT_EQ(shim_poll(reactor_, 0), 0);
  EXPECT_LT(ms_since(start), 50);
}

TEST_F(EpollTest, ClearForgetsTheEdgeWhenNothingNewHappened) {
  RegisterQuiet();
  Send("a");
  ASSERT_EQ(shim_poll(reactor_, 1000), 1);
  unsigned ready;
  uint64_t tick;
  ASSERT_TRUE(shim_poll_ready(io_, nullptr, SHIM_READABLE, &ready, &tick));
  Drain();
  shim_clear_ready(io_, ready, tick);
  Counter c;
  px_waker w = borrowed(&c);
  EXPECT_FALSE(shim_poll_ready(io_, &w, SHIM_READABLE, &ready, &tick));
  EXPECT_EQ(c.live.load(), 1);  // the stored clone
  // The writable bit was not part of the clear.
  EXPECT_EQ(shim_ready_bits(io_), unsigned{SHIM_WRITABLE});
  // The clone must go before `c` does.
  shim_deregister(io_);
  EXPECT_EQ(c.live.load(), 0);
}

TEST_F(EpollTest, NoLostWakeupWhenDataArrivesBeforeTheClear) {
  RegisterQuiet();
  Send("a");
  ASSERT_EQ(shim_poll(reactor_, 1000), 1);
  unsigned ready;
  uint64_t tick;
  ASSERT_TRUE(shim_poll_ready(io_, nullptr, SHIM_READABLE, &ready, &tick));
  Drain();    // the future's read returns EAGAIN here...
  Send("b");  // ...then data arrives and the reactor reports it...
  ASSERT_EQ(shim_poll(reactor_, 1000), 1);
  shim_clear_ready(io_, ready, tick);  // ...before the stale clear runs.
  unsigned again;
  uint64_t tick2;
  ASSERT_TRUE(shim_poll_ready(io_, nullptr, SHIM_READABLE, &again, &tick2));
  EXPECT_NE(tick2, tick);
  char c;
  EXPECT_EQ(read(fds_[0], &c, 1), 1);
  EXPECT_EQ(c, 'b');
}

TEST_F(EpollTest, DispatchWakesTheStoredWakerExactlyOnce) {
  RegisterQuiet();
  Counter c;
  px_waker w = borrowed(&c);
  unsigned ready;
  uint64_t tick;
  ASSERT_FALSE(shim_poll_ready(io_, &w, SHIM_READABLE, &ready, &tick));
  // Polling again with the same waker does not stack a second clone.
  ASSERT_FALSE(shim_poll_ready(io_, &w, SHIM_READABLE, &ready, &tick));
  EXPECT_EQ(c.live.load(), 1);

  Send("a");
  ASSERT_EQ(shim_poll(reactor_, 1000), 1);
  EXPECT_EQ(c.wakes.load(), 1);
  EXPECT_EQ(c.live.load(), 0);  // consumed by the wake

  // More events with an empty slot wake nobody.
  Send("b");
  ASSERT_EQ(shim_poll(reactor_, 1000), 1);
  shim_dispatch(io_, SHIM_READABLE);
  EXPECT_EQ(c.wakes.load(), 1);
}

TEST_F(EpollTest, PollingWithNoWakerForgetsTheStoredOne) {
  // What a cancelled socket future does on drop (reactors/tcp.c).
  io_ = shim_io_new(fds_[0]);
  Counter c;
  px_waker w = borrowed(&c);
  unsigned ready;
  uint64_t tick;
  ASSERT_FALSE(shim_poll_ready(io_, &w, SHIM_READABLE, &ready, &tick));
  EXPECT_EQ(c.live.load(), 1);
  px_waker none = PX_WAKER_EMPTY;
  EXPECT_FALSE(shim_poll_ready(io_, &none, SHIM_READABLE, &ready, &tick));
  EXPECT_EQ(c.live.load(), 0);
  shim_dispatch(io_, SHIM_READABLE);
  EXPECT_EQ(c.wakes.load(), 0);
}

TEST_F(EpollTest, NoLostWakeupUnderConcurrentDispatch) {
  // Another thread dispatches while this one checks readiness and stores
  // its waker, over and over, so the dispatch lands in every window of
  // px__io_poll_ready. Each round, either poll_ready sees the bit or the
  // waker fires: a round in which neither happens is a lost wake-up.
  io_ = shim_io_new(fds_[0]);
  Counter c;
  px_waker w = borrowed(&c);
  std::atomic<int> round{0};
  std::atomic<bool> stop{false};
  std::thread reactor([&] {
    int seen = 0;
    while (!stop.load()) {
      int r = round.load();
      if (r == seen) {
        // Yield rather than spin: on a loaded machine the two threads may
        // share one core.
        std::this_thread::yield();
        continue;
      }
      seen = r;
      shim_dispatch(io_, SHIM_READABLE);
    }
  });
  int lost = 0;
  for (int i = 1; i <= 50000 && lost == 0; i++) {
    int wakes_before = c.wakes.load();
    round.store(i);  // the other thread dispatches once, soon
    unsigned ready;
    uint64_t tick;
    if (!shim_poll_ready(io_, &w, SHIM_READABLE, &ready, &tick)) {
      auto start = Clock::now();
      while (c.wakes.load() == wakes_before && ms_since(start) < 2000)
        std::this_thread::yield();
      if (c.wakes.load() == wakes_before) lost++;
    }
    // Wait for this round's dispatch, then consume it for the next round.
    while (!shim_poll_ready(io_, nullptr, SHIM_READABLE, &ready, &tick))
      std::this_thread::yield();
    shim_clear_ready(io_, ready, tick);
  }
  stop.store(true);
  reactor.join();
  EXPECT_EQ(lost, 0);
  shim_deregister(io_);
  EXPECT_EQ(c.live.load(), 0);
}

TEST_F(EpollTest, ReaderAndWriterSlotsAreIndependent) {
  io_ = shim_io_new(fds_[0]);  // not registered: dispatch by hand
  Counter r, w;
  px_waker rw = borrowed(&r), ww = borrowed(&w);
  unsigned ready;
  uint64_t tick;
  ASSERT_FALSE(shim_poll_ready(io_, &rw, SHIM_READABLE, &ready, &tick));
  ASSERT_FALSE(shim_poll_ready(io_, &ww, SHIM_WRITABLE, &ready, &tick));
  shim_dispatch(io_, SHIM_WRITABLE);
  EXPECT_EQ(r.wakes.load(), 0);
  EXPECT_EQ(w.wakes.load(), 1);
  shim_dispatch(io_, SHIM_READABLE);
  EXPECT_EQ(r.wakes.load(), 1);
  EXPECT_EQ(w.wakes.load(), 1);
  EXPECT_EQ(r.live.load() + w.live.load(), 0);
}

TEST_F(EpollTest, HangupAndErrorMakeBothDirectionsReady) {
  io_ = shim_io_new(fds_[0]);
  Counter r, w;
  px_waker rw = borrowed(&r), ww = borrowed(&w);
  unsigned ready;
  uint64_t tick;
  ASSERT_FALSE(shim_poll_ready(io_, &rw, SHIM_READABLE, &ready, &tick));
  ASSERT_FALSE(shim_poll_ready(io_, &ww, SHIM_WRITABLE, &ready, &tick));
  shim_dispatch(io_, SHIM_ERROR);
  EXPECT_EQ(r.wakes.load(), 1);
  EXPECT_EQ(w.wakes.load(), 1);
  ASSERT_TRUE(shim_poll_ready(io_, nullptr, SHIM_WRITABLE, &ready, &tick));
  EXPECT_EQ(ready, unsigned{SHIM_WRITABLE | SHIM_ERROR});
  // A clear takes the direction away but the error stays on record.
  shim_clear_ready(io_, ready, tick);
  EXPECT_EQ(shim_ready_bits(io_), unsigned{SHIM_READABLE | SHIM_ERROR});
}

TEST_F(EpollTest, HangupWhenThePeerCloses) {
  RegisterQuiet();
  Counter c;
  px_waker w = borrowed(&c);
  unsigned ready;
  uint64_t tick;
  ASSERT_FALSE(shim_poll_ready(io_, &w, SHIM_READABLE, &ready, &tick));
  close(fds_[1]);
  fds_[1] = -1;
  ASSERT_EQ(shim_poll(reactor_, 1000), 1);
  EXPECT_EQ(c.wakes.load(), 1);
  ASSERT_TRUE(shim_poll_ready(io_, nullptr, SHIM_READABLE, &ready, &tick));
  EXPECT_EQ(ready & (SHIM_READABLE | SHIM_HUP),
            unsigned{SHIM_READABLE | SHIM_HUP});
  char b;
  EXPECT_EQ(read(fds_[0], &b, 1), 0);  // end of stream, as promised
}

TEST_F(EpollTest, HalfCloseIsReportedAsHangup) {
  // A TCP-like half close (shutdown of the peer's write side) arrives as
  // EPOLLRDHUP, which must read as "readable + HUP".
  RegisterQuiet();
  ASSERT_EQ(shutdown(fds_[1], SHUT_WR), 0);
  ASSERT_EQ(shim_poll(reactor_, 1000), 1);
  unsigned ready;
  uint64_t tick;
  ASSERT_TRUE(shim_poll_ready(io_, nullptr, SHIM_READABLE, &ready, &tick));
  EXPECT_TRUE(ready & SHIM_HUP);
}

TEST_F(EpollTest, DeregisterStopsDispatch) {
  RegisterQuiet();
  Counter c;
  px_waker w = borrowed(&c);
  unsigned ready;
  uint64_t tick;
  ASSERT_FALSE(shim_poll_ready(io_, &w, SHIM_READABLE, &ready, &tick));
  shim_deregister(io_);
  // Deregistration drops (does not wake) what was waiting.
  EXPECT_EQ(c.live.load(), 0);
  EXPECT_EQ(c.wakes.load(), 0);

  Send("a");
  EXPECT_EQ(shim_poll(reactor_, 50), 0);
  EXPECT_EQ(shim_ready_bits(io_), unsigned{SHIM_WRITABLE});
  // Deregistering twice is harmless, and so is registering again.
  shim_deregister(io_);
  ASSERT_EQ(shim_register(io_, reactor_), 0);
  EXPECT_EQ(shim_poll(reactor_, 1000), 1);
  EXPECT_TRUE(shim_poll_ready(io_, nullptr, SHIM_READABLE, &ready, &tick));
}

TEST_F(EpollTest, WakeAllWakesBothWaiters) {
  io_ = shim_io_new(fds_[0]);
  Counter c;
  px_waker w = borrowed(&c);
  unsigned ready;
  uint64_t tick;
  ASSERT_FALSE(
      shim_poll_ready(io_, &w, SHIM_READABLE | SHIM_WRITABLE, &ready, &tick));
  EXPECT_EQ(c.live.load(), 2);
  shim_wake_all(io_);
  EXPECT_EQ(c.wakes.load(), 2);
  EXPECT_EQ(c.live.load(), 0);
}

TEST_F(EpollTest, ModifyWithTheSameInterestIsFree) {
  RegisterQuiet();
  EXPECT_EQ(shim_modify(io_, SHIM_READABLE | SHIM_WRITABLE), 0);
  // Narrowing the interest is honoured: writes no longer produce events.
  EXPECT_EQ(shim_modify(io_, SHIM_READABLE), 0);
  EXPECT_EQ(shim_poll(reactor_, 0), 0);
  Send("a");
  EXPECT_EQ(shim_poll(reactor_, 1000), 1);
}

TEST_F(EpollTest, RegisteringAClosedDescriptorFails) {
  int fd = dup(fds_[0]);
  close(fd);
  shim_io *io = shim_io_new(fd);
  EXPECT_EQ(shim_register(io, reactor_), -EBADF);
  shim_io_free(io);
}

TEST_F(EpollTest, SmallEventCapacityStillDeliversEverything) {
  // With room for one event per poll, three ready sockets need three polls
  // and none is lost.
  shim_reactor *small;
  ASSERT_EQ(shim_reactor_new(1, &small), 0);
  int pairs[3][2];
  shim_io *ios[3];
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pairs[i]), 0);
    ios[i] = shim_io_new(pairs[i][0]);
    ASSERT_EQ(shim_register(ios[i], small), 0);
  }
  int total = 0;
  for (int i = 0; i < 3; i++) {
    int n = shim_poll(small, 1000);
    EXPECT_EQ(n, 1);
    total += n;
  }
  EXPECT_EQ(total, 3);
  EXPECT_EQ(shim_poll(small, 0), 0);
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(shim_ready_bits(ios[i]), unsigned{SHIM_WRITABLE});
    shim_io_free(ios[i]);
    close(pairs[i][0]);
    close(pairs[i][1]);
  }
  shim_reactor_free(small);
}

}  // namespace
