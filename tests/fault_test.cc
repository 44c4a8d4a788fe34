// Fault injection: allocation failures through px_set_allocator, and
// syscall failures (EINTR, short reads and writes, EMFILE on accept, a peer
// reset mid-write, EAGAIN storms from tiny socket buffers) injected under
// the echo server. Nothing may be lost: every client that writes N bytes
// reads back exactly those N, and the server keeps serving.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/fault_wrap.h"
#include "tests/stress_support.h"

namespace {

int connect_blocking(uint16_t port, int bufsize = 0) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (bufsize > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Writes `n` pattern bytes in odd-sized chunks while another thread reads
// the echo back (slowly, if asked); returns whether exactly those n came back.
bool echo_round_trip(uint16_t port, size_t n, int bufsize, bool slow_reader) {
  int fd = connect_blocking(port, bufsize);
  if (fd < 0) return false;
  std::vector<unsigned char> out(n), in;
  for (size_t i = 0; i < n; i++) out[i] = (unsigned char)(i * 131 + n);
  std::thread writer([&] {
    size_t off = 0, chunk = 1;
    while (off < n) {
      size_t len = std::min(n - off, chunk);
      ssize_t w = write(fd, out.data() + off, len);
      if (w <= 0) break;
      off += (size_t)w;
      chunk = chunk * 7 % 8191 + 1;
    }
    shutdown(fd, SHUT_WR);
  });
  unsigned char buf[1500];
  for (;;) {
    ssize_t r = read(fd, buf, slow_reader ? 700 : sizeof buf);
    if (r <= 0) break;
    in.insert(in.end(), buf, buf + r);
    if (slow_reader && in.size() % 64 < 8) usleep(200);
  }
  writer.join();
  close(fd);
  return in == out;
}

struct Fault : ::testing::Test {
  px_runtime *rt = nullptr;
  px_tcp_listener *l = nullptr;
  uint16_t port = 0;
  void SetUp() override {
    g_fault.eintr_every = 0;
    g_fault.short_io = 0;
    g_fault.emfile_next = 0;
    g_fault.calls = 0;
    g_fault.eintr_injected = 0;
    g_fault.short_injected = 0;
    g_fault.emfile_injected = 0;
    counting_allocator_install();
    ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
    ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &l), 0);
    port = (uint16_t)px_tcp_listener_port(l);
  }
  void TearDown() override {
    g_fault.eintr_every = 0;
    g_fault.short_io = 0;
    px_runtime_free(rt);
    EXPECT_EQ(g_alloc.live_blocks.load(), 0);
    counting_allocator_remove();
  }
  // Runs the runtime on this thread until `clients` have finished.
  void serve_until(px__atomic(int) &done, int clients, px_waker &slot) {
    wait_for w;
    wait_for_new(&w, &done, clients, &slot, nullptr);
    ASSERT_EQ(px_runtime_block_on(rt, &w.base), 0);
  }
};

TEST_F(Fault, EchoSurvivesEintrShortIoAndEmfile) {
  constexpr int kClients = 4;
  // The sacrificial client connects before the server first tries to
  // accept, so the injected EMFILE meets a pending connection: that one is
  // accepted into the spare descriptor and closed at once (shed).
  int sacrificial = connect_blocking(port);
  ASSERT_GE(sacrificial, 0);
  // The faults are armed before the server exists: on a multi-threaded
  // executor the spawned server may accept at once, on another thread, and
  // it must meet the injected EMFILE with its first accept.
  g_fault.eintr_every = 3;
  g_fault.short_io = 1;
  g_fault.emfile_next = 1;  // the first connection is shed, not served
  echo_server server;
  echo_server_new(&server, l, kClients);  // owns and closes the listener
  ASSERT_EQ(px_runtime_spawn(rt, &server.px.base, nullptr), 0);

  px__atomic(int) done{0}, good{0}, shed_saw_end{0};
  px_waker slot = PX_WAKER_EMPTY;
  px__atomic(int) stored{0};
  std::thread clients([&] {
    char c;
    if (read(sacrificial, &c, 1) <= 0) shed_saw_end = 1;
    close(sacrificial);
    std::vector<std::thread> ts;
    for (int i = 0; i < kClients; i++) {
      ts.emplace_back([&, i] {
        // Client 0 has tiny buffers and reads slowly: the server's sends
        // hit EAGAIN over and over (an EAGAIN storm, honestly produced).
        bool ok = echo_round_trip(port, 256 * 1024 + i, i == 0 ? 4096 : 0, i == 0);
        good += ok;
        done += 1;
        while (stored.load() == 0) usleep(100);
        px_waker_wake_by_ref(&slot);
      });
    }
    for (auto &t : ts) t.join();
  });
  wait_for w;
  wait_for_new(&w, &done, kClients, &slot, &stored);
  ASSERT_EQ(px_runtime_block_on(rt, &w.base), 0);
  clients.join();
  EXPECT_EQ(good.load(), kClients);
  EXPECT_EQ(shed_saw_end.load(), 1);
  EXPECT_EQ(g_fault.emfile_injected.load(), 1);
  // Over io_uring the kernel receives and sends itself: pollux makes no
  // recv or send call to interrupt or shorten (docs/BACKENDS.md).
  if (std::string(px_build_info()).find("reactor=io_uring") ==
      std::string::npos) {
    EXPECT_GT(g_fault.eintr_injected.load(), 0);
    EXPECT_GT(g_fault.short_injected.load(), 0);
  }
  px_waker_drop(&slot);
}

