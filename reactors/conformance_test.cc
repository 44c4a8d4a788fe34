// The reactor conformance suite: every backend, one binary, the same tests.
//
// Each test drives a backend's ops table directly (no runtime): register a
// descriptor, make the kernel produce readiness, poll, and look at what the
// px__io record holds and which wakers fired. The suite is written against
// what reactors/reactor.h promises, so it holds for edge-triggered backends
// (epoll, kqueue, libevent, io_uring) and level-triggered ones (select,
// poll) alike: a test never assumes that registering alone reports
// anything; it waits the way a future does, by storing a waker with
// px__io_poll_ready and polling until that waker fires.
//
// Adding a backend: link its NAME library in reactors/BUILD.bazel's
// conformance_test and add a line to kBackends below.
//
// The tests at the end (IoTest) exercise the px__io record alone, without a
// backend: waker slots, ticks, concurrent dispatch.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "reactors/core.h"
#include "reactors/reactor.h"

extern "C" {
extern const px__reactor_ops px__epoll_ops;
extern const px__reactor_ops px__select_ops;
extern const px__reactor_ops px__poll_ops;
extern const px__reactor_ops px__libevent_ops;
extern const px__reactor_ops px__kqueue_ops;
extern const px__reactor_ops px__io_uring_ops;
}

namespace {

// What each backend must say about itself (docs/BACKENDS.md's table).
struct Backend {
  const char *name;
  const px__reactor_ops *ops;
  unsigned features;
  int max_fd;
  bool reports_hup;  // tells a peer's close apart from plain readability
  // Frees a closed registration only when the next poll begins (its
  // events name registrations; PX__REACTOR_DEFER_FREE).
  bool retires;
};

const Backend kBackends[] = {
    {"epoll", &px__epoll_ops,
     PX__REACTOR_EDGE | PX__REACTOR_O1 | PX__REACTOR_DEFER_FREE, 0, true,
     true},
    {"select", &px__select_ops, PX__REACTOR_FD_LIMIT | PX__REACTOR_FD_TABLE,
     FD_SETSIZE, false, false},
    {"poll", &px__poll_ops, PX__REACTOR_FD_TABLE | PX__REACTOR_DEFER_FREE, 0,
     true, true},
    {"libevent", &px__libevent_ops,
     PX__REACTOR_EDGE | PX__REACTOR_O1 | PX__REACTOR_FD_TABLE, 0, false,
     false},
    // On Linux: the test-only emulation of tests/kqueue_emu.
    {"kqueue", &px__kqueue_ops,
     PX__REACTOR_EDGE | PX__REACTOR_O1 | PX__REACTOR_FD_TABLE |
         PX__REACTOR_DEFER_FREE,
     0, true, true},
    {"io_uring", &px__io_uring_ops,
     PX__REACTOR_EDGE | PX__REACTOR_O1 | PX__REACTOR_FD_TABLE, 0, true,
     false},
};

// ---- A waker that counts what is done with it ----------------------------

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

// ---- An allocator that checks every px__free matches its px__alloc --------

std::atomic<long> g_live_bytes{0};
// A block whose free a test waits for, and whether it happened.
std::atomic<void *> g_watched{nullptr};
std::atomic<bool> g_watched_freed{false};

void *count_alloc(void *, size_t size) {
  g_live_bytes += static_cast<long>(size);
  return malloc(size);
}
void count_free(void *, void *ptr, size_t size) {
  if (ptr == nullptr) return;
  g_live_bytes -= static_cast<long>(size);
  if (ptr == g_watched.load()) g_watched_freed = true;
  free(ptr);
}
const px_allocator kCountingAllocator = {count_alloc, count_free, nullptr};

// ---- Helpers ---------------------------------------------------------------

using Clock = std::chrono::steady_clock;

long ms_since(Clock::time_point t) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t)
          .count());
}

// px__io has atomics, so it lives on the heap and is never copied.
struct IoDeleter {
  void operator()(px__io *io) const {
    px__io_deregister(io);
    delete io;
  }
};
using IoPtr = std::unique_ptr<px__io, IoDeleter>;

IoPtr make_io(int fd) {
  IoPtr io(new px__io);
  px__io_init(io.get(), fd);
  return io;
}

// px__io_poll_ready with `waker` (nullptr: no waker, which forgets one).
bool poll_ready(px__io *io, const px_waker *waker, unsigned interest,
                px__io_event *ev = nullptr) {
  px_context cx = {waker, nullptr};
  px__io_event local = {0, 0};
  return px__io_poll_ready(io, &cx, interest, ev != nullptr ? ev : &local);
}

unsigned ready_bits(px__io *io) {
  return static_cast<unsigned>(io->state.load() & PX__READY_MASK);
}

std::string param_name(const ::testing::TestParamInfo<Backend> &info) {
  return info.param.name;
}

class ReactorTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    px_set_allocator(&kCountingAllocator);
    live_at_start_ = g_live_bytes.load();
    ops_ = GetParam().ops;
    int rc = px__reactor_create(ops_, nullptr, &reactor_);
    if (rc < 0 && std::string(ops_->name) == "io_uring") {
      GTEST_SKIP() << "io_uring_queue_init was refused by this kernel ("
                   << px_err_name(rc) << ": " << px_strerror(rc)
                   << "); the io_uring backend cannot run here";
    }
    ASSERT_EQ(rc, 0) << px_err_name(rc);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_), 0);
  }

  void TearDown() override {
    io_.reset();
    for (int fd : fds_)
      if (fd >= 0) close(fd);
    px__reactor_destroy(reactor_);
    // Every byte the backend allocated went back, with the same size.
    EXPECT_EQ(g_live_bytes.load(), live_at_start_);
    px_set_allocator(nullptr);
  }

  int Register(px__io *io) { return px__io_register(io, reactor_); }

  // Registers fds_[0] as io_.
  void RegisterSocket() {
    io_ = make_io(fds_[0]);
    ASSERT_EQ(Register(io_.get()), 0);
  }

  // Polls until nothing more is dispatched, so a test starts from a quiet
  // backend (edge-triggered ones report a fresh socket's writability).
  void Quiesce() {
    for (int i = 0; i < 20; i++)
      if (px__reactor_poll(reactor_, 50) == 0) return;
    FAIL() << "the backend never went quiet";
  }

  // Waits like a future: stores a waker, polls until it fires, then looks
  // again. Returns the readiness seen (0 when it timed out).
  unsigned WaitFor(px__io *io, unsigned interest, int timeout_ms = 2000) {
    Counter c;
    px_waker w = borrowed(&c);
    px__io_event ev = {0, 0};
    if (poll_ready(io, &w, interest, &ev)) return ev.ready;
    auto start = Clock::now();
    while (c.wakes.load() == 0 && ms_since(start) < timeout_ms) {
      int n = px__reactor_poll(reactor_, 50);
      EXPECT_GE(n, 0) << px_err_name(n);
    }
    unsigned got = poll_ready(io, nullptr, interest, &ev) ? ev.ready : 0;
    // Not woken: take our clone back before `c` goes out of scope.
    EXPECT_EQ(c.live.load(), 0);
    return got;
  }

  // Polls until `ms` have passed, the way the runtime waits for its next
  // timer: each call gets the time that is left. A wait may end early with
  // no events, and reactor.h allows it (EINTR counts as 0 events): a signal,
  // or the task work Linux queues to a thread when an io_uring it used is
  // closed, interrupts the next blocking epoll_wait once. So the test
  // checks what a caller sees, the deadline reached in a few calls, rather
  // than the length of one call. Returns the registrations dispatched.
  // How many polls a wait of a few tens of milliseconds may take: a few
  // (a wait may end a little early, or on a signal sent to the process;
  // under a sanitizer on a loaded machine a fourth call was seen), where a
  // busy loop of immediate returns takes thousands.
  static constexpr int kFewCalls = 10;

  int PollUntil(int ms, int *calls) {
    auto start = Clock::now();
    int total = 0;
    *calls = 0;
    for (long left = ms; left > 0; left = ms - ms_since(start)) {
      int n = px__reactor_poll(reactor_, static_cast<int>(left));
      EXPECT_GE(n, 0) << px_err_name(n);
      total += n;
      ++*calls;
    }
    return total;
  }

  void Send(const char *s) {
    ASSERT_EQ(send(fds_[1], s, strlen(s), MSG_NOSIGNAL),
              static_cast<ssize_t>(strlen(s)));
  }

  // Reads fds_[0] until EAGAIN, like a future that is about to clear.
  void Drain() {
    char buf[256];
    while (read(fds_[0], buf, sizeof buf) > 0) {
    }
    ASSERT_EQ(errno, EAGAIN);
  }

  const px__reactor_ops *ops_ = nullptr;
  px__reactor *reactor_ = nullptr;
  IoPtr io_;
  int fds_[2] = {-1, -1};
  long live_at_start_ = 0;
};

TEST_P(ReactorTest, DescribesItself) {
  EXPECT_STREQ(ops_->name, GetParam().name);
  EXPECT_EQ(ops_->features, GetParam().features);
  EXPECT_EQ(ops_->max_fd, GetParam().max_fd);
  // A limit is announced exactly when there is one.
  EXPECT_EQ((ops_->features & PX__REACTOR_FD_LIMIT) != 0, ops_->max_fd > 0);
}

// The entry points check their arguments once, for every backend; the
// backends' own functions are only ever called with valid ones.
TEST_P(ReactorTest, EntryPointsRejectBadArguments) {
  EXPECT_EQ(px__reactor_create(ops_, nullptr, nullptr), PX_EINVAL);
  px__reactor *out = reactor_;
  EXPECT_EQ(px__reactor_create(nullptr, nullptr, &out), PX_EINVAL);
  EXPECT_EQ(out, nullptr);
  EXPECT_EQ(px__reactor_poll(nullptr, 0), PX_EINVAL);
  EXPECT_EQ(px__reactor_wakeup(nullptr), PX_EINVAL);
  px__io io;
  px__io_init(&io, fds_[0]);
  EXPECT_EQ(px__io_register(&io, nullptr), PX_EINVAL);
  EXPECT_EQ(px__io_register(nullptr, reactor_), PX_EINVAL);
  px__io_init(&io, -1);
  EXPECT_EQ(px__io_register(&io, reactor_), PX_EINVAL);
  EXPECT_EQ(io.reactor, nullptr);
  px__reactor_destroy(nullptr);  // harmless
}

TEST_P(ReactorTest, WritableWhenRegistered) {
  RegisterSocket();
  // Registering twice with the same reactor is a no-op, not EEXIST.
  EXPECT_EQ(Register(io_.get()), 0);
  EXPECT_EQ(WaitFor(io_.get(), PX__WRITABLE), unsigned{PX__WRITABLE});
}

TEST_P(ReactorTest, ReadableWhenDataArrives) {
  RegisterSocket();
  Quiesce();
  EXPECT_EQ(WaitFor(io_.get(), PX__READABLE, 100), 0u);
  Send("x");
  EXPECT_EQ(WaitFor(io_.get(), PX__READABLE), unsigned{PX__READABLE});
  char c;
  EXPECT_EQ(read(fds_[0], &c, 1), 1);
}

TEST_P(ReactorTest, DataBeforeRegistrationIsReported) {
  Send("early");
  RegisterSocket();
  EXPECT_EQ(WaitFor(io_.get(), PX__READABLE), unsigned{PX__READABLE});
}

