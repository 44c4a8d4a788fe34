// TLS streams (pollux/tls.h) end to end on loopback: pollux against pollux,
// against `openssl s_server` and `openssl s_client`, with a throwaway PKI
// made at test time by tests/tls_certs.sh (no key is ever committed).

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/internal/px_internal.h"  // PX__COOP_BUDGET
#include "pollux.h"
#include "tests/tls_support.h"

extern char **environ;

namespace {

std::string g_dir;  // the PKI

std::string Path(const char *name) { return g_dir + "/" + name; }

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char *tmp = getenv("TEST_TMPDIR");
    g_dir = std::string(tmp ? tmp : "/tmp") + "/tls_pki";
    std::string cmd = "tests/tls_certs.sh '" + g_dir + "'";
    ASSERT_EQ(system(cmd.c_str()), 0) << cmd;
    signal(SIGPIPE, SIG_IGN);
  }

  void SetUp() override {
    px_config cfg;
    px_config_init(&cfg);
    ASSERT_EQ(px_runtime_new(&rt_, &cfg), 0);
    ASSERT_EQ(px_tls_context_new(&server_ctx_, PX_TLS_SERVER), 0);
    ASSERT_EQ(px_tls_context_use_cert(server_ctx_, Path("server.pem").c_str(),
                                      Path("server.key").c_str()),
              0)
        << px_tls_context_error(server_ctx_);
    ASSERT_EQ(px_tls_context_new(&client_ctx_, PX_TLS_CLIENT), 0);
    ASSERT_EQ(px_tls_context_load_ca(client_ctx_, Path("ca.pem").c_str(),
                                     nullptr),
              0);
    ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &listener_), 0);
    port_ = static_cast<uint16_t>(px_tcp_listener_port(listener_));
  }

  void TearDown() override {
    px_tcp_listener_close(listener_);
    px_tls_context_free(server_ctx_);
    px_tls_context_free(client_ctx_);
    px_runtime_free(rt_);
  }

  // A pollux echo server and a pollux client (of `cctx`, or the fixture's
  // client context) that sends `total` bytes to it as `name`; `tweak` may
  // set their options before they run.
  void Pair(tls_report *sr, tls_report *cr, const char *name, uint64_t total,
            px_tls_context *cctx = nullptr,
            const std::function<void(tls_echo_server *, tls_client *)> &tweak =
                {}) {
    tls_echo_server srv;
    tls_client cli;
    tls_echo_server_new(&srv, listener_, server_ctx_, px_secs(10), sr);
    tls_client_new(&cli, port_, cctx ? cctx : client_ctx_, name, px_secs(10),
                   total, cr);
    if (tweak) tweak(&srv, &cli);
    RunPair(&srv, &cli);
    cancelled_ = cli.timeouts;
  }

  // Runs a pollux server and a pollux client against each other.
  void RunPair(tls_echo_server *srv, tls_client *cli) {
    px_future *both[2] = {PX_FUTURE(srv), PX_FUTURE(cli)};
    px_join join;
    ASSERT_EQ(px_runtime_block_on(rt_, px_join_init(&join, both, 2, nullptr)),
              0);
    tls_client_free(cli);
  }

  px_runtime *rt_ = nullptr;
  px_tls_context *server_ctx_ = nullptr;
  px_tls_context *client_ctx_ = nullptr;
  px_tcp_listener *listener_ = nullptr;
  uint16_t port_ = 0;
  uint64_t cancelled_ = 0;  // reads the last Pair's client cancelled
};

// ---- pollux against pollux ------------------------------------------------