TEST_F(Fault, PeerResetMidWriteLeavesServerServing) {
  echo_server server;
  echo_server_new(&server, l, 2);
  ASSERT_EQ(px_runtime_spawn(rt, &server.px.base, nullptr), 0);
  px__atomic(int) done{0}, second_ok{0};
  px__atomic(int) stored{0};
  px_waker slot = PX_WAKER_EMPTY;
  std::thread t([&] {
    // Send a lot, read nothing, then reset: the server's write-back fails
    // with ECONNRESET or EPIPE mid-write, which must only end that task.
    int fd = connect_blocking(port, 4096);
    std::vector<char> junk(1 << 20, 'x');
    size_t off = 0;
    while (off < junk.size()) {
      ssize_t w = send(fd, junk.data() + off, junk.size() - off, MSG_DONTWAIT);
      if (w <= 0) break;
      off += (size_t)w;
    }
    usleep(20000);
    linger lg{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);  // RST
    second_ok = echo_round_trip(port, 100000, 0, false);
    done = 1;
    while (stored.load() == 0) usleep(100);
    px_waker_wake_by_ref(&slot);
  });
  wait_for w;
  wait_for_new(&w, &done, 1, &slot, &stored);
  ASSERT_EQ(px_runtime_block_on(rt, &w.base), 0);
  t.join();
  EXPECT_EQ(second_ok.load(), 1);
  px_waker_drop(&slot);
}

TEST_F(Fault, EveryAllocationFailureIsReportedAndSurvived) {
  // Fail each allocation of a spawn + sleep + socket workload in turn: the
  // call reports PX_ENOMEM (or the task fails with it), and the runtime
  // stays usable for the next attempt.
  px_tcp_listener_close(l);
  l = nullptr;
  int saw_enomem = 0;
  for (int n = 1; n <= 8; n++) {
    sleeper s;
    sleeper_new(&s, px_ms(1), 7, nullptr, nullptr);
    px_join_handle jh;
    g_alloc.fail_at = n;
    int rc = px_runtime_spawn(rt, &s.px.base, &jh);
    if (rc == PX_ENOMEM) {
      saw_enomem++;
      g_alloc.fail_at = 0;
      continue;
    }
    ASSERT_EQ(rc, 0);
    int jr = px_runtime_block_on(rt, &jh.base);
    g_alloc.fail_at = 0;
    EXPECT_TRUE(jr == 0 || jr == PX_ENOMEM) << px_err_name(jr);
    saw_enomem += jr == PX_ENOMEM;
    if (jr == 0) {
      EXPECT_EQ(jh.base.output.i64, 7);
    }
  }
  EXPECT_GE(saw_enomem, 1);
  // Registration allocations: binding with the next allocation failing.
  g_alloc.fail_at = 1;
  px_tcp_listener *l2 = nullptr;
  EXPECT_EQ(px_tcp_bind("127.0.0.1", 0, &l2), PX_ENOMEM);
  g_alloc.fail_at = 0;
  ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &l2), 0);
  px_tcp_listener_close(l2);
  // And the runtime still runs a normal task afterwards.
  sleeper s;
  sleeper_new(&s, 0, 9, nullptr, nullptr);
  px_join_handle jh;
  ASSERT_EQ(px_runtime_spawn(rt, &s.px.base, &jh), 0);
  EXPECT_EQ(px_runtime_block_on(rt, &jh.base), 0);
  EXPECT_EQ(jh.base.output.i64, 9);
}

}  // namespace

namespace {

// The one cache-line allocator (api/internal/px_internal.h): aligned,
// zeroed, every byte back to the allocator, NULL for a bad alignment or
// when the allocator fails.
TEST(AlignedAlloc, AlignedZeroedAndGivenBackWhole) {
  counting_allocator_install();
  for (size_t align : {size_t{16}, size_t{64}, size_t{128}, size_t{4096}}) {
    for (size_t size : {size_t{1}, size_t{64}, size_t{1000}}) {
      unsigned char *p =
          static_cast<unsigned char *>(px__calloc_aligned(size, align));
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
      for (size_t i = 0; i < size; i++) ASSERT_EQ(p[i], 0) << i;
      memset(p, 0xab, size);  // the whole size is ours to write
      px__free_aligned(p, size, align);
    }
  }
  EXPECT_EQ(px__calloc_aligned(8, 8), nullptr);     // below max_align_t
  EXPECT_EQ(px__calloc_aligned(8, 96), nullptr);    // not a power of two
  EXPECT_EQ(px__calloc_aligned(SIZE_MAX, 64), nullptr);  // would wrap
  g_alloc.fail_at = 1;
  EXPECT_EQ(px__calloc_aligned(64, 64), nullptr);
  g_alloc.fail_at = 0;
  px__free_aligned(nullptr, 64, 64);  // like free(NULL)
  EXPECT_EQ(g_alloc.live_blocks.load(), 0);
  EXPECT_EQ(g_alloc.live_bytes.load(), 0);
  counting_allocator_remove();
}

}  // namespace