TEST_P(ReactorTest, DispatchWakesTheStoredWakerExactlyOnce) {
  RegisterSocket();
  Quiesce();
  Counter c;
  px_waker w = borrowed(&c);
  ASSERT_FALSE(poll_ready(io_.get(), &w, PX__READABLE));
  // Polling again with the same waker does not stack a second clone.
  ASSERT_FALSE(poll_ready(io_.get(), &w, PX__READABLE));
  EXPECT_EQ(c.live.load(), 1);

  Send("a");
  auto start = Clock::now();
  while (c.wakes.load() == 0 && ms_since(start) < 2000)
    ASSERT_GE(px__reactor_poll(reactor_, 50), 0);
  EXPECT_EQ(c.wakes.load(), 1);
  EXPECT_EQ(c.live.load(), 0);  // consumed by the wake

  // More data and more polls with an empty slot wake nobody, and a level-
  // triggered backend does not report the direction again until asked.
  Send("b");
  for (int i = 0; i < 3; i++) ASSERT_GE(px__reactor_poll(reactor_, 20), 0);
  EXPECT_EQ(c.wakes.load(), 1);
  EXPECT_TRUE(poll_ready(io_.get(), nullptr, PX__READABLE));
}

TEST_P(ReactorTest, LevelTriggeredBackendsDoNotSpinOnWritability) {
  // Nobody waits for anything: a level-triggered backend must not report
  // the (permanent) writability over and over; an edge-triggered one
  // reports it at most once.
  RegisterSocket();
  int total = 0;
  for (int i = 0; i < 5; i++) {
    int n = px__reactor_poll(reactor_, 10);
    ASSERT_GE(n, 0);
    total += n;
  }
  EXPECT_LE(total, 1);
}

TEST_P(ReactorTest, NoLostWakeupWhenDataArrivesBeforeTheClear) {
  RegisterSocket();
  Send("a");
  px__io_event ev = {0, 0};
  ASSERT_EQ(WaitFor(io_.get(), PX__READABLE), unsigned{PX__READABLE});
  ASSERT_TRUE(poll_ready(io_.get(), nullptr, PX__READABLE, &ev));
  Drain();    // the future's read returns EAGAIN here...
  Send("b");  // ...then data arrives and the reactor may report it...
  ASSERT_GE(px__reactor_poll(reactor_, 50), 0);
  px__io_clear_ready(io_.get(), ev);  // ...before the stale clear runs.
  // Whether the clear was skipped (a dispatch moved the tick) or not (a
  // level-triggered backend was not watching), waiting again finds "b".
  ASSERT_EQ(WaitFor(io_.get(), PX__READABLE), unsigned{PX__READABLE});
  char c;
  EXPECT_EQ(read(fds_[0], &c, 1), 1);
  EXPECT_EQ(c, 'b');
}

TEST_P(ReactorTest, ClearThenWaitAgainSeesNoStaleReadiness) {
  RegisterSocket();
  Send("a");
  px__io_event ev = {0, 0};
  ASSERT_EQ(WaitFor(io_.get(), PX__READABLE), unsigned{PX__READABLE});
  ASSERT_TRUE(poll_ready(io_.get(), nullptr, PX__READABLE, &ev));
  Drain();
  Quiesce();
  ASSERT_TRUE(poll_ready(io_.get(), nullptr, PX__READABLE, &ev));
  px__io_clear_ready(io_.get(), ev);
  // Nothing new: no duplicated wake-up for data already consumed.
  EXPECT_EQ(WaitFor(io_.get(), PX__READABLE, 150), 0u);
}

TEST_P(ReactorTest, DeregisterWhileAnEventIsPending) {
  RegisterSocket();
  Quiesce();
  Counter c;
  px_waker w = borrowed(&c);
  ASSERT_FALSE(poll_ready(io_.get(), &w, PX__READABLE));
  Send("a");  // pending in the kernel, not yet polled
  px__io_deregister(io_.get());
  // Deregistration drops (does not wake) what was waiting...
  EXPECT_EQ(c.live.load(), 0);
  EXPECT_EQ(c.wakes.load(), 0);
  // ...and nothing is dispatched to it afterwards.
  for (int i = 0; i < 3; i++) EXPECT_EQ(px__reactor_poll(reactor_, 20), 0);
  EXPECT_EQ(ready_bits(io_.get()) & PX__READABLE, 0u);
  // Deregistering twice is harmless, and so is registering again.
  px__io_deregister(io_.get());
  ASSERT_EQ(Register(io_.get()), 0);
  EXPECT_EQ(WaitFor(io_.get(), PX__READABLE), unsigned{PX__READABLE});
}