TEST_F(Tls, LargeTransferBothWaysWithAlpnSniAndCloseNotify) {
  const char *server_protos[] = {"h2", "http/1.1"};
  const char *client_protos[] = {"http/1.1", "x-other"};
  ASSERT_EQ(px_tls_context_set_alpn(server_ctx_, server_protos, 2), 0);
  ASSERT_EQ(px_tls_context_set_alpn(client_ctx_, client_protos, 2), 0);
  tls_report sr{}, cr{};
  const uint64_t total = 3 * 1024 * 1024 + 12345;  // many records each way
  Pair(&sr, &cr, "localhost", total);
  EXPECT_EQ(cr.handshake_err, 0) << cr.err_text;
  EXPECT_EQ(sr.handshake_err, 0) << sr.err_text;
  EXPECT_STREQ(cr.alpn, "http/1.1");
  EXPECT_STREQ(sr.alpn, "http/1.1");
  EXPECT_STREQ(sr.sni, "localhost");
  EXPECT_STREQ(cr.sni, "localhost");
  EXPECT_STREQ(cr.version, "TLSv1.3");
  EXPECT_EQ(cr.io_err, 0) << cr.err_text;
  EXPECT_EQ(sr.io_err, 0) << sr.err_text;
  EXPECT_EQ(cr.wrote_bytes, total);
  EXPECT_EQ(sr.read_bytes, total);
  EXPECT_EQ(sr.wrote_bytes, total);
  EXPECT_EQ(cr.read_bytes, total);
  EXPECT_TRUE(cr.pattern_ok);
  EXPECT_TRUE(sr.clean_eof);  // the client's close_notify
  EXPECT_TRUE(cr.clean_eof);  // the server's
}

TEST_F(Tls, TlsInsideTls) {
  // A TLS stream is a px_stream, so it can carry another TLS session (a
  // tunnel through a TLS proxy): 1 MiB each way through both layers.
  tls_report sr{}, cr{};
  const uint64_t total = 1024 * 1024;
  Pair(&sr, &cr, "localhost", total, nullptr,
       [](tls_echo_server *srv, tls_client *cli) {
         srv->tunnel = 1;
         cli->tunnel = 1;
       });
  EXPECT_EQ(cr.handshake_err, 0) << cr.err_text;
  EXPECT_EQ(sr.handshake_err, 0) << sr.err_text;
  EXPECT_EQ(cr.io_err, 0) << cr.err_text;
  EXPECT_EQ(sr.io_err, 0) << sr.err_text;
  EXPECT_EQ(cr.read_bytes, total);
  EXPECT_TRUE(cr.pattern_ok);
  EXPECT_TRUE(cr.clean_eof);
  EXPECT_TRUE(sr.clean_eof);
}

TEST_F(Tls, IpAddressIsCheckedAgainstTheCertificate) {
  tls_report sr{}, cr{};
  Pair(&sr, &cr, "127.0.0.1", 1000);
  EXPECT_EQ(cr.handshake_err, 0) << cr.err_text;
  EXPECT_STREQ(sr.sni, "");  // no SNI for an address (RFC 6066)
  EXPECT_EQ(cr.read_bytes, 1000u);
  EXPECT_TRUE(cr.pattern_ok);
}

TEST_F(Tls, UntrustedCertificateFailsWithECert) {
  px_tls_context *other;
  ASSERT_EQ(px_tls_context_new(&other, PX_TLS_CLIENT), 0);
  ASSERT_EQ(px_tls_context_load_ca(other, Path("other-ca.pem").c_str(),
                                   nullptr),
            0);
  tls_report sr{}, cr{};
  Pair(&sr, &cr, "localhost", 10, other);
  px_tls_context_free(other);
  EXPECT_EQ(cr.handshake_err, PX_ECERT);
  EXPECT_NE(std::string(cr.err_text).find("certificate verify failed"),
            std::string::npos)
      << cr.err_text;
  EXPECT_NE(std::string(cr.err_text).find("local issuer"), std::string::npos)
      << cr.err_text;
  // The client's alert reaches the server.
  EXPECT_EQ(sr.handshake_err, PX_EPROTO);
  EXPECT_NE(std::string(sr.err_text).find("unknown ca"), std::string::npos)
      << sr.err_text;
}

TEST_F(Tls, WrongHostnameFailsWithECert) {
  for (const char *name : {"example.com", "127.0.0.2"}) {
    px_tcp_listener_close(listener_);
    ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &listener_), 0);
    port_ = static_cast<uint16_t>(px_tcp_listener_port(listener_));
    tls_report sr{}, cr{};
    Pair(&sr, &cr, name, 10);
    EXPECT_EQ(cr.handshake_err, PX_ECERT) << name;
    EXPECT_NE(std::string(cr.err_text).find("mismatch"), std::string::npos)
        << cr.err_text;
    EXPECT_NE(sr.handshake_err, 0);
  }
}

