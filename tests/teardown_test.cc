// Teardown in any order (issue 13): every I/O object (TCP listener and
// stream, Unix listener, UDP socket, signal stream, wrapped descriptor,
// pipe) may be closed before or after its runtime is freed, whether it was
// never registered, registered by an operation that was dropped, or had a
// task blocked on it when the runtime went away. px_runtime_free detaches
// what is still registered; closing afterwards only closes the descriptor.
// Run under ASan, TSan and valgrind in the matrix: any touch of freed
// reactor memory fails there.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/fn_future.h"
#include "tests/support.h"

namespace {

using px_test::FnFuture;
using px_test::kFnVtable;

// One kind of I/O object: how to open it, start a pending operation on
// it (whose future is placed in `slot`), and close it.
struct Kind {
  const char *name;
  std::function<void *()> open;
  std::function<px_future *(void *obj, void *slot)> op;
  std::function<void(void *obj)> close;
};

// Big enough for any operation future used below.
union OpSlot {
  px_stream_io io;
  px_tcp_accept acc;
  px_udp_io udp;
  px_signal_recv sig;
  char pad[512];
};

char g_buf[64];

std::vector<Kind> Kinds() {
  std::vector<Kind> k;
  k.push_back({"tcp listener",
               [] {
                 px_tcp_listener *l = nullptr;
                 EXPECT_EQ(px_tcp_bind("127.0.0.1", 0, &l), 0);
                 return static_cast<void *>(l);
               },
               [](void *o, void *slot) {
                 return px_tcp_accept_init(static_cast<px_tcp_accept *>(slot),
                                           static_cast<px_tcp_listener *>(o));
               },
               [](void *o) { px_tcp_listener_close(static_cast<px_tcp_listener *>(o)); }});
  k.push_back({"unix listener",
               [] {
                 unix_path path;
                 EXPECT_EQ(unix_path_new(&path), 0);
                 px_tcp_listener *l = nullptr;
                 EXPECT_EQ(px_unix_bind(path.path, &l), 0);
                 unix_path_free(&path);  // the listener lives on without the name
                 return static_cast<void *>(l);
               },
               [](void *o, void *slot) {
                 return px_tcp_accept_init(static_cast<px_tcp_accept *>(slot),
                                           static_cast<px_tcp_listener *>(o));
               },
               [](void *o) { px_tcp_listener_close(static_cast<px_tcp_listener *>(o)); }});
  k.push_back({"udp socket",
               [] {
                 px_udp_socket *u = nullptr;
                 EXPECT_EQ(px_udp_bind("127.0.0.1", 0, &u), 0);
                 return static_cast<void *>(u);
               },
               [](void *o, void *slot) {
                 return px_udp_recv_from_init(static_cast<px_udp_io *>(slot),
                                              static_cast<px_udp_socket *>(o),
                                              g_buf, sizeof g_buf, nullptr);
               },
               [](void *o) { px_udp_close(static_cast<px_udp_socket *>(o)); }});
  k.push_back({"signal stream",
               [] {
                 int sigs[] = {SIGUSR2};
                 px_signal *s = nullptr;
                 EXPECT_EQ(px_signal_open(&s, sigs, 1), 0);
                 return static_cast<void *>(s);
               },
               [](void *o, void *slot) {
                 return px_signal_recv_init(static_cast<px_signal_recv *>(slot),
                                            static_cast<px_signal *>(o));
               },
               [](void *o) { px_signal_close(static_cast<px_signal *>(o)); }});
  k.push_back({"wrapped socket",
               [] {
                 int sv[2];
                 EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
                 px_stream *a = nullptr;
                 EXPECT_EQ(px_fd_wrap(sv[0], &a), 0);
                 // The peer end stays open so a read stays pending; a
                 // descriptor, not memory, and closed when the test exits.
                 (void)sv[1];
                 return static_cast<void *>(a);
               },
               [](void *o, void *slot) {
                 return px_stream_read_init(static_cast<px_stream_io *>(slot),
                                            static_cast<px_stream *>(o), g_buf,
                                            sizeof g_buf);
               },
               [](void *o) { px_stream_close(static_cast<px_stream *>(o)); }});
  k.push_back({"pipe",
               [] {
                 px_stream *r = nullptr, *w = nullptr;
                 EXPECT_EQ(px_pipe(&r, &w), 0);
                 // The write end is kept (closing it would end the read);
                 // it is closed with the read end by the close below.
                 auto *pair = new std::pair<px_stream *, px_stream *>(r, w);
                 return static_cast<void *>(pair);
               },
               [](void *o, void *slot) {
                 auto *pair = static_cast<std::pair<px_stream *, px_stream *> *>(o);
                 return px_stream_read_init(static_cast<px_stream_io *>(slot),
                                            pair->first, g_buf, sizeof g_buf);
               },
               [](void *o) {
                 auto *pair = static_cast<std::pair<px_stream *, px_stream *> *>(o);
                 px_stream_close(pair->first);
                 px_stream_close(pair->second);
                 delete pair;
               }});
  return k;
}

enum class Use {
  kNever,          // opened, never polled
  kDroppedOp,      // an operation went pending, then was dropped
  kBlockedTask,    // a task was blocked on it when the runtime was freed
};

enum class Order { kCloseFirst, kFreeFirst };

// Opens the object, uses it as `use` says on a fresh runtime, then closes
// it and frees the runtime in `order`.
void Exercise(const Kind &k, Use use, Order order) {
  SCOPED_TRACE(std::string(k.name) + " use=" + std::to_string(int(use)) +
               " order=" + std::to_string(int(order)));
  void *obj = k.open();
  ASSERT_NE(obj, nullptr);
  px_runtime *rt = nullptr;
  ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);

