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

#include <algorithm>
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
     PX__REACTOR_EDGE | PX__REACTOR_O1 | PX__REACTOR_DEFER_FREE |
         PX__REACTOR_HANGUPS,
     0, true, true},
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
         PX__REACTOR_DEFER_FREE | PX__REACTOR_HANGUPS,
     0, true, true},
    {"io_uring", &px__io_uring_ops,
     PX__REACTOR_EDGE | PX__REACTOR_O1 | PX__REACTOR_FD_TABLE |
         PX__REACTOR_HANGUPS,
     0, true, false},
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

// px__io_look with `waker` in the context: true when the syscall is worth
// trying; false when the direction is drained (the waker is then stored).
bool look(px__io *io, const px_waker *waker, unsigned interest,
          px__io_event *ev = nullptr) {
  px_context cx = {waker, nullptr};
  px__io_event local = {0, 0};
  return px__io_look(io, &cx, interest, ev != nullptr ? ev : &local);
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

// ---- Fallback: a backend the kernel refuses hands over to the next -------

// Backends whose create fails as a kernel without io_uring, or one that
// forbids it, or a machine out of memory would make it fail.
static int create_enosys(const px_config *, px__reactor **) {
  return PX_ENOSYS;
}
static int create_eperm(const px_config *, px__reactor **) {
  return PX_EPERM;
}
static int create_enomem(const px_config *, px__reactor **) {
  return PX_ENOMEM;
}

TEST(ReactorFallbackTest, ARefusedBackendHandsOverToItsFallback) {
  px__reactor_ops forbidden = {};
  forbidden.name = "forbidden";
  forbidden.create = create_eperm;
  forbidden.fallback = &px__epoll_ops;
  px__reactor_ops missing = {};
  missing.name = "missing";
  missing.create = create_enosys;
  missing.fallback = &forbidden;  // a chain: missing, forbidden, epoll
  px__reactor *r = nullptr;
  ASSERT_EQ(px__reactor_create(&missing, nullptr, &r), 0);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(px__reactor_ops_of(r), &px__epoll_ops);
  EXPECT_EQ(px__reactor_wakeup(r), 0);  // the fallback works
  EXPECT_GE(px__reactor_poll(r, 0), 0);
  px__reactor_destroy(r);
}

TEST(ReactorFallbackTest, OtherFailuresAndTheEndOfTheChainAreReported) {
  // Out of memory is no refusal: the fallback would fail alike.
  px__reactor_ops hungry = {};
  hungry.name = "hungry";
  hungry.create = create_enomem;
  hungry.fallback = &px__epoll_ops;
  px__reactor *r = reinterpret_cast<px__reactor *>(&hungry);  // not NULL
  EXPECT_EQ(px__reactor_create(&hungry, nullptr, &r), PX_ENOMEM);
  EXPECT_EQ(r, nullptr);
  // Refused with nothing to fall back to: the refusal itself.
  px__reactor_ops alone = {};
  alone.name = "alone";
  alone.create = create_enosys;
  EXPECT_EQ(px__reactor_create(&alone, nullptr, &r), PX_ENOSYS);
  EXPECT_EQ(r, nullptr);
}

TEST(ReactorFallbackTest, IoUringFallsBackToEpollAndNoOtherBackendFallsBack) {
  EXPECT_EQ(px__io_uring_ops.fallback, &px__epoll_ops);
  for (const px__reactor_ops *ops :
       {&px__epoll_ops, &px__select_ops, &px__poll_ops, &px__libevent_ops,
        &px__kqueue_ops})
    EXPECT_EQ(ops->fallback, nullptr) << ops->name;
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

// Every wake-up ends one wait, however many came before: epoll's eventfd
// is edge-triggered and never read (each write must be an edge of its
// own), the other backends drain theirs.
TEST_P(ReactorTest, AWakeupEndsTheWaitOfEachNewPoller) {
  // The poller changes thread (work stealing hands the wait from worker to
  // worker): each one's wait must end at a wake-up. io_uring moves its
  // wake-up's poll to each new poller; the replaced poll's completions
  // must neither be taken for the new one's nor eat its wake-up.
  for (int round = 0; round < 20; round++) {
    std::atomic<int> rc{-12345};
    std::thread poller([&] { rc.store(px__reactor_poll(reactor_, -1)); });
    std::this_thread::sleep_for(std::chrono::milliseconds(round % 2 ? 5 : 0));
    ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
    auto start = Clock::now();
    while (rc.load() == -12345 && ms_since(start) < 2000)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (rc.load() == -12345) {
      // Not woken: end the wait anyway so the thread can be joined.
      (void)px__reactor_wakeup(reactor_);
      poller.join();
      FAIL() << "round " << round << ": the wake-up did not end the wait";
    }
    poller.join();
    EXPECT_GE(rc.load(), 0) << px_err_name(rc.load());
    // And this thread's own wait, between two others'.
    ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
    EXPECT_GE(px__reactor_poll(reactor_, 2000), 0);
  }
}

TEST_P(ReactorTest, EachOfManyWakeupsInARowEndsAWait) {
  for (int i = 0; i < 20000; i++) {
    ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
    auto start = Clock::now();
    ASSERT_EQ(px__reactor_poll(reactor_, 5000), 0) << "wake-up " << i;
    ASSERT_LT(ms_since(start), 1000) << "wake-up " << i << " was lost";
  }
}

// A wake-up counter that nobody reads fills up at last: an eventfd then
// refuses the write (EAGAIN) and raises no event, so the wake-up must
// empty it and write again rather than count on one pending.
TEST_P(ReactorTest, AWakeupOnAFullEventfdStillEndsTheWait) {
  const px__wakeup_fd &w = px__reactor_core_of(reactor_)->wakeup_fd;
  if (w.wr < 0 || w.wr != w.rd) GTEST_SKIP() << "no eventfd";
  ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
  EXPECT_EQ(px__reactor_poll(reactor_, 0), 0);
  // Emptied, then filled with the largest count an eventfd holds.
  uint64_t big = UINT64_MAX - 1;
  uint64_t now = 0;
  if (read(w.rd, &now, sizeof now) != sizeof now) now = 0;
  ASSERT_EQ(write(w.wr, &big, sizeof big), static_cast<ssize_t>(sizeof big));
  uint64_t one = 1;
  errno = 0;
  EXPECT_EQ(write(w.wr, &one, sizeof one), -1);
  EXPECT_EQ(errno, EAGAIN) << "the counter is full";
  EXPECT_GE(px__reactor_poll(reactor_, 0), 0);  // takes what is pending
  ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
  auto start = Clock::now();
  EXPECT_EQ(px__reactor_poll(reactor_, 5000), 0);
  EXPECT_LT(ms_since(start), 1000) << "the wake-up on a full counter was lost";
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

// Binds fd to a free port of 127.0.0.1 and tells which in *addr.
void BindLoopback(int fd, sockaddr_in *addr) {
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr->sin_port = 0;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr *>(addr), sizeof *addr), 0);
  socklen_t len = sizeof *addr;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr *>(addr), &len), 0);
}