TEST_F(Tls, VerificationOffAcceptsAnyServer) {
  px_tls_context *lax;
  ASSERT_EQ(px_tls_context_new(&lax, PX_TLS_CLIENT), 0);
  ASSERT_EQ(px_tls_context_set_verify(lax, false), 0);
  tls_report sr{}, cr{};
  Pair(&sr, &cr, nullptr, 100, lax);
  px_tls_context_free(lax);
  EXPECT_EQ(cr.handshake_err, 0) << cr.err_text;
  EXPECT_EQ(cr.read_bytes, 100u);
}

TEST_F(Tls, MutualTlsRequiresAClientCertificate) {
  ASSERT_EQ(px_tls_context_set_verify(server_ctx_, true), 0);
  ASSERT_EQ(px_tls_context_load_ca(server_ctx_, Path("ca.pem").c_str(),
                                   nullptr),
            0);
  {  // without one: refused
    tls_report sr{}, cr{};
    Pair(&sr, &cr, "localhost", 10);
    EXPECT_NE(sr.handshake_err, 0);
    // TLS 1.3: the client learns it on its first read.
    EXPECT_TRUE(cr.handshake_err != 0 || cr.io_err != 0);
  }
  ASSERT_EQ(px_tls_context_use_cert(client_ctx_, Path("client.pem").c_str(),
                                    Path("client.key").c_str()),
            0);
  {  // with one: served
    tls_report sr{}, cr{};
    Pair(&sr, &cr, "localhost", 10);
    EXPECT_EQ(sr.handshake_err, 0) << sr.err_text;
    EXPECT_EQ(cr.read_bytes, 10u);
  }
}

TEST_F(Tls, AlpnWithoutACommonProtocolFails) {
  const char *server_protos[] = {"h2"};
  const char *client_protos[] = {"http/1.1"};
  ASSERT_EQ(px_tls_context_set_alpn(server_ctx_, server_protos, 1), 0);
  ASSERT_EQ(px_tls_context_set_alpn(client_ctx_, client_protos, 1), 0);
  tls_report sr{}, cr{};
  Pair(&sr, &cr, "localhost", 10);
  EXPECT_EQ(sr.handshake_err, PX_EPROTO);
  EXPECT_EQ(cr.handshake_err, PX_EPROTO);
  EXPECT_NE(std::string(cr.err_text).find("no application protocol"),
            std::string::npos)
      << cr.err_text;
}

TEST_F(Tls, ClientWithoutAlpnGetsNone) {
  const char *server_protos[] = {"h2"};
  ASSERT_EQ(px_tls_context_set_alpn(server_ctx_, server_protos, 1), 0);
  tls_report sr{}, cr{};
  Pair(&sr, &cr, "localhost", 10);
  EXPECT_EQ(cr.handshake_err, 0) << cr.err_text;
  EXPECT_STREQ(cr.alpn, "");
  EXPECT_STREQ(sr.alpn, "");
}

TEST_F(Tls, CancelledReadsLoseNothing) {
  // Every read is dropped when its first poll leaves it pending while
  // 2 MiB stream through, so reads are dropped at every stage (waiting for
  // a record, half a record in, decrypted bytes waiting): the bytes that do
  // arrive must be all of them, in order.
  tls_report sr{}, cr{};
  const uint64_t total = 2 * 1024 * 1024;
  Pair(&sr, &cr, "localhost", total, nullptr,
       [](tls_echo_server *, tls_client *cli) { cli->read_timeout = px_ms(1); });
  EXPECT_GT(cancelled_, 0u);  // reads were cancelled
  EXPECT_EQ(cr.io_err, 0) << cr.err_text;
  EXPECT_EQ(cr.read_bytes, total);
  EXPECT_TRUE(cr.pattern_ok);
  EXPECT_TRUE(cr.clean_eof);
}