TEST_P(ReactorTest, RegistrationClosedFromAnotherThread) {
  // A poller thread waits while this thread deregisters, frees and closes
  // a registration with readiness pending. Under ASan a dispatch into the
  // freed px__io would be reported.
  RegisterSocket();
  Counter c;
  px_waker w = borrowed(&c);
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::thread poller([&] {
    while (!stop.load()) {
      int n = px__reactor_poll(reactor_, -1);
      if (n < 0) errors++;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Arm from this thread while the other one is blocked: a level-triggered
  // backend must wake the poller so it watches the new interest.
  ASSERT_FALSE(poll_ready(io_.get(), &w, PX__READABLE));
  Send("a");
  auto start = Clock::now();
  while (c.wakes.load() == 0 && ms_since(start) < 2000)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(c.wakes.load(), 1);

  // Wait again, then tear the registration down under the poller's feet.
  Drain();
  px__io_event ev;
  ASSERT_TRUE(poll_ready(io_.get(), nullptr, PX__READABLE, &ev));
  px__io_clear_ready(io_.get(), ev);
  (void)poll_ready(io_.get(), &w, PX__READABLE);
  io_.reset();  // deregister + free
  Send("b");    // readiness for a registration that no longer exists
  close(fds_[0]);
  fds_[0] = -1;
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  stop.store(true);
  ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
  poller.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(c.live.load(), 0);
  EXPECT_EQ(c.wakes.load(), 1);
}

TEST_P(ReactorTest, ClosingWhileAPollerWaitsReachesThePeerAtOnce) {
  // select and poll hold a kernel reference to every file a blocked wait
  // watches: a socket closed in another thread is not released (its peer
  // sees no end of stream) until that wait ends, which on an idle runtime
  // may be never. Deregistering must wake the poller. The waiting future is
  // dropped first, as a cancelled task's is, which narrows the interest
  // without a wake-up just before the close.
  RegisterSocket();
  Counter c;
  px_waker w = borrowed(&c);
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    while (!stop.load()) (void)px__reactor_poll(reactor_, -1);
  });
  ASSERT_FALSE(poll_ready(io_.get(), &w, PX__READABLE));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // blocked, watching it
  px_waker none = PX_WAKER_EMPTY;
  EXPECT_FALSE(poll_ready(io_.get(), &none, PX__READABLE));  // the drop
  io_.reset();  // deregister + free
  close(fds_[0]);
  fds_[0] = -1;
  pollfd peer = {fds_[1], POLLIN, 0};
  EXPECT_EQ(::poll(&peer, 1, 2000), 1) << "the peer saw no end of stream";
  char x;
  EXPECT_EQ(recv(fds_[1], &x, 1, 0), 0);
  stop.store(true);
  ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
  poller.join();
  EXPECT_EQ(c.wakes.load(), 0);
}

TEST_P(ReactorTest, ClosedRegistrationIsFreedWhenTheNextPollBegins) {
  // A poll may hold events that name a registration closed meanwhile on
  // another thread. Backends whose events name registrations by pointer
  // must keep its memory until the next poll begins, or a new registration
  // of the same descriptor could be given that memory and receive the old
  // socket's events; the others free it at once.
  EXPECT_EQ((ops_->features & PX__REACTOR_DEFER_FREE) != 0, GetParam().retires);
  void *mem = px__alloc(sizeof(px__io));
  ASSERT_NE(mem, nullptr);
  px__io *io = new (mem) px__io;
  px__io_init(io, fds_[0]);
  ASSERT_EQ(Register(io), 0);
  Send("a");  // readiness pending for it
  g_watched_freed = false;
  g_watched = mem;
  px__io_deregister(io);
  px__io_retire(reactor_, io, mem, sizeof(px__io));
  if (GetParam().retires) {
    EXPECT_FALSE(g_watched_freed.load()) << "freed before the next poll";
    EXPECT_GE(px__reactor_poll(reactor_, 0), 0);
  }
  EXPECT_TRUE(g_watched_freed.load());
  g_watched = nullptr;
}

TEST_P(ReactorTest, WakeupFromAnotherThread) {
  auto start = Clock::now();
  std::thread waker([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(px__reactor_wakeup(reactor_), 0);
  });
  // Wakeups are not registrations, so the count is 0.
  EXPECT_EQ(px__reactor_poll(reactor_, -1), 0);
  waker.join();
  EXPECT_GE(ms_since(start), 40);
  EXPECT_LT(ms_since(start), 5000);
}

TEST_P(ReactorTest, WakeupBeforePollMakesTheNextPollReturn) {
  ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
  ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
  auto start = Clock::now();
  EXPECT_EQ(px__reactor_poll(reactor_, 5000), 0);
  EXPECT_LT(ms_since(start), 1000);
  // The wake-up was consumed: waiting again lasts until the deadline
  // (in a few calls, not a busy loop of immediate returns).
  int calls = 0;
  EXPECT_EQ(PollUntil(30, &calls), 0);
  EXPECT_LE(calls, kFewCalls);
}

TEST_P(ReactorTest, FlushDoesNotTakeAWakeupMeantForTheNextPoll) {
  // block_on's thread hands io_uring its queued requests while a
  // work-stealing worker may be about to wait in the reactor, woken just
  // before it got there. Taking completions in that flush took the
  // wake-up, and the worker slept through it (a runtime that never
  // stopped). On a thread that has not waited in the reactor (this one),
  // every backend must leave the wake-up to the poll.
  EXPECT_EQ(px__reactor_flush(nullptr), PX_EINVAL);
  ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
  EXPECT_EQ(px__reactor_flush(reactor_), 0);
  auto start = Clock::now();
  EXPECT_EQ(px__reactor_poll(reactor_, 5000), 0);
  EXPECT_LT(ms_since(start), 1000) << "the flush took the wake-up";
}

TEST_P(ReactorTest, PollTimesOut) {
  int calls = 0;
  auto start = Clock::now();
  EXPECT_EQ(PollUntil(80, &calls), 0);
  EXPECT_GE(ms_since(start), 80);
  EXPECT_LT(ms_since(start), 2000);
  EXPECT_LE(calls, kFewCalls);
  // Zero means "just look".
  start = Clock::now();
  EXPECT_EQ(px__reactor_poll(reactor_, 0), 0);
  EXPECT_LT(ms_since(start), 50);
}

TEST_P(ReactorTest, HangupWhenThePeerCloses) {
  RegisterSocket();
  Quiesce();
  Counter c;
  px_waker w = borrowed(&c);
  ASSERT_FALSE(poll_ready(io_.get(), &w, PX__READABLE));
  close(fds_[1]);
  fds_[1] = -1;
  auto start = Clock::now();
  while (c.wakes.load() == 0 && ms_since(start) < 2000)
    ASSERT_GE(px__reactor_poll(reactor_, 50), 0);
  EXPECT_EQ(c.wakes.load(), 1);
  px__io_event ev;
  ASSERT_TRUE(poll_ready(io_.get(), nullptr, PX__READABLE, &ev));
  EXPECT_TRUE(ev.ready & PX__READABLE);
  if (GetParam().reports_hup) {
    EXPECT_TRUE(ev.ready & PX__HUP);
  }
  char b;
  EXPECT_EQ(read(fds_[0], &b, 1), 0);  // end of stream, as promised
}

TEST_P(ReactorTest, HalfCloseMakesItReadable) {
  RegisterSocket();
  ASSERT_EQ(shutdown(fds_[1], SHUT_WR), 0);
  unsigned ready = WaitFor(io_.get(), PX__READABLE);
  EXPECT_TRUE(ready & PX__READABLE);
  char b;
  EXPECT_EQ(read(fds_[0], &b, 1), 0);
}

TEST_P(ReactorTest, ConnectToAClosedPortReportsErrorOrWritable) {
  // A port that nobody listens on: bind one, note it, close it.
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(probe, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(probe, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(probe, reinterpret_cast<sockaddr *>(&addr), &len), 0);
  close(probe);

  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(s, 0);
  int rc = connect(s, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  bool in_progress = rc < 0 && errno == EINPROGRESS;
  ASSERT_TRUE(in_progress || (rc < 0 && errno == ECONNREFUSED));
  IoPtr io = make_io(s);
  ASSERT_EQ(Register(io.get()), 0);
  unsigned ready = WaitFor(io.get(), PX__WRITABLE);
  EXPECT_TRUE(ready & (PX__WRITABLE | PX__ERROR)) << ready;
  if (in_progress) {
    int err = 0;
    socklen_t elen = sizeof err;
    ASSERT_EQ(getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &elen), 0);
    EXPECT_EQ(err, ECONNREFUSED);
  }
  io.reset();
  close(s);
}

void noop_handler(int) {}

TEST_P(ReactorTest, SignalDuringPollIsNotAnError) {
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = noop_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the wait sees EINTR
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  std::atomic<int> rc{-12345};
  std::atomic<bool> returned{false};
  std::thread poller([&] {
    rc.store(px__reactor_poll(reactor_, -1));
    returned.store(true);
  });
  // A few signals while it waits; then, for backends whose loop resumes
  // the wait by itself after EINTR, a wake-up so the test ends.
  for (int i = 0; i < 3 && !returned.load(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    if (!returned.load()) pthread_kill(poller.native_handle(), SIGUSR1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
  poller.join();
  EXPECT_GE(rc.load(), 0) << px_err_name(rc.load());
  sigaction(SIGUSR1, &old, nullptr);
}

TEST_P(ReactorTest, RegisteringAClosedDescriptorFails) {
  int fd = dup(fds_[0]);
  close(fd);
  IoPtr io = make_io(fd);
  EXPECT_EQ(Register(io.get()), PX_EBADF);
  EXPECT_EQ(io->reactor, nullptr);
}

TEST_P(ReactorTest, EveryEventIsDeliveredWithASmallEventCapacity) {
  // With room for one event per poll, an edge-triggered backend needs
  // several polls for three ready sockets; none may be lost.
  // Zeroed first: px_config grows, and backends only read event_capacity.
  px_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.workers = 1;
  cfg.event_capacity = 1;
  cfg.event_interval = 61;
  px__reactor *small;
  ASSERT_EQ(px__reactor_create(ops_, &cfg, &small), 0);
  int pairs[3][2];
  IoPtr ios[3];
  Counter c;
  px_waker w = borrowed(&c);
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pairs[i]), 0);
    ios[i] = make_io(pairs[i][0]);
    ASSERT_EQ(px__io_register(ios[i].get(), small), 0);
    ASSERT_FALSE(poll_ready(ios[i].get(), &w, PX__WRITABLE));
  }
  auto start = Clock::now();
  while (c.wakes.load() < 3 && ms_since(start) < 2000)
    ASSERT_GE(px__reactor_poll(small, 50), 0);
  EXPECT_EQ(c.wakes.load(), 3);
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(ready_bits(ios[i].get()), unsigned{PX__WRITABLE});
    ios[i].reset();
    close(pairs[i][0]);
    close(pairs[i][1]);
  }
  EXPECT_EQ(c.live.load(), 0);
  px__reactor_destroy(small);
}

TEST_P(ReactorTest, ModifyToReadOnlyIgnoresWritability) {
  RegisterSocket();
  Quiesce();
  ASSERT_EQ(px__reactor_modify(reactor_, io_.get(), PX__READABLE), 0);
  // The same interest again costs nothing and changes nothing.
  ASSERT_EQ(px__reactor_modify(reactor_, io_.get(), PX__READABLE), 0);
  EXPECT_EQ(px__reactor_poll(reactor_, 30), 0);
  Send("a");
  int n = 0;
  for (int i = 0; i < 20 && n == 0; i++) {
    n = px__reactor_poll(reactor_, 50);
    ASSERT_GE(n, 0);
  }
  EXPECT_EQ(n, 1);
  EXPECT_TRUE(ready_bits(io_.get()) & PX__READABLE);
}

// Raises the soft descriptor limit to `want`; false when refused.
bool raise_nofile(rlim_t want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
  if (rl.rlim_cur >= want) return true;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) return false;
  rl.rlim_cur = want;
  return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

TEST_P(ReactorTest, TenThousandRegistrations) {
  // 5,000 pipes with both ends registered: 10,000 registrations in 10,000
  // descriptors, which fits the common hard limit of 20,000.
  if (ops_->features & PX__REACTOR_FD_LIMIT)
    GTEST_SKIP() << ops_->name << " is limited to descriptors below "
                 << ops_->max_fd;
  constexpr int kPipes = 5000;
  if (!raise_nofile(2 * kPipes + 256))
    GTEST_SKIP() << "RLIMIT_NOFILE cannot be raised to " << 2 * kPipes + 256;
  std::vector<std::array<int, 2>> pipes(kPipes);
  std::vector<IoPtr> readers, writers;
  readers.reserve(kPipes);
  writers.reserve(kPipes);
  Counter c;
  px_waker w = borrowed(&c);
  for (int i = 0; i < kPipes; i++) {
    int p[2];
    ASSERT_EQ(pipe(p), 0) << "pipe " << i << ": " << strerror(errno);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    pipes[i] = {p[0], p[1]};
    readers.push_back(make_io(p[0]));
    writers.push_back(make_io(p[1]));
    ASSERT_EQ(Register(readers.back().get()), 0) << i;
    ASSERT_EQ(Register(writers.back().get()), 0) << i;
    ASSERT_FALSE(poll_ready(readers.back().get(), &w, PX__READABLE));
  }
  EXPECT_EQ(c.live.load(), kPipes);
  const int hot[] = {0, kPipes / 2, kPipes - 1};
  for (int i : hot) ASSERT_EQ(write(pipes[i][1], "x", 1), 1);
  auto start = Clock::now();
  while (c.wakes.load() < 3 && ms_since(start) < 5000)
    ASSERT_GE(px__reactor_poll(reactor_, 50), 0);
  EXPECT_EQ(c.wakes.load(), 3);
  for (int i : hot)
    EXPECT_TRUE(ready_bits(readers[i].get()) & PX__READABLE) << i;
  EXPECT_EQ(ready_bits(readers[1].get()) & PX__READABLE, 0u);
  readers.clear();  // deregisters, dropping the other wakers
  writers.clear();
  EXPECT_EQ(c.live.load(), 0);
  for (auto &p : pipes) {
    close(p[0]);
    close(p[1]);
  }
}

TEST_P(ReactorTest, DescriptorsBeyondTheLimitAreRefusedCleanly) {
  if (!(ops_->features & PX__REACTOR_FD_LIMIT))
    GTEST_SKIP() << ops_->name << " has no descriptor limit";
  int high = ops_->max_fd + 5;
  if (!raise_nofile(static_cast<rlim_t>(high) + 1))
    GTEST_SKIP() << "RLIMIT_NOFILE cannot be raised to " << high + 1;
  ASSERT_EQ(dup2(fds_[0], high), high);
  IoPtr io = make_io(high);
  // Refused before any FD_SET could write past the set (ASan would see it).
  EXPECT_EQ(Register(io.get()), PX_ERANGE);
  EXPECT_EQ(io->reactor, nullptr);
  EXPECT_EQ(px__reactor_poll(reactor_, 0), 0);
  close(high);
}

// ---- Completion-style operations (ops->submit: io_uring) -----------------
//
// A backend that performs reads, writes and accepts itself does so through
// px__op (reactor.h, reactors/completion.c). These tests drive that layer
// the way fd_stream.c and tcp.c do, with a counting waker, and check the
// promise that makes dropped futures safe: the kernel only writes into
// memory of the registration, what a dropped operation brings waits for the
// next call, and closing with operations in flight frees everything (the
// teardown compares the allocator's live bytes; ASan checks the rest).

// Polls until c was woken or timeout_ms passed; true when woken.
bool PollUntilWoken(px__reactor *r, Counter &c, int timeout_ms = 2000) {
  auto start = Clock::now();
  while (c.wakes.load() == 0 && ms_since(start) < timeout_ms) {
    int n = px__reactor_poll(r, 20);
    EXPECT_GE(n, 0) << px_err_name(n);
  }
  return c.wakes.load() > 0;
}

// Turns the reactor for `ms`, for operations that nobody waits for.
void Turn(px__reactor *r, int ms) {
  auto start = Clock::now();
  while (ms_since(start) < ms) (void)px__reactor_poll(r, 5);
}

TEST_P(ReactorTest, CompletionRegistrationFallsBackToReadiness) {
  io_ = make_io(fds_[0]);
  ASSERT_EQ(px__io_register_completion(io_.get(), reactor_), 0);
  if (ops_->submit == nullptr) {
    // No hook: a registration like any other, watched for readiness.
    EXPECT_FALSE(px__io_completes(io_.get()));
    EXPECT_NE(WaitFor(io_.get(), PX__WRITABLE) & PX__WRITABLE, 0u);
  } else {
    EXPECT_TRUE(px__io_completes(io_.get()));
    EXPECT_NE(ops_->cancel, nullptr);
  }
}

class CompletionTest : public ReactorTest {
 protected:
  void SetUp() override {
    ReactorTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    io_ = make_io(fds_[0]);
    ASSERT_EQ(px__io_register_completion(io_.get(), reactor_), 0);
    ASSERT_TRUE(px__io_completes(io_.get()));
  }
  void TearDown() override {
    EXPECT_EQ(c_.live.load(), 0) << "a waker was left behind";
    ReactorTest::TearDown();
  }
  // The waker the operations are given, and the context carrying it.
  Counter c_;
  px_waker w_ = borrowed(&c_);
  px_context cx_ = {&w_, nullptr};
};

TEST_P(CompletionTest, ReadAndWriteRoundTrip) {
  char buf[16];
  size_t n = 0;
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_PENDING);
  Send("hello");
  ASSERT_TRUE(PollUntilWoken(reactor_, c_));
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_READY);
  EXPECT_EQ(std::string(buf, n), "hello");

  // A write is done once its bytes are the op's; they go out behind it.
  ASSERT_EQ(px__op_write(io_.get(), &cx_, "world", 5, &n), PX_READY);
  EXPECT_EQ(n, 5u);
  int rc;
  for (int i = 0; i < 100 && (rc = px__op_flush(io_.get(), &cx_)) ==
                                 PX_PENDING; i++)
    (void)px__reactor_poll(reactor_, 20);
  EXPECT_EQ(rc, PX_READY);
  char got[8] = {0};
  EXPECT_EQ(recv(fds_[1], got, sizeof got, 0), 5);
  EXPECT_STREQ(got, "world");
}