TEST_P(ReactorTest, ConnectToAClosedPortReportsErrorOrWritable) {
  // A port that nobody listens on: bind one, note it, close it.
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(probe, 0);
  sockaddr_in addr{};
  BindLoopback(probe, &addr);
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

TEST_P(ReactorTest, BytesAndAResetInOneEventKeepTheResetForTheNextLook) {
  // A TCP peer sends bytes and resets (SO_LINGER 0) before the backend
  // waits, so one event announces both. A reader that then takes the bytes
  // and comes short of its buffer may treat that as "nothing left" only if
  // the reset stays visible (PX__REACTOR_HANGUPS): a backend that claims
  // it must leave HUP or ERROR in the state; one that does not (libevent
  // folds them into readable + writable) must leave the short read to the
  // syscall that follows (fd_future.c, px__io_short_drains).
  int lst = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(lst, 0);
  sockaddr_in addr{};
  BindLoopback(lst, &addr);
  ASSERT_EQ(listen(lst, 1), 0);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(c, 0);
  ASSERT_EQ(connect(c, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  int peer = accept(lst, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  close(lst);
  ASSERT_EQ(fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK), 0);
  IoPtr io = make_io(c);
  ASSERT_EQ(Register(io.get()), 0);
  Quiesce();
  char buf[64];
  ASSERT_LT(read(c, buf, sizeof buf), 0);  // drained: a reader would wait
  Counter cnt;
  px_waker w = borrowed(&cnt);
  ASSERT_FALSE(poll_ready(io.get(), &w, PX__READABLE));

  ASSERT_EQ(send(peer, "hello", 5, 0), 5);
  linger lg{};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  ASSERT_EQ(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  close(peer);  // the reset, right behind the bytes

  auto start = Clock::now();
  while (cnt.wakes.load() == 0 && ms_since(start) < 2000)
    ASSERT_GE(px__reactor_poll(reactor_, 50), 0);
  ASSERT_EQ(cnt.wakes.load(), 1);
  px__io_event ev;
  ASSERT_TRUE(poll_ready(io.get(), nullptr, PX__READABLE, &ev));
  if (ops_->features & PX__REACTOR_HANGUPS) {
    EXPECT_TRUE(ev.ready & (PX__HUP | PX__ERROR)) << ev.ready;
  }
  // The short read the reader makes, then what the next one must find.
  EXPECT_EQ(read(c, buf, sizeof buf), 5);
  if (px__io_short_drains(io.get())) px__io_clear_ready(io.get(), ev);
  // It tries at once, or a level-triggered backend reports the state again
  // at its next wait; an edge already spent would leave it waiting.
  if (!look(io.get(), nullptr, PX__READABLE)) {
    EXPECT_FALSE(ops_->features & PX__REACTOR_EDGE);
    EXPECT_NE(WaitFor(io.get(), PX__READABLE), 0u)
        << "the next read would wait for an edge already spent";
  }
  errno = 0;
  EXPECT_LT(read(c, buf, sizeof buf), 0);
  EXPECT_EQ(errno, ECONNRESET);
  io.reset();
  close(c);
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

// A loopback listener on a free port; its address in *a.
int Listen(sockaddr_in *a, int backlog) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  EXPECT_GE(l, 0);
  *a = sockaddr_in{};
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(l, reinterpret_cast<sockaddr *>(a), sizeof *a), 0);
  EXPECT_EQ(listen(l, backlog), 0);
  socklen_t len = sizeof *a;
  EXPECT_EQ(getsockname(l, reinterpret_cast<sockaddr *>(a), &len), 0);
  return l;
}

// A loopback client connected to a (blocking); -1 on failure.
int Dial(const sockaddr_in &a) {
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c >= 0 && connect(c, reinterpret_cast<const sockaddr *>(&a), sizeof a) < 0) {
    close(c);
    c = -1;
  }
  return c;
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
  // Turns the reactor until io's bytes written behind are out (or 2 s
  // passed); px__op_flush's last answer.
  int Flush(px__io *io) {
    int rc = px__op_flush(io, &cx_);
    for (int i = 0; i < 100 && rc == PX_PENDING; i++) {
      (void)px__reactor_poll(reactor_, 20);
      rc = px__op_flush(io, &cx_);
    }
    return rc;
  }
  // A loopback listener (its descriptor in *l, its address in *a),
  // registered for completions.
  IoPtr Listener(sockaddr_in *a, int backlog, int *l) {
    *l = Listen(a, backlog);
    IoPtr lio = make_io(*l);
    EXPECT_EQ(px__io_register_completion(lio.get(), reactor_), 0);
    return lio;
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
  EXPECT_EQ(Flush(io_.get()), PX_READY);
  char got[8] = {0};
  EXPECT_EQ(recv(fds_[1], got, sizeof got, 0), 5);
  EXPECT_STREQ(got, "world");
}

TEST_P(CompletionTest, AReadOfAnotherThreadWhileThePollerWaits) {
  // A worker that is not the poller starts a read while the poller waits
  // in the kernel: the request is the poller's to submit (io_uring
  // completes it as task work of the submitter), so the poller is woken
  // for it, and the read completes.
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    while (!stop.load()) (void)px__reactor_poll(reactor_, -1);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // it waits
  char buf[16];
  size_t n = 0;
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_PENDING);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Send("hello");
  auto start = Clock::now();
  while (c_.wakes.load() == 0 && ms_since(start) < 2000)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stop.store(true);
  ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
  poller.join();
  ASSERT_EQ(c_.wakes.load(), 1) << "the read never completed";
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_READY);
  EXPECT_EQ(std::string(buf, n), "hello");
}

TEST_P(CompletionTest, AReadOfAnotherThreadWhileThePollerIsBusy) {
  // The same while the poller runs tasks: the read goes in with the
  // poller's next poll, and nothing is lost meanwhile.
  std::atomic<int> phase{0};
  std::thread poller([&] {
    (void)px__reactor_poll(reactor_, 1);  // becomes the poller
    phase.store(1);
    while (phase.load() == 1)  // busy: no poll
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    auto start = Clock::now();
    while (c_.wakes.load() == 0 && ms_since(start) < 2000)
      (void)px__reactor_poll(reactor_, 20);
  });
  while (phase.load() == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  char buf[16];
  size_t n = 0;
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_PENDING);
  Send("hello");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(c_.wakes.load(), 0);  // nobody polled: nothing reported yet
  phase.store(2);
  poller.join();
  ASSERT_EQ(c_.wakes.load(), 1) << "the read never completed";
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, sizeof buf, &n), PX_READY);
  EXPECT_EQ(std::string(buf, n), "hello");
}