  OpSlot main_slot, task_slot;
  // The blocked task: polls its operation forever.
  std::function<px_poll(px_context *)> blocked = [&](px_context *cx) {
    if (px_future_poll(reinterpret_cast<px_future *>(&task_slot), cx) ==
        PX_PENDING)
      return PX_PENDING;
    ADD_FAILURE() << "the blocked operation completed";
    return PX_READY;
  };
  int step = 0;
  std::function<px_poll(px_context *)> main_fn = [&](px_context *cx) {
    if (use == Use::kDroppedOp && step == 0) {
      px_future *f = k.op(obj, &main_slot);
      EXPECT_EQ(px_future_poll(f, cx), PX_PENDING);
      px_future_drop(f);
    }
    if (use == Use::kBlockedTask && step == 0) {
      k.op(obj, &task_slot);
      FnFuture t;
      px_future_init(&t.base, &kFnVtable);
      t.fn = &blocked;
      EXPECT_EQ(px_spawn(&t.base, nullptr), 0);  // detached
    }
    // A few turns, so a spawned task surely made its first poll.
    if (step++ < 5) {
      px_waker_wake_by_ref(cx->waker);
      return PX_PENDING;
    }
    return PX_READY;
  };
  FnFuture m;
  px_future_init(&m.base, &kFnVtable);
  m.fn = &main_fn;
  EXPECT_EQ(px_runtime_block_on(rt, &m.base), 0);

  if (order == Order::kCloseFirst && use != Use::kBlockedTask) {
    k.close(obj);
    px_runtime_free(rt);
  } else {
    // The task blocked on it is dropped by the runtime's shutdown; the
    // object outlives the runtime and is closed afterwards.
    px_runtime_free(rt);
    k.close(obj);
  }
}

TEST(Teardown, EveryObjectInEveryOrder) {
  for (const Kind &k : Kinds())
    for (Use use : {Use::kNever, Use::kDroppedOp, Use::kBlockedTask})
      for (Order order : {Order::kCloseFirst, Order::kFreeFirst})
        Exercise(k, use, order);
}

// After the runtime is gone, the object can even be used again with a new
// runtime: it registers with the new reactor.
TEST(Teardown, AnObjectOutlivesItsRuntimeAndServesTheNext) {
  px_stream *r = nullptr, *w = nullptr;
  ASSERT_EQ(px_pipe(&r, &w), 0);
  for (int round = 0; round < 2; round++) {
    px_runtime *rt = nullptr;
    ASSERT_EQ(px_runtime_new(&rt, nullptr), 0);
    px_stream_io wr, rd;
    char out[4] = {0};
    ASSERT_EQ(px_runtime_block_on(rt, px_stream_write_all_init(&wr, w, "abc", 3)), 0);
    ASSERT_EQ(px_runtime_block_on(rt, px_stream_read_init(&rd, r, out, 3)), 0);
    EXPECT_EQ(rd.base.output.u64, 3u);
    EXPECT_STREQ(out, "abc");
    px_runtime_free(rt);  // r and w stay open, registered with nobody
  }
  px_stream_close(r);
  px_stream_close(w);
}

}  // namespace