// Reads served from plaintext OpenSSL already decrypted never reach the
// socket's own budgeted leaf: they must spend the cooperative budget all
// the same, so a loop of one-byte reads gives way every PX__COOP_BUDGET
// reads instead of running through the whole record in one poll.
TEST_F(Tls, ReadsFromBufferedPlaintextSpendTheBudget) {
  const int n = 4000;
  tls_report sr{};
  tls_echo_server srv;
  tls_echo_server_new(&srv, listener_, server_ctx_, px_secs(10), &sr);
  srv.stop_after = n;  // then close_notify
  tls_sipper cli;
  tls_sipper_new(&cli, port_, client_ctx_, n);
  px_join join;
  ASSERT_EQ(px_runtime_block_on(rt_, px_join2_init(&join, PX_FUTURE(&srv),
                                                   PX_FUTURE(&cli))),
            0);
  EXPECT_EQ(srv.px.base.error, 0) << sr.err_text;
  EXPECT_EQ(cli.px.base.error, 0);
  EXPECT_EQ(cli.got, n);
  // 4,000 reads, nearly all from memory: at least 4000/128 polls (without
  // the budget: one per record that had to be waited for, a handful).
  EXPECT_GE(cli.polls, n / PX__COOP_BUDGET);
}

TEST_F(Tls, PeerClosingWithoutCloseNotifyIsEof) {
  tls_report sr{}, cr{};
  Pair(&sr, &cr, "localhost", 10, nullptr,
       [](tls_echo_server *srv, tls_client *) { srv->raw_close = 1; });
  EXPECT_EQ(cr.handshake_err, 0) << cr.err_text;
  EXPECT_EQ(cr.io_err, PX_EOF) << cr.err_text;
  EXPECT_NE(std::string(cr.err_text).find("close_notify"), std::string::npos);
}

// ---- Bad arguments and misuse --------------------------------------------

TEST_F(Tls, ContextErrors) {
  px_tls_context *c = nullptr;
  EXPECT_EQ(px_tls_context_new(nullptr, PX_TLS_CLIENT), PX_EINVAL);
  EXPECT_EQ(px_tls_context_new(&c, static_cast<px_tls_role>(7)), PX_EINVAL);
  EXPECT_EQ(c, nullptr);
  ASSERT_EQ(px_tls_context_new(&c, PX_TLS_SERVER), 0);
  EXPECT_STREQ(px_tls_context_error(c), "");
  EXPECT_EQ(px_tls_context_use_cert(nullptr, "a", "b"), PX_EINVAL);
  EXPECT_EQ(px_tls_context_use_cert(c, nullptr, "b"), PX_EINVAL);
  EXPECT_EQ(px_tls_context_use_cert(c, "a", nullptr), PX_EINVAL);
  EXPECT_EQ(px_tls_context_use_cert(c, "/nonexistent.pem",
                                    Path("server.key").c_str()),
            PX_ENOENT);
  EXPECT_NE(std::string(px_tls_context_error(c)).find("/nonexistent.pem"),
            std::string::npos);
  // Not PEM at all.
  EXPECT_EQ(px_tls_context_use_cert(c, Path("server.ext").c_str(),
                                    Path("server.key").c_str()),
            PX_EPROTO);
  EXPECT_STRNE(px_tls_context_error(c), "");
  // A key that is not the certificate's.
  EXPECT_EQ(px_tls_context_use_cert(c, Path("server.pem").c_str(),
                                    Path("evil.key").c_str()),
            PX_EPROTO);
  EXPECT_NE(std::string(px_tls_context_error(c)).find("mismatch"),
            std::string::npos)
      << px_tls_context_error(c);
  EXPECT_EQ(px_tls_context_load_ca(nullptr, "a", nullptr), PX_EINVAL);
  EXPECT_EQ(px_tls_context_load_ca(c, nullptr, nullptr), PX_EINVAL);
  EXPECT_EQ(px_tls_context_load_ca(c, "/nonexistent.pem", nullptr), PX_ENOENT);
  EXPECT_EQ(px_tls_context_load_ca(c, Path("server.ext").c_str(), nullptr),
            PX_EPROTO);
  EXPECT_EQ(px_tls_context_set_verify(nullptr, true), PX_EINVAL);
  const char *empty[] = {""};
  const char *null_name[] = {nullptr};
  std::string long_name(256, 'x');
  const char *too_long[] = {long_name.c_str()};
  EXPECT_EQ(px_tls_context_set_alpn(nullptr, empty, 0), PX_EINVAL);
  EXPECT_EQ(px_tls_context_set_alpn(c, nullptr, 1), PX_EINVAL);
  EXPECT_EQ(px_tls_context_set_alpn(c, empty, 1), PX_EINVAL);
  EXPECT_EQ(px_tls_context_set_alpn(c, null_name, 1), PX_EINVAL);
  EXPECT_EQ(px_tls_context_set_alpn(c, too_long, 1), PX_EINVAL);
  EXPECT_EQ(px_tls_context_set_alpn(c, nullptr, 0), 0);  // clears
  px_tls_context_free(c);
  px_tls_context_free(nullptr);
  EXPECT_STREQ(px_tls_context_error(nullptr), "");
}