TEST_P(CompletionTest, WritesOfAnotherThreadWhileThePollerTurns) {
  // A worker that is not the poller writes while the poller turns: its
  // sends go out directly (io_uring: without the reactor's mutex, which
  // the poller needs at each turn), what the socket does not take goes by
  // the ring, and every byte arrives, once and in order.
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    while (!stop.load()) (void)px__reactor_poll(reactor_, 5);
  });
  constexpr size_t kTotal = 1u << 20;
  std::string got;
  std::thread reader([&] {
    char b[65536];
    auto start = Clock::now();
    while (got.size() < kTotal && ms_since(start) < 10000) {
      ssize_t k = recv(fds_[1], b, sizeof b, 0);
      if (k > 0) {
        got.append(b, static_cast<size_t>(k));
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    }
  });
  std::string sent;
  char chunk[1000];
  auto start = Clock::now();
  while (sent.size() < kTotal && ms_since(start) < 10000) {
    size_t want = std::min(sizeof chunk, kTotal - sent.size());
    for (size_t i = 0; i < want; i++)
      chunk[i] = static_cast<char>('a' + (sent.size() + i) % 23);
    size_t n = 0;
    int rc = px__op_write(io_.get(), &cx_, chunk, want, &n);
    if (rc == PX_PENDING) {  // the op's buffer is full: wait for the ring
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    ASSERT_EQ(rc, PX_READY);
    ASSERT_GT(n, 0u);
    sent.append(chunk, n);
  }
  int flushed = PX_PENDING;
  while (flushed == PX_PENDING && ms_since(start) < 10000) {
    flushed = px__op_flush(io_.get(), &cx_);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  reader.join();
  stop.store(true);
  ASSERT_EQ(px__reactor_wakeup(reactor_), 0);
  poller.join();
  EXPECT_EQ(flushed, PX_READY);
  ASSERT_EQ(sent.size(), kTotal);
  ASSERT_EQ(got.size(), kTotal);
  EXPECT_TRUE(got == sent) << "bytes lost, repeated or out of order";
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

// More arrives than a receive pool holds (io_uring: 256 buffers of 4 KiB,
// filled by a multishot receive) while nobody reads: the pool runs dry, the
// kernel ends that receive, and the reads then go on from what the pool
// holds, from one-shot receives, and from the pool again once it refilled.
// Every byte must come, once and in order, and then the end of the stream.
TEST_P(CompletionTest, AReaderFarBehindGetsEveryByteInOrder) {
  const size_t total = size_t{3} << 20;
  auto pattern = [](size_t i) { return static_cast<char>(i % 251); };
  std::vector<char> out(65536);
  size_t sent = 0;
  // Sends what the socket takes now; true when something went.
  auto push = [&]() {
    bool any = false;
    while (sent < total) {
      size_t k = std::min(out.size(), total - sent);
      for (size_t i = 0; i < k; i++) out[i] = pattern(sent + i);
      ssize_t m = send(fds_[1], out.data(), k, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (m <= 0) break;
      sent += static_cast<size_t>(m);
      any = true;
    }
    return any;
  };
  char buf[3000];
  size_t n = 0;
  ASSERT_EQ(px__op_read(io_.get(), &cx_, buf, 1, &n), PX_PENDING);
  px__op_forget(io_.get(), PX__OP_IN);  // nobody reads for a while
  for (int idle = 0; idle < 20 && sent < total;) {
    idle = push() ? 0 : idle + 1;
    Turn(reactor_, 5);
  }
  ASSERT_GT(sent, size_t{1} << 20) << "more than the pool was sent";
  size_t got = 0;
  bool eof = false;
  for (int rounds = 0; !eof && rounds < 100000; rounds++) {
    int rc = px__op_read(io_.get(), &cx_, buf, sizeof buf, &n);
    ASSERT_GE(rc, 0) << px_err_name(rc);
    if (rc == PX_PENDING) {
      if (push() == false && sent == total && fds_[1] >= 0) {
        close(fds_[1]);
        fds_[1] = -1;
      }
      c_.wakes = 0;
      ASSERT_TRUE(PollUntilWoken(reactor_, c_)) << "stalled at " << got;
      continue;
    }
    if (n == 0) {
      eof = true;
      break;
    }
    for (size_t i = 0; i < n; i++)
      ASSERT_EQ(buf[i], pattern(got + i)) << "byte " << got + i;
    got += n;
  }
  EXPECT_TRUE(eof);
  EXPECT_EQ(got, total);
}

// Arms a multishot receive on io (when the backend has a pool) that nobody
// reads, and sends into `peer` until the socket takes no more, the reactor
// turning: the stream's bytes pile up in the pool. Returns the op; the
// bytes sent are added to *sent.
px__op *FillUnread(px__reactor *r, px_context *cx, px__io *io, int peer,
                   size_t *sent = nullptr) {
  char b;
  size_t n = 0;
  EXPECT_EQ(px__op_read(io, cx, &b, 1, &n), PX_PENDING);
  px__op_forget(io, PX__OP_IN);
  std::vector<char> out(65536, 'x');
  for (int idle = 0; idle < 20;) {
    ssize_t m = send(peer, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (m > 0 && sent != nullptr) *sent += static_cast<size_t>(m);
    idle = m > 0 ? 0 : idle + 1;
    Turn(r, 5);
  }
  return io->op[PX__OP_IN];
}

// A stream that stops reading takes only its share of the receive pool
// (its multishot receive is stopped, and the next read starts another):
// another stream's receive still goes into the pool, and its own bytes all
// come, in order. While a stream is served by the pool, its op has no
// buffer of its own (an idle connection costs none).
TEST_P(CompletionTest, AStreamThatStopsReadingLeavesThePoolToOthers) {
  size_t sent = 0;
  px__op *held = FillUnread(reactor_, &cx_, io_.get(), fds_[1], &sent);
  if (held->chunks == nullptr) GTEST_SKIP() << "no receive pool on this kernel";
  EXPECT_EQ(held->buf, nullptr);
  EXPECT_EQ(held->state, PX__OP_IDLE) << "still receiving into the pool";
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  IoPtr other = make_io(sv[0]);
  ASSERT_EQ(px__io_register_completion(other.get(), reactor_), 0);
  char buf[4096];
  size_t n = 0;
  ASSERT_EQ(px__op_read(other.get(), &cx_, buf, sizeof buf, &n), PX_PENDING);
  EXPECT_TRUE(other->op[PX__OP_IN]->multishot) << "the pool ran dry";
  EXPECT_EQ(other->op[PX__OP_IN]->buf, nullptr);
  other.reset();
  close(sv[0]);
  close(sv[1]);
  // The first stream reads on: every byte sent, in order (its receive
  // starts again once it took what it held).
  size_t got = 0;
  while (got < sent) {
    int rc = px__op_read(io_.get(), &cx_, buf, sizeof buf, &n);
    ASSERT_GE(rc, 0) << px_err_name(rc);
    if (rc == PX_PENDING) {
      c_.wakes = 0;
      ASSERT_TRUE(PollUntilWoken(reactor_, c_)) << "stalled at " << got;
      continue;
    }
    ASSERT_GT(n, 0u);
    ASSERT_EQ(std::string(buf, n), std::string(n, 'x')) << "at " << got;
    got += n;
  }
  EXPECT_EQ(got, sent);
}

// When many streams stop reading the pool runs low all the same. Another
// stream's receive then takes a pool buffer only once its bytes come, so
// it holds none while it waits; once the pool is empty, a receive that
// found it so is followed by one into a buffer of the op's own, given back
// once its bytes were read.
TEST_P(CompletionTest, NoReceiveWaitsWithABufferWhileOthersHoldThePool) {
  if (FillUnread(reactor_, &cx_, io_.get(), fds_[1])->chunks == nullptr)
    GTEST_SKIP() << "no receive pool on this kernel";
  std::vector<std::pair<IoPtr, std::array<int, 2>>> fillers;
  char buf[4096];
  size_t n = 0;
  bool own = false;
  for (int i = 0; i < 128 && !own; i++) {
    std::array<int, 2> sv;
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv.data()), 0);
    IoPtr io = make_io(sv[0]);
    ASSERT_EQ(px__io_register_completion(io.get(), reactor_), 0);
    ASSERT_EQ(px__op_read(io.get(), &cx_, buf, sizeof buf, &n), PX_PENDING);
    px__op *op = io->op[PX__OP_IN];
    EXPECT_EQ(op->buf, nullptr) << "stream " << i << " waits with a buffer";
    ASSERT_EQ(send(sv[1], "hello", 5, MSG_NOSIGNAL), 5);
    int rc = PX_PENDING;
    for (int k = 0; k < 10 && rc == PX_PENDING; k++) {
      c_.wakes = 0;
      ASSERT_TRUE(PollUntilWoken(reactor_, c_)) << "stream " << i;
      rc = px__op_read(io.get(), &cx_, buf, sizeof buf, &n);
      // The pool was empty when the bytes came: now into the op's own.
      if (rc == PX_PENDING && op->buf != nullptr) own = true;
    }
    ASSERT_EQ(rc, PX_READY) << px_err_name(rc);
    EXPECT_EQ(std::string(buf, n), "hello");
    EXPECT_EQ(op->buf, nullptr) << "read, and its buffer kept";
    fillers.emplace_back(std::move(io), sv);
    if (!own)
      (void)FillUnread(reactor_, &cx_, fillers.back().first.get(), sv[1]);
  }
  EXPECT_TRUE(own) << "the pool never ran dry";
  for (auto &f : fillers) {
    f.first.reset();
    close(f.second[0]);
    close(f.second[1]);
  }
}

// The peer wrote and shut down before the first read was asked for: both
// the bytes and the end of the stream must come (a multishot receive armed
// to wait for data first saw the bytes, then waited forever for the end).
TEST_P(CompletionTest, EndOfStreamThatCameWithTheBytes) {
  Send("abc");
  ASSERT_EQ(shutdown(fds_[1], SHUT_WR), 0);
  char buf[8];
  size_t n = 99;
  std::string got;
  bool eof = false;
  for (int i = 0; i < 10 && !eof; i++) {
    int rc = px__op_read(io_.get(), &cx_, buf, sizeof buf, &n);
    ASSERT_GE(rc, 0) << px_err_name(rc);
    if (rc == PX_PENDING) {
      c_.wakes = 0;
      ASSERT_TRUE(PollUntilWoken(reactor_, c_)) << "after " << got;
    } else if (n == 0) {
      eof = true;
    } else {
      got.append(buf, n);
    }
  }
  EXPECT_EQ(got, "abc");
  EXPECT_TRUE(eof);
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

// Flushes io's writes, turning the reactor while they go out.
static int FlushOut(px__reactor *r, px__io *io, px_context *cx) {
  int rc = px__op_flush(io, cx);
  for (int i = 0; i < 100 && rc == PX_PENDING; i++) {
    (void)px__reactor_poll(r, 20);
    rc = px__op_flush(io, cx);
  }
  return rc;
}

// Reads exactly `len` bytes from a blocking-enough peer socket.
static std::string PeerRead(int fd, size_t len) {
  std::string got;
  char b[65536];
  auto start = Clock::now();
  while (got.size() < len && ms_since(start) < 5000) {
    ssize_t k = recv(fd, b, std::min(sizeof b, len - got.size()), MSG_DONTWAIT);
    if (k > 0)
      got.append(b, static_cast<size_t>(k));
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return got;
}

TEST_P(CompletionTest, AWriteBufferIsHeldOnlyWhileItsBytesGoOut) {
  // Written behind: the bytes wait in a buffer of the op until they are
  // out, and then the buffer goes back, so an idle connection holds none.
  size_t n = 0;
  ASSERT_EQ(px__op_write(io_.get(), &cx_, "hello", 5, &n), PX_READY);
  EXPECT_EQ(n, 5u);
  px__op *op = io_->op[PX__OP_OUT];
  ASSERT_NE(op, nullptr);
  ASSERT_EQ(FlushOut(reactor_, io_.get(), &cx_), PX_READY);
  EXPECT_EQ(op->buf, nullptr) << "an idle stream keeps its write buffer";
  EXPECT_EQ(PeerRead(fds_[1], 5), "hello");
  // The next write takes one again (a spare, the same size), and a large
  // one gets a buffer of its own size: every byte arrives, in order, and
  // each buffer goes back once it is out.
  ASSERT_EQ(px__op_write(io_.get(), &cx_, "world", 5, &n), PX_READY);
  ASSERT_EQ(FlushOut(reactor_, io_.get(), &cx_), PX_READY);
  EXPECT_EQ(op->buf, nullptr);
  EXPECT_EQ(PeerRead(fds_[1], 5), "world");
  std::string big(20000, 'q');
  for (size_t i = 0; i < big.size(); i++)
    big[i] = static_cast<char>('a' + i % 26);
  std::string sent;
  std::thread reader([&] { EXPECT_EQ(PeerRead(fds_[1], big.size()), big); });
  while (sent.size() < big.size()) {
    int rc = px__op_write(io_.get(), &cx_, big.data() + sent.size(),
                          big.size() - sent.size(), &n);
    if (rc == PX_PENDING) {
      (void)px__reactor_poll(reactor_, 20);
      continue;
    }
    ASSERT_EQ(rc, PX_READY);
    sent.append(big, sent.size(), n);
  }
  EXPECT_EQ(FlushOut(reactor_, io_.get(), &cx_), PX_READY);
  reader.join();
  EXPECT_EQ(op->buf, nullptr);
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
  sockaddr_in a;
  int l;
  IoPtr lio = Listener(&a, 8, &l);
  int fd = -1;
  ASSERT_EQ(px__op_accept(lio.get(), &cx_, &fd), PX_PENDING);
  px__op_forget(lio.get(), PX__OP_IN);  // dropped before anyone connects
  int c1 = Dial(a);
  ASSERT_GE(c1, 0);
  Turn(reactor_, 100);
  ASSERT_EQ(px__op_accept(lio.get(), &cx_, &fd), PX_READY);
  ASSERT_GE(fd, 0);
  EXPECT_NE(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  close(fd);

  // One accepted for nobody when the listener closes is closed with it.
  ASSERT_EQ(px__op_accept(lio.get(), &cx_, &fd), PX_PENDING);
  px__op_forget(lio.get(), PX__OP_IN);
  int c2 = Dial(a);
  ASSERT_GE(c2, 0);
  Turn(reactor_, 100);
  lio.reset();
  close(l);
  char b;
  EXPECT_EQ(recv(c2, &b, 1, 0), 0) << "the server side was closed";
  close(c1);
  close(c2);
}

// A multishot accept takes connections ahead of the accepts: each is given
// once, in the order the clients connected; the request stops once enough
// wait (a server that does not accept must not run out of descriptors) and
// the next accept that empties the queue starts another; closing the
// listener closes those nobody took.
TEST_P(CompletionTest, ConnectionsAcceptedAheadComeInOrderAndStop) {
  sockaddr_in a;
  int l;
  IoPtr lio = Listener(&a, 128, &l);
  int fd = -1;
  ASSERT_EQ(px__op_accept(lio.get(), &cx_, &fd), PX_PENDING);

  // Connected one by one, each accepted (ahead) before the next comes.
  const int kClients = 40;
  std::vector<int> clients;
  std::vector<int> ports;
  for (int i = 0; i < kClients; i++) {
    int c = Dial(a);
    ASSERT_GE(c, 0);
    sockaddr_in me;
    socklen_t len = sizeof me;
    ASSERT_EQ(getsockname(c, reinterpret_cast<sockaddr *>(&me), &len), 0);
    clients.push_back(c);
    ports.push_back(ntohs(me.sin_port));
    Turn(reactor_, 5);
  }
  Turn(reactor_, 50);
  px__op *op = lio->op[PX__OP_IN];
  ASSERT_NE(op, nullptr);
  size_t queued = (op->len - op->off) / sizeof(int);
  if (op->kind == PX__OP_ACCEPT && queued > 0) {
    // Multishot (a kernel without it accepts one at a time): stopped.
    EXPECT_GE(queued, 16u);
    EXPECT_LT(queued, static_cast<size_t>(kClients));
    EXPECT_EQ(op->state, PX__OP_IDLE) << "still accepting ahead";
  }
  for (int i = 0; i < kClients; i++) {
    int rc = px__op_accept(lio.get(), &cx_, &fd);
    for (int t = 0; t < 100 && rc == PX_PENDING; t++) {
      c_.wakes = 0;
      ASSERT_TRUE(PollUntilWoken(reactor_, c_)) << "connection " << i;
      rc = px__op_accept(lio.get(), &cx_, &fd);
    }
    ASSERT_EQ(rc, PX_READY) << "connection " << i << ": " << px_err_name(rc);
    sockaddr_in peer;
    socklen_t len = sizeof peer;
    ASSERT_EQ(getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len), 0);
    EXPECT_EQ(ntohs(peer.sin_port), ports[i]) << "connection " << i;
    EXPECT_NE(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    close(fd);
  }
  // All taken: the next accept waits (a new request).
  ASSERT_EQ(px__op_accept(lio.get(), &cx_, &fd), PX_PENDING);

  // Two more arrive and wait ahead; the listener closes: both are closed.
  for (int i = 0; i < 2; i++) {
    int c = Dial(a);
    ASSERT_GE(c, 0);
    clients.push_back(c);
  }
  Turn(reactor_, 100);
  lio.reset();
  close(l);
  for (size_t i = kClients; i < clients.size(); i++) {
    timeval tv = {5, 0};
    setsockopt(clients[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char b;
    ssize_t n = recv(clients[i], &b, 1, 0);
    EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET))
        << "client " << i << ": the server side was not closed";
  }
  for (int c : clients) close(c);
}

TEST_P(CompletionTest, ConnectSucceedsFailsAndFreesWhenDropped) {
  sockaddr_in a;
  int l = Listen(&a, 8);
  auto connect_op = [&](px__io *io) {
    int rc = px__op_connect(io, &cx_, reinterpret_cast<sockaddr *>(&a),
                            sizeof a);
    for (int i = 0; i < 50 && rc == PX_PENDING; i++) {
      c_.wakes = 0;
      EXPECT_TRUE(PollUntilWoken(reactor_, c_));
      rc = px__op_connect(io, &cx_, reinterpret_cast<sockaddr *>(&a),
                          sizeof a);
    }
    return rc;
  };
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  IoPtr sio = make_io(s);
  ASSERT_EQ(px__io_register_completion(sio.get(), reactor_), 0);
  ASSERT_EQ(connect_op(sio.get()), PX_READY);
  EXPECT_EQ(sio->op[PX__OP_OUT], nullptr) << "the slot is the writes' now";
  int peer = -1;
  for (int i = 0; i < 100 && peer < 0; i++) {
    peer = accept(l, nullptr, nullptr);
    if (peer < 0) Turn(reactor_, 5);
  }
  ASSERT_GE(peer, 0);
  size_t n = 0;
  ASSERT_EQ(px__op_write(sio.get(), &cx_, "hi", 2, &n), PX_READY);
  EXPECT_EQ(Flush(sio.get()), PX_READY);
  char got[4] = {0};
  EXPECT_EQ(recv(peer, got, sizeof got, 0), 2);
  EXPECT_STREQ(got, "hi");
  close(peer);
  sio.reset();
  close(s);

  // Nobody listens any more: refused.
  close(l);
  int s2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  IoPtr sio2 = make_io(s2);
  ASSERT_EQ(px__io_register_completion(sio2.get(), reactor_), 0);
  EXPECT_EQ(connect_op(sio2.get()), PX_ECONNREFUSED);
  sio2.reset();
  close(s2);

  // A connect still under way when its stream goes is cancelled and freed
  // at its completion (the teardown compares the allocator's live bytes).
  // A listener with a full backlog that nobody accepts from drops SYNs, so
  // later connects stay under way.
  int l3 = Listen(&a, 0);
  std::vector<int> extra;
  int pending_rc = PX_READY;
  for (int i = 0; i < 8 && pending_rc != PX_PENDING; i++) {
    int s3 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    IoPtr sio3 = make_io(s3);
    ASSERT_EQ(px__io_register_completion(sio3.get(), reactor_), 0);
    auto *addr = reinterpret_cast<sockaddr *>(&a);
    ASSERT_EQ(px__op_connect(sio3.get(), &cx_, addr, sizeof a), PX_PENDING);
    Turn(reactor_, 20);
    pending_rc = px__op_connect(sio3.get(), &cx_, addr, sizeof a);
    if (pending_rc == PX_PENDING) {
      px__op_forget(sio3.get(), PX__OP_OUT);
      sio3.reset();  // dropped mid-connect
      Turn(reactor_, 20);
      close(s3);
      break;
    }
    // Connected into the backlog: keep it there, to fill it.
    ASSERT_EQ(pending_rc, PX_READY) << px_err_name(pending_rc);
    sio3.reset();
    extra.push_back(s3);
  }
  EXPECT_EQ(pending_rc, PX_PENDING) << "a connect stayed under way";
  for (int fd : extra) close(fd);
  close(l3);
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
  // already be there): the look says "try the syscall". After one, it
  // waits for a new readiness first (the waker is stored); a new readiness,
  // a hang-up or an error ends that.
  Counter c;
  px_waker w = borrowed(&c);
  px__io_event ev;
  ASSERT_TRUE(look(io_.get(), &w, PX__READABLE, &ev));
  EXPECT_EQ(ev.ready, unsigned{PX__READABLE}) << "what an EAGAIN clears";
  EXPECT_EQ(c.live.load(), 0) << "a look that says try stores no waker";
  px__io_dispatch(io_.get(), PX__READABLE);
  ASSERT_TRUE(look(io_.get(), &w, PX__READABLE, &ev));
  px__io_clear_ready(io_.get(), ev);  // the syscall said EAGAIN
  EXPECT_EQ(ready_bits(io_.get()), 0u) << "the drained mark is no readiness";
  EXPECT_FALSE(look(io_.get(), &w, PX__READABLE)) << "drained: wait";
  EXPECT_EQ(c.live.load(), 1) << "the waker waits in the slot";
  EXPECT_TRUE(look(io_.get(), &w, PX__WRITABLE)) << "the other direction";
  px__io_dispatch(io_.get(), PX__READABLE);  // a new readiness
  EXPECT_EQ(c.wakes.load(), 1);
  ASSERT_TRUE(look(io_.get(), &w, PX__READABLE, &ev));
  EXPECT_EQ(ev.ready, unsigned{PX__READABLE});
  // A stale clear (a dispatch came after the look) neither clears nor marks.
  px__io_event old;
  ASSERT_TRUE(look(io_.get(), &w, PX__WRITABLE, &old));
  px__io_dispatch(io_.get(), PX__WRITABLE);
  px__io_clear_ready(io_.get(), old);
  EXPECT_EQ(ready_bits(io_.get()) & PX__WRITABLE, unsigned{PX__WRITABLE});
  EXPECT_TRUE(look(io_.get(), &w, PX__WRITABLE));
  // Drained again, then a hang-up: end of stream must be read.
  ASSERT_TRUE(look(io_.get(), &w, PX__READABLE, &ev));
  px__io_clear_ready(io_.get(), ev);
  ASSERT_FALSE(look(io_.get(), &w, PX__READABLE));
  px__io_dispatch(io_.get(), PX__HUP);
  EXPECT_TRUE(look(io_.get(), &w, PX__READABLE));
  px__io_clear_ready(io_.get(), ev);  // stale: the hang-up moved the tick
  EXPECT_TRUE(look(io_.get(), &w, PX__READABLE)) << "a hang-up stays";
  EXPECT_EQ(c.wakes.load(), 2) << "the hang-up woke the waiting look";
  EXPECT_EQ(c.live.load(), 0);
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