TEST_P(CompletionTest, ADroppedReadLeavesItsBytesForTheNextRead) {
  char buf[4];
  size_t n = 0;
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_PENDING);
  px__op_forget(io_.get(), PX__OP_IN);  // the future is dropped
  Send("abc");
  Turn(reactor_, 100);  // the receive completes, for nobody
  EXPECT_EQ(c_.wakes.load(), 0);
  // The next reads get every byte, in order, whatever their size.
  std::string all;
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, 1, &n), PX_READY);
    ASSERT_EQ(n, 1u);
    all += buf[0];
  }
  EXPECT_EQ(all, "abc");
  EXPECT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_PENDING);
  px__op_forget(io_.get(), PX__OP_IN);
}

TEST_P(CompletionTest, EndOfStreamAndWriteFailuresAreReported) {
  char buf[8];
  size_t n = 99;
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_PENDING);
  close(fds_[1]);
  fds_[1] = -1;
  ASSERT_TRUE(PollUntilWoken(reactor_, c_));
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_READY);
  EXPECT_EQ(n, 0u);
  // Written behind: the failure comes from the next call, and stays.
  int rc = px__op_write(io_.get(), &cx_, "x", 1, &n);
  for (int i = 0; i < 100 && (rc == PX_READY || rc == PX_PENDING); i++) {
    if (rc == PX_PENDING) (void)px__reactor_poll(reactor_, 20);
    rc = px__op_flush(io_.get(), &cx_);
  }
  EXPECT_TRUE(rc == PX_EPIPE || rc == PX_ECONNRESET) << px_err_name(rc);
  EXPECT_EQ(px__op_write(io_.get(), &cx_, "y", 1, &n), rc);
}

