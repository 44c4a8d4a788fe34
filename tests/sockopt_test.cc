// Socket options (pollux/net.h's px_sockopt): each option set and read
// back on the sockets it applies to, its effect where a test can see it
// (linger 0 resets, reuseport shares a port, listeners pass options on),
// and every error: wrong kind of socket or stream, bad values, NULLs.

#include <gtest/gtest.h>

#include <string>

#include "pollux.h"
#include "tests/stream_pair.h"
#include "tests/support.h"

namespace {

class SockoptTest : public RuntimeTest {
 protected:
  int Get(px_stream *s, px_sockopt opt) {
    int v = -100;
    int err = px_tcp_get_option(s, opt, &v);
    return err < 0 ? err : v;
  }
};

TEST_F(SockoptTest, TcpStreamOptionsRoundTrip) {
  px_stream *r = nullptr, *w = nullptr;
  ASSERT_EQ(MakeStreamPair(rt_, StreamKind::kTcp, &r, &w), 0);
  EXPECT_EQ(Get(w, PX_SOCKOPT_NODELAY), 1) << "on for connected streams";
  EXPECT_EQ(Get(r, PX_SOCKOPT_NODELAY), 1) << "and accepted ones";
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_NODELAY, 0), 0);
  EXPECT_EQ(Get(w, PX_SOCKOPT_NODELAY), 0);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_KEEPALIVE, 1), 0);
  EXPECT_EQ(Get(w, PX_SOCKOPT_KEEPALIVE), 1);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_KEEPIDLE, 30), 0);
  EXPECT_EQ(Get(w, PX_SOCKOPT_KEEPIDLE), 30);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_KEEPINTVL, 5), 0);
  EXPECT_EQ(Get(w, PX_SOCKOPT_KEEPINTVL), 5);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_KEEPCNT, 3), 0);
  EXPECT_EQ(Get(w, PX_SOCKOPT_KEEPCNT), 3);
  EXPECT_EQ(Get(w, PX_SOCKOPT_LINGER), -1) << "off by default";
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_LINGER, 7), 0);
  EXPECT_EQ(Get(w, PX_SOCKOPT_LINGER), 7);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_LINGER, -1), 0);
  EXPECT_EQ(Get(w, PX_SOCKOPT_LINGER), -1);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_SNDBUF, 65536), 0);
  EXPECT_GE(Get(w, PX_SOCKOPT_SNDBUF), 65536);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_RCVBUF, 32768), 0);
  EXPECT_GE(Get(w, PX_SOCKOPT_RCVBUF), 32768);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_REUSEADDR, 1), 0);
  EXPECT_EQ(Get(w, PX_SOCKOPT_REUSEADDR), 1);

  // Values out of range, options that are no option or not for TCP.
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_NODELAY, 2), PX_EINVAL);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_NODELAY, -1), PX_EINVAL);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_KEEPIDLE, 0), PX_EINVAL);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_KEEPIDLE, 40000), PX_EINVAL);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_KEEPCNT, 128), PX_EINVAL);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_LINGER, -2), PX_EINVAL);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_SNDBUF, 0), PX_EINVAL);
  EXPECT_EQ(px_tcp_set_option(w, static_cast<px_sockopt>(99), 1), PX_EINVAL);
  EXPECT_EQ(px_tcp_set_option(w, static_cast<px_sockopt>(-1), 1), PX_EINVAL);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_BROADCAST, 1), PX_ENOTSUP);
  EXPECT_EQ(px_tcp_get_option(w, PX_SOCKOPT_BROADCAST, nullptr), PX_EINVAL);
  int v;
  EXPECT_EQ(px_tcp_get_option(w, PX_SOCKOPT_BROADCAST, &v), PX_ENOTSUP);
  EXPECT_EQ(px_tcp_set_option(nullptr, PX_SOCKOPT_NODELAY, 1), PX_EINVAL);
  EXPECT_EQ(px_tcp_get_option(nullptr, PX_SOCKOPT_NODELAY, &v), PX_EINVAL);
  px_stream_close(r);
  px_stream_close(w);
}

TEST_F(SockoptTest, LingerZeroResetsTheConnection) {
  px_stream *r = nullptr, *w = nullptr;
  ASSERT_EQ(MakeStreamPair(rt_, StreamKind::kTcp, &r, &w), 0);
  ASSERT_EQ(px_tcp_set_option(w, PX_SOCKOPT_LINGER, 0), 0);
  px_stream_close(w);
  px_stream_io io;
  char buf[4];
  EXPECT_EQ(Run(px_stream_read_init(&io, r, buf, sizeof buf)), PX_ECONNRESET)
      << "an abortive close, not an end of stream";
  px_stream_close(r);
}

