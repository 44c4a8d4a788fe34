// Name resolution (pollux/resolve.h): px_lookup_host on the blocking pool,
// numeric addresses without it, errors, cancel-safety (a lookup dropped
// while getaddrinfo runs leaks nothing), and px_tcp_connect_host trying
// each address. Runs on every executor and reactor in the matrix.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "tests/fn_future.h"
#include "tests/support.h"

namespace {

using px_test::RunFn;

class ResolveTest : public ::testing::Test {
 protected:
  void SetUp() override { counting_allocator_install(); }
  void TearDown() override {
    EXPECT_EQ(g_alloc.live_blocks.load(), 0) << "leaked blocks";
    counting_allocator_remove();
  }
};

// block_on(f) on a fresh runtime; returns its result.
int RunLookup(px_future *f, int *threads_used = nullptr) {
  px_runtime *rt = nullptr;
  EXPECT_EQ(px_runtime_new(&rt, nullptr), 0);
  int rc = px_runtime_block_on(rt, f);
  if (threads_used) *threads_used = px_runtime_blocking_threads(rt);
  px_future_drop(f);
  px_runtime_free(rt);
  return rc;
}

px_addr_list *List(const px_lookup_host &l) {
  return static_cast<px_addr_list *>(l.base.output.ptr);
}

std::string Format(const px_addr *a) {
  char buf[128];
  EXPECT_GT(px_addr_format(a, buf, sizeof buf), 0);
  return buf;
}

TEST_F(ResolveTest, NumericAddressNeedsNoThread) {
  px_lookup_host l;
  int threads = -1;
  EXPECT_EQ(RunLookup(px_lookup_host_init(&l, "127.0.0.1", 8080), &threads), 0);
  ASSERT_NE(List(l), nullptr);
  ASSERT_EQ(List(l)->len, 1u);
  EXPECT_EQ(Format(&List(l)->addrs[0]), "127.0.0.1:8080");
  EXPECT_EQ(threads, 0);  // no pool thread was started for it
  px_addr_list_free(List(l));
  px_lookup_host v6;
  EXPECT_EQ(RunLookup(px_lookup_host_init(&v6, "::1", 9)), 0);
  ASSERT_EQ(List(v6)->len, 1u);
  EXPECT_EQ(Format(&List(v6)->addrs[0]), "[::1]:9");
  px_addr_list_free(List(v6));
  px_addr_list_free(nullptr);
}

TEST_F(ResolveTest, LocalhostResolvesOnThePoolWithThePort) {
  px_lookup_host l;
  std::string first;
  bool has_loopback = false;
  size_t n = 0;
  px_runtime *rt = nullptr;
  ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
  ASSERT_EQ(px_runtime_block_on(rt, px_lookup_host_init(&l, "localhost", 4242)), 0);
  px_addr_list *list = List(l);
  ASSERT_NE(list, nullptr);
  n = list->len;
  for (size_t i = 0; i < n; i++) {
    EXPECT_EQ(px_addr_port(&list->addrs[i]), 4242);
    std::string s = Format(&list->addrs[i]);
    if (s == "127.0.0.1:4242" || s == "[::1]:4242") has_loopback = true;
  }
  EXPECT_GE(n, 1u);
  EXPECT_TRUE(has_loopback);
  EXPECT_GE(px_runtime_blocking_threads(rt), 1);  // it ran on the pool
  px_future_drop(&l.base);
  px_addr_list_free(list);
  px_runtime_free(rt);
}

TEST_F(ResolveTest, UnknownNameIsAnError) {
  px_lookup_host l;
  int rc = RunLookup(px_lookup_host_init(&l, "no-such-host.invalid", 80));
  // Not found; or, on a machine whose name server cannot be reached, a
  // temporary failure. Never success, never a crash.
  EXPECT_TRUE(rc == PX_EHOSTNOTFOUND || rc == PX_EAGAIN) << px_err_name(rc);
  EXPECT_EQ(List(l), nullptr);
  EXPECT_STREQ(px_err_name(PX_EHOSTNOTFOUND), "EHOSTNOTFOUND");
  EXPECT_STREQ(px_strerror(PX_EHOSTNOTFOUND), "host name not found");
}

TEST_F(ResolveTest, BadArguments) {
  EXPECT_EQ(px_lookup_host_init(nullptr, "localhost", 1), nullptr);
  EXPECT_EQ(px_tcp_connect_host_init(nullptr, "localhost", 1), nullptr);
  px_lookup_host a, b, c;
  EXPECT_EQ(RunLookup(px_lookup_host_init(&a, nullptr, 1)), PX_EINVAL);
  EXPECT_EQ(RunLookup(px_lookup_host_init(&b, "", 1)), PX_EINVAL);
  std::string longname(300, 'a');
  EXPECT_EQ(RunLookup(px_lookup_host_init(&c, longname.c_str(), 1)), PX_EINVAL);
  // Outside a runtime a name cannot be looked up (no pool).
  px_lookup_host d;
  px_lookup_host_init(&d, "localhost", 1);
  px_waker w = PX_WAKER_EMPTY;
  px_context cx = {&w, nullptr};
  ASSERT_EQ(px_future_poll(&d.base, &cx), PX_READY);
  EXPECT_EQ(d.base.error, PX_ENORUNTIME);
  px_future_drop(&d.base);
  // Dropped without a poll: nothing leaks (name or numeric).
  px_lookup_host e, g;
  px_lookup_host_init(&e, "localhost", 1);
  px_future_drop(&e.base);
  px_lookup_host_init(&g, "10.0.0.1", 1);
  px_future_drop(&g.base);
}

// A lookup dropped after its first poll (the job queued or running) leaks
// nothing: the pool frees the state when getaddrinfo returns.
TEST_F(ResolveTest, DroppedLookupLeaksNothing) {
  for (int i = 0; i < 20; i++) {
    px_lookup_host l;
    int step = 0;
    EXPECT_EQ(RunFn([&](px_context *cx) {
                if (step++ == 0) {
                  px_lookup_host_init(&l, "localhost", 1);
                  int rc = px_future_poll(&l.base, cx);
                  px_future_drop(&l.base);  // pending (or done): let go
                  if (rc == PX_READY) px_addr_list_free(List(l));
                }
                return PX_READY;
              }),
              0);
  }
}

TEST_F(ResolveTest, ConnectByNameReachesAListener) {
  px_tcp_listener *lis = nullptr;
  ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &lis), 0);
  int port = px_tcp_listener_port(lis);
  ASSERT_GT(port, 0);
  px_tcp_connect_host c;
  px_tcp_accept acc;
  px_stream *client = nullptr, *server = nullptr;
  int step = 0;
  EXPECT_EQ(RunFn([&](px_context *cx) {
              if (step++ == 0) {
                px_tcp_connect_host_init(&c, "localhost", (uint16_t)port);
                px_tcp_accept_init(&acc, lis);
              }
              if (client == nullptr) {
                if (px_future_poll(&c.base, cx) == PX_PENDING) return PX_PENDING;
                EXPECT_EQ(c.base.error, 0) << px_err_name(c.base.error);
                client = static_cast<px_stream *>(c.base.output.ptr);
                if (client == nullptr) return PX_READY;
              }
              if (px_future_poll(&acc.base, cx) == PX_PENDING) return PX_PENDING;
              EXPECT_EQ(acc.base.error, 0);
              server = static_cast<px_stream *>(acc.base.output.ptr);
              px_future_drop(&c.base);
              px_future_drop(&acc.base);
              px_tcp_close(client);
              px_tcp_close(server);
              px_tcp_listener_close(lis);
              return PX_READY;
            }),
            0);
  EXPECT_NE(server, nullptr);
}

// Nothing listens: every address is tried, the last error comes back.
TEST_F(ResolveTest, ConnectByNameToAClosedPortIsRefused) {
  px_tcp_listener *lis = nullptr;
  ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &lis), 0);
  int port = px_tcp_listener_port(lis);
  px_tcp_listener_close(lis);  // the port is free again: nobody listens
  px_tcp_connect_host c;
  EXPECT_EQ(RunLookup(px_tcp_connect_host_init(&c, "localhost", (uint16_t)port)),
            PX_ECONNREFUSED);
  px_tcp_connect_host d;
  int rc = RunLookup(px_tcp_connect_host_init(&d, "no-such-host.invalid", 1));
  EXPECT_TRUE(rc == PX_EHOSTNOTFOUND || rc == PX_EAGAIN) << px_err_name(rc);
  px_tcp_connect_host e;
  EXPECT_EQ(RunLookup(px_tcp_connect_host_init(&e, "", 1)), PX_EINVAL);
}

}  // namespace