TEST_F(Tls, StreamErrors) {
  px_stream *r, *w;
  ASSERT_EQ(px_pipe(&r, &w), 0);
  px_stream *s = nullptr;
  EXPECT_EQ(px_tls_client_new(client_ctx_, r, "localhost", nullptr), PX_EINVAL);
  EXPECT_EQ(px_tls_client_new(nullptr, r, "localhost", &s), PX_EINVAL);
  EXPECT_EQ(px_tls_client_new(client_ctx_, nullptr, "localhost", &s),
            PX_EINVAL);
  EXPECT_EQ(px_tls_client_new(server_ctx_, r, "localhost", &s), PX_EINVAL);
  // Verifying needs a name to verify.
  EXPECT_EQ(px_tls_client_new(client_ctx_, r, nullptr, &s), PX_EINVAL);
  EXPECT_EQ(px_tls_client_new(client_ctx_, r, "", &s), PX_EINVAL);
  EXPECT_EQ(px_tls_server_new(nullptr, r, &s), PX_EINVAL);
  EXPECT_EQ(px_tls_server_new(server_ctx_, nullptr, &s), PX_EINVAL);
  EXPECT_EQ(px_tls_server_new(server_ctx_, r, nullptr), PX_EINVAL);
  EXPECT_EQ(px_tls_server_new(client_ctx_, r, &s), PX_EINVAL);
  px_tls_context *bare;
  ASSERT_EQ(px_tls_context_new(&bare, PX_TLS_SERVER), 0);
  EXPECT_EQ(px_tls_server_new(bare, r, &s), PX_EINVAL);  // no certificate
  px_tls_context_free(bare);
  EXPECT_EQ(s, nullptr);

  // Before the handshake: reads and writes are refused, and say why.
  ASSERT_EQ(px_tls_client_new(client_ctx_, r, "localhost", &s), 0);
  px_stream_io op;
  px_tls_handshake hs;
  char buf[8];
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_read_init(&op, s, buf, 8)),
            PX_ENOTCONN);
  EXPECT_NE(std::string(px_tls_last_error(s)).find("handshake"),
            std::string::npos);
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_write_init(&op, s, "x", 1)),
            PX_ENOTCONN);
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_shutdown_init(&op, s)),
            PX_ENOTCONN);
  // Zero lengths complete at once; NULL buffers with a length are refused.
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_read_init(&op, s, buf, 0)), 0);
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_read_init(&op, s, nullptr, 8)),
            PX_EINVAL);
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_write_all_init(&op, s, nullptr, 8)),
            PX_EINVAL);
  EXPECT_EQ(px_runtime_block_on(rt_, px_tls_handshake_init(&hs, nullptr)),
            PX_EINVAL);
  EXPECT_EQ(px_stream_flush_init(&op, s) != nullptr, true);
  EXPECT_EQ(px_runtime_block_on(rt_, &op.base), PX_ENOTCONN);
  EXPECT_EQ(px_tls_handshake_init(nullptr, s), nullptr);
  // A plain stream is not a TLS stream: refused and answered as such.
  EXPECT_EQ(px_runtime_block_on(rt_, px_tls_handshake_init(&hs, w)),
            PX_EINVAL);
  EXPECT_FALSE(px_tls_is_tls(w));
  EXPECT_FALSE(px_tls_is_tls(nullptr));
  EXPECT_TRUE(px_tls_is_tls(s));
  EXPECT_EQ(px_tls_alpn(w), nullptr);
  EXPECT_EQ(px_tls_server_name(w), nullptr);
  EXPECT_EQ(px_tls_version(w), nullptr);
  EXPECT_EQ(px_tls_inner(w), nullptr);
  EXPECT_STREQ(px_tls_last_error(w), "");
  EXPECT_EQ(px_tls_alpn(s), nullptr);
  EXPECT_EQ(px_tls_version(s), nullptr);
  EXPECT_STREQ(px_tls_server_name(s), "localhost");
  EXPECT_EQ(px_tls_inner(s), r);
  EXPECT_EQ(px_tls_alpn(nullptr), nullptr);
  EXPECT_EQ(px_tls_server_name(nullptr), nullptr);
  EXPECT_EQ(px_tls_version(nullptr), nullptr);
  EXPECT_EQ(px_tls_inner(nullptr), nullptr);
  EXPECT_STREQ(px_tls_last_error(nullptr), "");
  px_stream_close(s);  // closes r
  px_tcp_close(w);
}