TEST_P(CompletionTest, ClosingWithAReadInFlightFreesItAtItsCompletion) {
  char buf[8];
  size_t n = 0;
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_PENDING);
  px__op_forget(io_.get(), PX__OP_IN);
  Turn(reactor_, 20);  // submitted
  io_.reset();         // deregistered: the receive is cancelled, orphaned
  Send("late");        // the kernel must not write into freed memory
  Turn(reactor_, 50);
  EXPECT_EQ(c_.wakes.load(), 0);
}

TEST_P(CompletionTest, AWriteInFlightAtCloseKeepsTheDescriptorUntilItEnds) {
  // Fill the peer, which never reads, until a send stays in flight.
  std::vector<char> big(65536, 'z');
  size_t n = 0;
  int rc = PX_READY;
  for (int i = 0; i < 1000 && rc == PX_READY; i++) {
    rc = px__op_write(io_.get(), &cx_, big.data(), big.size(), &n);
    Turn(reactor_, 2);
  }
  ASSERT_EQ(rc, PX_PENDING);
  px__op_forget(io_.get(), PX__OP_OUT);
  int fd = fds_[0];
  px__io *raw = io_.get();
  px__io_deregister(raw);
  // The descriptor now belongs to the send: the owner must not close it.
  EXPECT_TRUE(raw->fd_lingers);
  fds_[0] = -1;
  EXPECT_GE(fcntl(fd, F_GETFD), 0);  // still open
  io_.reset();
  // Destroying the reactor cancels the send and closes the descriptor.
  px__reactor_destroy(reactor_);
  reactor_ = nullptr;
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);
}