TEST_F(SockoptTest, OtherStreamsRefuseTcpOptions) {
  px_stream *r = nullptr, *w = nullptr;
  ASSERT_EQ(MakeStreamPair(rt_, StreamKind::kUnix, &r, &w), 0);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_NODELAY, 1), PX_ENOTSUP);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_KEEPIDLE, 10), PX_ENOTSUP);
  EXPECT_EQ(Get(w, PX_SOCKOPT_KEEPALIVE), PX_ENOTSUP);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_SNDBUF, 65536), 0)
      << "socket-level options apply to Unix sockets";
  EXPECT_GE(Get(w, PX_SOCKOPT_SNDBUF), 65536);
  px_stream_close(r);
  px_stream_close(w);

  ASSERT_EQ(MakeStreamPair(rt_, StreamKind::kPipe, &r, &w), 0);
  EXPECT_EQ(px_tcp_set_option(w, PX_SOCKOPT_SNDBUF, 65536), PX_ENOTSUP);
  EXPECT_EQ(Get(r, PX_SOCKOPT_RCVBUF), PX_ENOTSUP);
  px_stream_close(r);
  px_stream_close(w);

  // A stream that is not a plain socket, even one over a socket.
  MemStream m;
  m.base.ops = &kMemOps;
  EXPECT_EQ(px_tcp_set_option(&m.base, PX_SOCKOPT_NODELAY, 1), PX_ENOTSUP);
  ASSERT_EQ(MakeStreamPair(rt_, StreamKind::kTcp, &r, &w), 0);
  px_buf_reader *br = nullptr;
  ASSERT_EQ(px_buf_reader_new(r, 0, &br), 0);
  EXPECT_EQ(px_tcp_set_option(px_buf_reader_stream(br), PX_SOCKOPT_NODELAY, 1),
            PX_ENOTSUP);
  EXPECT_EQ(px_tcp_set_option(px_buf_reader_inner(br), PX_SOCKOPT_NODELAY, 1),
            0)
      << "the socket underneath is reachable";
  px_buf_reader_close(br);
  px_stream_close(w);
}

TEST_F(SockoptTest, ListenerOptionsAndInheritance) {
  px_tcp_listener *l = nullptr;
  ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &l), 0);
  int v = -1;
  ASSERT_EQ(px_tcp_listener_get_option(l, PX_SOCKOPT_REUSEADDR, &v), 0);
  EXPECT_EQ(v, 1) << "px_tcp_bind sets SO_REUSEADDR";
  ASSERT_EQ(px_tcp_listener_set_option(l, PX_SOCKOPT_KEEPALIVE, 1), 0);
  ASSERT_EQ(px_tcp_listener_set_option(l, PX_SOCKOPT_KEEPIDLE, 45), 0);
  ASSERT_EQ(px_tcp_listener_get_option(l, PX_SOCKOPT_KEEPIDLE, &v), 0);
  EXPECT_EQ(v, 45);
  EXPECT_EQ(px_tcp_listener_set_option(l, PX_SOCKOPT_BROADCAST, 1),
            PX_ENOTSUP);
  EXPECT_EQ(px_tcp_listener_set_option(l, PX_SOCKOPT_KEEPCNT, 0), PX_EINVAL);
  EXPECT_EQ(px_tcp_listener_set_option(nullptr, PX_SOCKOPT_KEEPALIVE, 1),
            PX_EINVAL);
  EXPECT_EQ(px_tcp_listener_get_option(nullptr, PX_SOCKOPT_KEEPALIVE, &v),
            PX_EINVAL);
  EXPECT_EQ(px_tcp_listener_get_option(l, PX_SOCKOPT_KEEPALIVE, nullptr),
            PX_EINVAL);
  // Accepted connections inherit the listener's keepalive settings.
  px_tcp_connect c;
  ASSERT_EQ(Run(px_tcp_connect_init(
                &c, "127.0.0.1", static_cast<uint16_t>(px_tcp_listener_port(l)))),
            0);
  px_tcp_accept a;
  ASSERT_EQ(Run(px_tcp_accept_init(&a, l)), 0);
  px_stream *s = static_cast<px_stream *>(a.base.output.ptr);
  EXPECT_EQ(Get(s, PX_SOCKOPT_KEEPALIVE), 1);
  EXPECT_EQ(Get(s, PX_SOCKOPT_KEEPIDLE), 45);
  px_stream_close(s);
  px_stream_close(static_cast<px_stream *>(c.base.output.ptr));
  px_tcp_listener_close(l);

  // A Unix listener has no TCP options.
  unix_path path;
  ASSERT_EQ(unix_path_new(&path), 0);
  ASSERT_EQ(px_unix_bind(path.path, &l), 0);
  EXPECT_EQ(px_tcp_listener_set_option(l, PX_SOCKOPT_NODELAY, 1), PX_ENOTSUP);
  EXPECT_EQ(px_tcp_listener_set_option(l, PX_SOCKOPT_RCVBUF, 8192), 0);
  px_tcp_listener_close(l);
  unix_path_free(&path);
}