TEST_F(Tls, WriteAfterShutdownIsEPipe) {
  // The echo server runs as a task; the client's steps are driven one by
  // one with block_on, which runs the task meanwhile.
  tls_report sr{};
  tls_echo_server srv;
  tls_echo_server_new(&srv, listener_, server_ctx_, px_secs(10), &sr);
  px_join_handle server_task;
  ASSERT_EQ(px_runtime_spawn(rt_, PX_FUTURE(&srv), &server_task), 0);
  px_tcp_connect conn;
  ASSERT_EQ(px_runtime_block_on(
                rt_, px_tcp_connect_init(&conn, "127.0.0.1", port_)),
            0);
  px_stream *s;
  ASSERT_EQ(px_tls_client_new(
                client_ctx_, static_cast<px_stream *>(conn.base.output.ptr),
                "localhost", &s),
            0);
  px_stream_io op;
  px_tls_handshake hs;
  EXPECT_EQ(px_runtime_block_on(rt_, px_tls_handshake_init(&hs, s)), 0);
  // A second handshake on an established stream completes at once.
  EXPECT_EQ(px_runtime_block_on(rt_, px_tls_handshake_init(&hs, s)), 0);
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_write_all_init(&op, s, "ping", 4)),
            0);
  EXPECT_EQ(op.base.output.u64, 4u);
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_shutdown_init(&op, s)), 0);
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_write_init(&op, s, "x", 1)),
            PX_EPIPE);
  // Reading still works: the echo, then the server's close_notify.
  char buf[16];
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_read_init(&op, s, buf, 16)), 0);
  EXPECT_EQ(std::string(buf, op.base.output.u64), "ping");
  EXPECT_EQ(px_runtime_block_on(rt_, px_stream_read_init(&op, s, buf, 16)), 0);
  EXPECT_EQ(op.base.output.u64, 0u);
  EXPECT_EQ(px_runtime_block_on(rt_, &server_task.base), 0);
  EXPECT_TRUE(sr.clean_eof);
  EXPECT_EQ(sr.wrote_bytes, 4u);
  px_stream_close(s);
}

// ---- Real peers: openssl s_server and s_client ---------------------------