TEST_P(CompletionTest, ADroppedAcceptKeepsItsConnectionForTheNextAccept) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(l, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(l, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  ASSERT_EQ(listen(l, 8), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(l, reinterpret_cast<sockaddr *>(&a), &len), 0);
  IoPtr lio = make_io(l);
  ASSERT_EQ(px__io_register_completion(lio.get(), reactor_), 0);

  int fd = -1;
  ASSERT_EQ(px__op_accept(lio.get(), &cx_, &fd), PX_PENDING);
  px__op_forget(lio.get(), PX__OP_IN);  // dropped before anyone connects
  int c1 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(c1, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  Turn(reactor_, 100);
  ASSERT_EQ(px__op_accept(lio.get(), &cx_, &fd), PX_READY);
  ASSERT_GE(fd, 0);
  EXPECT_NE(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  close(fd);

  // One accepted for nobody when the listener closes is closed with it.
  ASSERT_EQ(px__op_accept(lio.get(), &cx_, &fd), PX_PENDING);
  px__op_forget(lio.get(), PX__OP_IN);
  int c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(c2, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  Turn(reactor_, 100);
  lio.reset();
  close(l);
  char b;
  EXPECT_EQ(recv(c2, &b, 1, 0), 0) << "the server side was closed";
  close(c1);
  close(c2);
}

// Only the backends with the hook: the others never make a px__op.
std::vector<Backend> CompletionBackends() {
  std::vector<Backend> v;
  for (const Backend &b : kBackends)
    if (b.ops->submit != nullptr) v.push_back(b);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Backends, CompletionTest,
                         ::testing::ValuesIn(CompletionBackends()),
                         param_name);

INSTANTIATE_TEST_SUITE_P(Backends, ReactorTest, ::testing::ValuesIn(kBackends),
                         param_name);

// ---- px__io alone: dispatch by hand, no backend ---------------------------

class IoTest : public ::testing::Test {
 protected:
  void SetUp() override { io_ = make_io(-1); }
  IoPtr io_;
};

TEST_F(IoTest, ClearForgetsTheBitWhenNothingNewHappened) {
  px__io_dispatch(io_.get(), PX__READABLE | PX__WRITABLE);
  px__io_event ev;
  ASSERT_TRUE(poll_ready(io_.get(), nullptr, PX__READABLE, &ev));
  px__io_clear_ready(io_.get(), ev);
  Counter c;
  px_waker w = borrowed(&c);
  EXPECT_FALSE(poll_ready(io_.get(), &w, PX__READABLE));
  EXPECT_EQ(c.live.load(), 1);  // the stored clone
  // The writable bit was not part of the clear.
  EXPECT_EQ(ready_bits(io_.get()), unsigned{PX__WRITABLE});
  io_.reset();  // the clone must go before `c` does
  EXPECT_EQ(c.live.load(), 0);
}

TEST_F(IoTest, AStaleClearKeepsTheNewerEvent) {
  px__io_dispatch(io_.get(), PX__READABLE);
  px__io_event ev;
  ASSERT_TRUE(poll_ready(io_.get(), nullptr, PX__READABLE, &ev));
  px__io_dispatch(io_.get(), PX__READABLE);  // between snapshot and clear
  px__io_clear_ready(io_.get(), ev);
  px__io_event again;
  ASSERT_TRUE(poll_ready(io_.get(), nullptr, PX__READABLE, &again));
  EXPECT_NE(again.tick, ev.tick);
}

TEST_F(IoTest, ADirectionIsDrainedOnceAnEagainClearedIt) {
  // Before any EAGAIN the state says nothing (a fresh descriptor's data may
  // already be there): the drive tries the syscall first. After one, it
  // waits for a new readiness first; a hang-up or an error ends that.
  EXPECT_FALSE(px__io_drained(io_.get(), PX__READABLE));
  px__io_dispatch(io_.get(), PX__READABLE);
  px__io_clear_ready(io_.get(), px__io_peek(io_.get(), PX__READABLE));
  EXPECT_TRUE(px__io_drained(io_.get(), PX__READABLE));
  EXPECT_FALSE(px__io_drained(io_.get(), PX__WRITABLE));
  EXPECT_EQ(ready_bits(io_.get()), 0u) << "the drained mark is no readiness";
  // A stale clear (a dispatch came after the peek) neither clears nor marks.
  px__io_event old = px__io_peek(io_.get(), PX__WRITABLE);
  px__io_dispatch(io_.get(), PX__WRITABLE);
  px__io_clear_ready(io_.get(), old);
  EXPECT_FALSE(px__io_drained(io_.get(), PX__WRITABLE));
  EXPECT_EQ(ready_bits(io_.get()), unsigned{PX__WRITABLE});
  px__io_dispatch(io_.get(), PX__HUP);
  EXPECT_FALSE(px__io_drained(io_.get(), PX__READABLE)) << "end of stream must be read";
}

TEST_F(IoTest, PollingWithNoWakerForgetsTheStoredOne) {
  // What a cancelled socket future does on drop (reactors/tcp.c).
  Counter c;
  px_waker w = borrowed(&c);
  ASSERT_FALSE(poll_ready(io_.get(), &w, PX__READABLE));
  EXPECT_EQ(c.live.load(), 1);
  px_waker none = PX_WAKER_EMPTY;
  EXPECT_FALSE(poll_ready(io_.get(), &none, PX__READABLE));
  EXPECT_EQ(c.live.load(), 0);
  px__io_dispatch(io_.get(), PX__READABLE);
  EXPECT_EQ(c.wakes.load(), 0);
}

TEST_F(IoTest, ReaderAndWriterSlotsAreIndependent) {
  Counter r, w;
  px_waker rw = borrowed(&r), ww = borrowed(&w);
  ASSERT_FALSE(poll_ready(io_.get(), &rw, PX__READABLE));
  ASSERT_FALSE(poll_ready(io_.get(), &ww, PX__WRITABLE));
  px__io_dispatch(io_.get(), PX__WRITABLE);
  EXPECT_EQ(r.wakes.load(), 0);
  EXPECT_EQ(w.wakes.load(), 1);
  px__io_dispatch(io_.get(), PX__READABLE);
  EXPECT_EQ(r.wakes.load(), 1);
  EXPECT_EQ(w.wakes.load(), 1);
  EXPECT_EQ(r.live.load() + w.live.load(), 0);
}

TEST_F(IoTest, HangupAndErrorMakeBothDirectionsReady) {
  Counter r, w;
  px_waker rw = borrowed(&r), ww = borrowed(&w);
  ASSERT_FALSE(poll_ready(io_.get(), &rw, PX__READABLE));
  ASSERT_FALSE(poll_ready(io_.get(), &ww, PX__WRITABLE));
  px__io_dispatch(io_.get(), PX__ERROR);
  EXPECT_EQ(r.wakes.load(), 1);
  EXPECT_EQ(w.wakes.load(), 1);
  px__io_event ev;
  ASSERT_TRUE(poll_ready(io_.get(), nullptr, PX__WRITABLE, &ev));
  EXPECT_EQ(ev.ready, unsigned{PX__WRITABLE | PX__ERROR});
  // A clear takes the direction away but the error stays on record.
  px__io_clear_ready(io_.get(), ev);
  EXPECT_EQ(ready_bits(io_.get()), unsigned{PX__READABLE | PX__ERROR});
}

TEST_F(IoTest, WakeAllWakesBothWaiters) {
  Counter c;
  px_waker w = borrowed(&c);
  ASSERT_FALSE(poll_ready(io_.get(), &w, PX__READABLE | PX__WRITABLE));
  EXPECT_EQ(c.live.load(), 2);
  px__io_wake_all(io_.get());
  EXPECT_EQ(c.wakes.load(), 2);
  EXPECT_EQ(c.live.load(), 0);
}

TEST_F(IoTest, RegisterRejectsNulls) {
  EXPECT_EQ(px__io_register(nullptr, nullptr), PX_EINVAL);
  EXPECT_EQ(px__io_register(io_.get(), nullptr), PX_EINVAL);
  px__io_deregister(nullptr);  // harmless
}

TEST_F(IoTest, NoLostWakeupUnderConcurrentDispatch) {
  // Another thread dispatches while this one checks readiness and stores
  // its waker, over and over, so the dispatch lands in every window of
  // px__io_poll_ready. Each round, either poll_ready sees the bit or the
  // waker fires: a round in which neither happens is a lost wake-up.
  Counter c;
  px_waker w = borrowed(&c);
  std::atomic<int> round{0};
  std::atomic<bool> stop{false};
  std::thread reactor([&] {
    int seen = 0;
    while (!stop.load()) {
      int r = round.load();
      if (r == seen) {
        // Yield rather than spin: the two threads may share one core.
        std::this_thread::yield();
        continue;
      }
      seen = r;
      px__io_dispatch(io_.get(), PX__READABLE);
    }
  });
  int lost = 0;
  for (int i = 1; i <= 20000 && lost == 0; i++) {
    int wakes_before = c.wakes.load();
    round.store(i);  // the other thread dispatches once, soon
    px__io_event ev;
    if (!poll_ready(io_.get(), &w, PX__READABLE, &ev)) {
      auto start = Clock::now();
      while (c.wakes.load() == wakes_before && ms_since(start) < 2000)
        std::this_thread::yield();
      if (c.wakes.load() == wakes_before) lost++;
    }
    // Wait for this round's dispatch, then consume it for the next round.
    while (!poll_ready(io_.get(), nullptr, PX__READABLE, &ev))
      std::this_thread::yield();
    px__io_clear_ready(io_.get(), ev);
  }
  stop.store(true);
  reactor.join();
  EXPECT_EQ(lost, 0);
  io_.reset();
  EXPECT_EQ(c.live.load(), 0);
}

}  // namespace