TEST_F(SockoptTest, BindWithReuseportSharesAPort) {
  px_sockopt_value reuse[] = {{PX_SOCKOPT_REUSEPORT, 1}};
  px_tcp_listener *a = nullptr, *b = nullptr;
  ASSERT_EQ(px_tcp_bind_with("127.0.0.1", 0, reuse, 1, &a), 0);
  uint16_t port = static_cast<uint16_t>(px_tcp_listener_port(a));
  int v = 0;
  ASSERT_EQ(px_tcp_listener_get_option(a, PX_SOCKOPT_REUSEPORT, &v), 0);
  EXPECT_EQ(v, 1);
  ASSERT_EQ(px_tcp_bind_with("127.0.0.1", port, reuse, 1, &b), 0)
      << "a second listener on the same port";
  px_tcp_listener *c = nullptr;
  EXPECT_EQ(px_tcp_bind("127.0.0.1", port, &c), PX_EADDRINUSE)
      << "without SO_REUSEPORT it is refused";
  EXPECT_EQ(c, nullptr);
  px_tcp_listener_close(a);
  px_tcp_listener_close(b);

  // Errors leave nothing open.
  int fds = open_fd_count();
  px_sockopt_value bad[] = {{PX_SOCKOPT_SNDBUF, 65536},
                            {PX_SOCKOPT_BROADCAST, 1}};
  EXPECT_EQ(px_tcp_bind_with("127.0.0.1", 0, bad, 2, &c), PX_ENOTSUP);
  px_sockopt_value out_of_range[] = {{PX_SOCKOPT_KEEPCNT, 1000}};
  EXPECT_EQ(px_tcp_bind_with("127.0.0.1", 0, out_of_range, 1, &c), PX_EINVAL);
  EXPECT_EQ(px_tcp_bind_with("127.0.0.1", 0, nullptr, 1, &c), PX_EINVAL);
  EXPECT_EQ(px_tcp_bind_with("localhost", 0, nullptr, 0, &c), PX_EINVAL);
  EXPECT_EQ(px_tcp_bind_with("127.0.0.1", 0, nullptr, 0, nullptr), PX_EINVAL);
  EXPECT_EQ(c, nullptr);
  EXPECT_EQ(open_fd_count(), fds);
  // REUSEADDR can be turned off.
  px_sockopt_value no_reuse[] = {{PX_SOCKOPT_REUSEADDR, 0}};
  ASSERT_EQ(px_tcp_bind_with("127.0.0.1", 0, no_reuse, 1, &c), 0);
  ASSERT_EQ(px_tcp_listener_get_option(c, PX_SOCKOPT_REUSEADDR, &v), 0);
  EXPECT_EQ(v, 0);
  px_tcp_listener_close(c);
}

TEST_F(SockoptTest, UdpOptions) {
  px_sockopt_value reuse[] = {{PX_SOCKOPT_REUSEPORT, 1},
                              {PX_SOCKOPT_RCVBUF, 65536}};
  px_udp_socket *a = nullptr, *b = nullptr;
  ASSERT_EQ(px_udp_bind_with("127.0.0.1", 0, reuse, 2, &a), 0);
  uint16_t port = static_cast<uint16_t>(px_udp_port(a));
  ASSERT_EQ(px_udp_bind_with("127.0.0.1", port, reuse, 2, &b), 0);
  int v = 0;
  ASSERT_EQ(px_udp_get_option(a, PX_SOCKOPT_RCVBUF, &v), 0);
  EXPECT_GE(v, 65536);
  ASSERT_EQ(px_udp_set_option(a, PX_SOCKOPT_BROADCAST, 1), 0);
  ASSERT_EQ(px_udp_get_option(a, PX_SOCKOPT_BROADCAST, &v), 0);
  EXPECT_EQ(v, 1);
  ASSERT_EQ(px_udp_set_option(a, PX_SOCKOPT_SNDBUF, 16384), 0);
  EXPECT_EQ(px_udp_set_option(a, PX_SOCKOPT_NODELAY, 1), PX_ENOTSUP);
  EXPECT_EQ(px_udp_set_option(a, PX_SOCKOPT_KEEPALIVE, 1), PX_ENOTSUP);
  EXPECT_EQ(px_udp_set_option(a, PX_SOCKOPT_LINGER, 1), PX_ENOTSUP);
  EXPECT_EQ(px_udp_get_option(a, PX_SOCKOPT_NODELAY, &v), PX_ENOTSUP);
  EXPECT_EQ(px_udp_set_option(a, PX_SOCKOPT_BROADCAST, 5), PX_EINVAL);
  EXPECT_EQ(px_udp_set_option(nullptr, PX_SOCKOPT_BROADCAST, 1), PX_EINVAL);
  EXPECT_EQ(px_udp_get_option(nullptr, PX_SOCKOPT_BROADCAST, &v), PX_EINVAL);
  EXPECT_EQ(px_udp_get_option(a, PX_SOCKOPT_BROADCAST, nullptr), PX_EINVAL);
  px_udp_socket *c = nullptr;
  px_sockopt_value tcp_only[] = {{PX_SOCKOPT_NODELAY, 1}};
  EXPECT_EQ(px_udp_bind_with("127.0.0.1", 0, tcp_only, 1, &c), PX_ENOTSUP);
  EXPECT_EQ(px_udp_bind_with("127.0.0.1", 0, nullptr, 0, nullptr), PX_EINVAL);
  EXPECT_EQ(c, nullptr);
  px_udp_close(a);
  px_udp_close(b);
}

}  // namespace