// Starts argv[0] from $PATH with stdin and stdout redirected to files (NULL:
// inherited). Returns the pid, or -1.
pid_t Spawn(const std::vector<std::string> &args, const char *in,
            const char *out) {
  std::vector<char *> argv;
  for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (in) posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0);
  if (out)
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// Waits up to `secs` for pid to exit, then kills it. Returns its exit status
// (-1 if it had to be killed).
int Reap(pid_t pid, int secs) {
  for (int i = 0; i < secs * 100; i++) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

std::string Slurp(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST_F(Tls, ClientAgainstOpensslServer) {
  for (const char *version : {"-tls1_3", "-tls1_2"}) {
    // s_server picks no port for us: take a free one from the kernel.
    px_tcp_listener_close(listener_);
    listener_ = nullptr;
    px_tcp_listener *probe;
    ASSERT_EQ(px_tcp_bind("127.0.0.1", 0, &probe), 0);
    int port = px_tcp_listener_port(probe);
    px_tcp_listener_close(probe);
    std::string out = g_dir + "/s_server.out";
    pid_t pid = Spawn({"openssl", "s_server", "-accept",
                       "127.0.0.1:" + std::to_string(port), "-naccept", "1",
                       "-cert", Path("server.pem"), "-key", Path("server.key"),
                       "-alpn", "x-test,http/1.1", "-rev", version},
                      nullptr, out.c_str());
    ASSERT_GT(pid, 0);
    for (int i = 0; i < 500 && Slurp(out).find("ACCEPT") == std::string::npos;
         i++)
      usleep(10000);
    ASSERT_NE(Slurp(out).find("ACCEPT"), std::string::npos) << Slurp(out);

    const char *protos[] = {"http/1.1"};
    ASSERT_EQ(px_tls_context_set_alpn(client_ctx_, protos, 1), 0);
    px_tcp_connect conn;
    ASSERT_EQ(px_runtime_block_on(rt_, px_tcp_connect_init(
                                           &conn, "127.0.0.1",
                                           static_cast<uint16_t>(port))),
              0);
    px_stream *s;
    ASSERT_EQ(px_tls_client_new(
                  client_ctx_,
                  static_cast<px_stream *>(conn.base.output.ptr),
                  "localhost", &s),
              0);
    px_stream_io op;
  px_tls_handshake hs;
    EXPECT_EQ(px_runtime_block_on(rt_, px_tls_handshake_init(&hs, s)), 0)
        << px_tls_last_error(s);
    EXPECT_STREQ(px_tls_alpn(s), "http/1.1");
    EXPECT_STREQ(px_tls_version(s),
                 std::string(version) == "-tls1_3" ? "TLSv1.3" : "TLSv1.2");
    const char line[] = "hello pollux\n";
    EXPECT_EQ(px_runtime_block_on(
                  rt_, px_stream_write_all_init(&op, s, line, sizeof line - 1)),
              0);
    // The buffered reader (pollux/bufio.h) reads lines from TLS as from
    // any stream.
    px_buf_reader *in;
    ASSERT_EQ(px_buf_reader_new(s, 0, &in), 0);
    px_buf_io line_op;
    char got[256];
    EXPECT_EQ(px_runtime_block_on(
                  rt_, px_buf_read_line_init(&line_op, in, got, sizeof got)),
              0)
        << px_tls_last_error(s);
    EXPECT_STREQ(got, "xullop olleh\n");
    EXPECT_EQ(px_runtime_block_on(rt_, px_stream_shutdown_init(&op, s)), 0);
    px_buf_reader_close(in);  // closes s, which closes the TCP stream
    EXPECT_EQ(Reap(pid, 10), 0) << Slurp(out);
    EXPECT_NE(Slurp(out).find("ALPN protocols selected: http/1.1"),
              std::string::npos);
  }
}

TEST_F(Tls, ServerAgainstOpensslClientLargeTransfer) {
  // s_client sends 300 KB of lines, the pollux server echoes them, sends
  // close_notify after the last byte, and s_client prints what it got.
  std::string in = g_dir + "/s_client.in", out = g_dir + "/s_client.out";
  std::string text;
  for (int i = 0; text.size() < 300000; i++) {
    char line[80];
    snprintf(line, sizeof line, "%06d the quick brown fox jumps over pollux\n",
             i);
    text += line;
  }
  {
    std::ofstream f(in);
    f << text;
  }
  const char *protos[] = {"http/1.1"};
  ASSERT_EQ(px_tls_context_set_alpn(server_ctx_, protos, 1), 0);
  pid_t pid = Spawn({"openssl", "s_client", "-connect",
                     "127.0.0.1:" + std::to_string(port_), "-CAfile",
                     Path("ca.pem"), "-servername", "localhost",
                     "-verify_hostname", "localhost", "-verify_return_error",
                     "-alpn", "http/1.1", "-quiet"},
                    in.c_str(), out.c_str());
  ASSERT_GT(pid, 0);
  tls_report sr{};
  tls_echo_server srv;
  tls_echo_server_new(&srv, listener_, server_ctx_, px_secs(10), &sr);
  srv.stop_after = text.size();
  EXPECT_EQ(px_runtime_block_on(rt_, PX_FUTURE(&srv)), 0);
  EXPECT_EQ(Reap(pid, 10), 0);
  EXPECT_EQ(sr.handshake_err, 0) << sr.err_text;
  EXPECT_EQ(sr.io_err, 0) << sr.err_text;
  EXPECT_STREQ(sr.sni, "localhost");
  EXPECT_STREQ(sr.alpn, "http/1.1");
  EXPECT_EQ(sr.wrote_bytes, text.size());
  std::string got = Slurp(out);
  EXPECT_EQ(got.size(), text.size());
  EXPECT_TRUE(got == text);
}

TEST_F(Tls, OpensslClientRejectsAnUntrustedServer) {
  // The pollux server presents a certificate from the unrelated CA.
  px_tls_context *evil;
  ASSERT_EQ(px_tls_context_new(&evil, PX_TLS_SERVER), 0);
  ASSERT_EQ(px_tls_context_use_cert(evil, Path("evil.pem").c_str(),
                                    Path("evil.key").c_str()),
            0);
  std::string out = g_dir + "/s_client_evil.out";
  pid_t pid = Spawn({"openssl", "s_client", "-connect",
                     "127.0.0.1:" + std::to_string(port_), "-CAfile",
                     Path("ca.pem"), "-servername", "localhost",
                     "-verify_return_error", "-quiet"},
                    "/dev/null", out.c_str());
  ASSERT_GT(pid, 0);
  tls_report sr{};
  tls_echo_server srv;
  tls_echo_server_new(&srv, listener_, evil, px_secs(10), &sr);
  EXPECT_EQ(px_runtime_block_on(rt_, PX_FUTURE(&srv)), 0);
  EXPECT_NE(Reap(pid, 10), 0);
  EXPECT_EQ(sr.handshake_err, PX_EPROTO);
  EXPECT_NE(std::string(sr.err_text).find("unknown ca"), std::string::npos)
      << sr.err_text;
  px_tls_context_free(evil);
}

// ---- Misbehaving raw TCP peers ------------------------------------------------

int RawConnect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
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

TEST_F(Tls, PeerClosingMidHandshakeIsConnReset) {
  // Half a ClientHello record header, then the connection closes.
  std::thread peer([this] {
    int fd = RawConnect(port_);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "\x16\x03\x01\x02", 4), 4);
    close(fd);
  });
  tls_report sr{};
  tls_echo_server srv;
  tls_echo_server_new(&srv, listener_, server_ctx_, px_secs(10), &sr);
  EXPECT_EQ(px_runtime_block_on(rt_, PX_FUTURE(&srv)), 0);
  peer.join();
  EXPECT_EQ(sr.handshake_err, PX_ECONNRESET);
  EXPECT_NE(std::string(sr.err_text).find("during the handshake"),
            std::string::npos)
      << sr.err_text;
}

TEST_F(Tls, ServerClosingMidHandshakeIsConnResetForTheClient) {
  // A plain TCP server that reads the ClientHello and hangs up.
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  ASSERT_EQ(listen(lfd, 1), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &len), 0);
  std::thread peer([lfd] {
    int fd = accept(lfd, nullptr, nullptr);
    char buf[512];
    (void)!read(fd, buf, sizeof buf);
    close(fd);
  });
  tls_report cr{};
  tls_client cli;
  tls_client_new(&cli, ntohs(a.sin_port), client_ctx_, "localhost",
                 px_secs(10), 10, &cr);
  EXPECT_EQ(px_runtime_block_on(rt_, PX_FUTURE(&cli)), 0);
  tls_client_free(&cli);
  peer.join();
  close(lfd);
  EXPECT_EQ(cr.handshake_err, PX_ECONNRESET) << cr.err_text;
}

TEST_F(Tls, SlowlorisHandshakeTimesOut) {
  // A client that connects and sends one byte, then nothing: the server's
  // handshake under a 200 ms limit gives up with PX_ETIMEDOUT.
  int fd = RawConnect(port_);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "\x16", 1), 1);
  tls_report sr{};
  tls_echo_server srv;
  tls_echo_server_new(&srv, listener_, server_ctx_, px_ms(200), &sr);
  EXPECT_EQ(px_runtime_block_on(rt_, PX_FUTURE(&srv)), 0);
  EXPECT_EQ(sr.handshake_err, PX_ETIMEDOUT);
  close(fd);
}

}  // namespace
