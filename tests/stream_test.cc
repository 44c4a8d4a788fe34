// The stream interface (pollux/stream.h): the same futures over TCP, Unix
// sockets and pipes, and over a stream implemented here, outside the
// library, from px_stream_ops alone. Cancel safety, end of stream,
// zero-length operations and every error path. Loopback only.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "pollux.h"
#include "tests/stream_pair.h"
#include "tests/support.h"

namespace {

using StreamTest = RuntimeTest;

TEST_F(StreamTest, UserStreamWorksWithTheLibraryFutures) {
  MemStream m;
  m.base.ops = &kMemOps;
  px_stream *s = &m.base;
  px_stream_io w, r;
  char buf[32] = {};
  // write_all loops over 3-byte writes.
  ASSERT_EQ(Run(px_stream_write_all_init(&w, s, "hello world", 11)), 0);
  EXPECT_EQ(w.base.output.u64, 11u);
  EXPECT_EQ(m.data, "hello world");
  ASSERT_EQ(Run(px_stream_read_init(&r, s, buf, 5)), 0);
  EXPECT_EQ(r.base.output.u64, 5u);
  EXPECT_EQ(std::string(buf, 5), "hello");
  ASSERT_EQ(Run(px_stream_write_init(&w, s, "abcdef", 6)), 0);
  EXPECT_EQ(w.base.output.u64, 3u) << "one poll_write, as many as it took";
  ASSERT_EQ(Run(px_stream_flush_init(&w, s)), 0);
  EXPECT_EQ(m.flushes, 1);
  ASSERT_EQ(Run(px_stream_shutdown_init(&w, s)), 0);
  ASSERT_EQ(Run(px_stream_read_init(&r, s, buf, sizeof buf)), 0);
  EXPECT_EQ(std::string(buf, r.base.output.u64), " worldabc");
  ASSERT_EQ(Run(px_stream_read_init(&r, s, buf, sizeof buf)), 0);
  EXPECT_EQ(r.base.output.u64, 0u) << "end of stream";
  EXPECT_EQ(px_stream_fd(s), -1);
  px_stream_close(s);
  EXPECT_EQ(m.closes, 1);
}

TEST_F(StreamTest, ReadWaitsForAWriteFromAnotherFuture) {
  MemStream m;
  m.base.ops = &kMemOps;
  px_stream_io r, w;
  char buf[8] = {};
  px_future *both[] = {px_stream_read_init(&r, &m.base, buf, sizeof buf),
                       px_stream_write_init(&w, &m.base, "hi", 2)};
  px_join j;
  ASSERT_EQ(Run(px_join_init(&j, both, 2, nullptr)), 0);
  EXPECT_EQ(r.base.error, 0);
  EXPECT_EQ(std::string(buf, r.base.output.u64), "hi");
  EXPECT_EQ(m.cancels, 0) << "a completed read cancels nothing";
  px_stream_close(&m.base);
}

TEST_F(StreamTest, DroppedPendingReadCancelsItsWaker) {
  MemStream m;
  m.base.ops = &kMemOps;
  px_stream_io r;
  char buf[8];
  EXPECT_EQ(RunFor(px_stream_read_init(&r, &m.base, buf, sizeof buf), 10),
            PX_ETIMEDOUT);
  EXPECT_EQ(m.cancels, 1);
  EXPECT_TRUE(px_waker_is_empty(&m.reader)) << "no waker left behind";
  px_stream_close(&m.base);
}

TEST_F(StreamTest, OptionalOpsHaveDefaults) {
  MemStream m;
  m.base.ops = &kBareOps;
  px_stream_io f;
  EXPECT_EQ(Run(px_stream_flush_init(&f, &m.base)), 0);
  EXPECT_EQ(Run(px_stream_shutdown_init(&f, &m.base)), PX_ENOTSUP);
  px_stream_cancel(&m.base, PX_STREAM_READ);  // no cancel: nothing to do
  EXPECT_EQ(m.cancels, 0);
  px_stream_close(&m.base);
  EXPECT_EQ(m.closes, 1);
}

TEST_F(StreamTest, ImplementationErrorsAreReported) {
  MemStream m;
  m.base.ops = &kMemOps;
  px_stream_io f;
  char buf[4];
  m.fail_read = PX_ECONNRESET;
  EXPECT_EQ(Run(px_stream_read_init(&f, &m.base, buf, sizeof buf)),
            PX_ECONNRESET);
  m.fail_read = 0;
  m.claim_too_much = true;
  EXPECT_EQ(Run(px_stream_read_init(&f, &m.base, buf, sizeof buf)), PX_EIO);
  m.claim_too_much = false;
  m.write_zero = true;
  EXPECT_EQ(Run(px_stream_write_all_init(&f, &m.base, "abc", 3)), PX_EIO);
  EXPECT_EQ(f.base.output.u64, 0u);
  px_stream_close(&m.base);
}

TEST_F(StreamTest, BadArgumentsAreEinval) {
  px_stream_io f;
  char buf[4];
  EXPECT_EQ(px_stream_read_init(nullptr, nullptr, buf, 1), nullptr);
  EXPECT_EQ(px_stream_write_init(nullptr, nullptr, buf, 1), nullptr);
  EXPECT_EQ(px_stream_write_all_init(nullptr, nullptr, buf, 1), nullptr);
  EXPECT_EQ(px_stream_flush_init(nullptr, nullptr), nullptr);
  EXPECT_EQ(px_stream_shutdown_init(nullptr, nullptr), nullptr);
  EXPECT_EQ(Run(px_stream_read_init(&f, nullptr, buf, 1)), PX_EINVAL);
  EXPECT_EQ(Run(px_stream_write_init(&f, nullptr, buf, 1)), PX_EINVAL);
  EXPECT_EQ(Run(px_stream_write_all_init(&f, nullptr, buf, 1)), PX_EINVAL);
  EXPECT_EQ(Run(px_stream_flush_init(&f, nullptr)), PX_EINVAL);
  EXPECT_EQ(Run(px_stream_shutdown_init(&f, nullptr)), PX_EINVAL);

  MemStream m;
  m.base.ops = &kMemOps;
  EXPECT_EQ(Run(px_stream_read_init(&f, &m.base, nullptr, 1)), PX_EINVAL);
  EXPECT_EQ(Run(px_stream_write_init(&f, &m.base, nullptr, 1)), PX_EINVAL);
  EXPECT_EQ(Run(px_stream_write_all_init(&f, &m.base, nullptr, 1)), PX_EINVAL);
  // An ops table without its required functions is refused, not called.
  px_stream_ops broken = kMemOps;
  broken.poll_read = nullptr;
  MemStream b;
  b.base.ops = &broken;
  EXPECT_EQ(Run(px_stream_read_init(&f, &b.base, buf, 1)), PX_EINVAL);
  px_stream_ops no_write = kMemOps;
  no_write.poll_write = nullptr;
  MemStream w;
  w.base.ops = &no_write;
  EXPECT_EQ(Run(px_stream_write_init(&f, &w.base, buf, 1)), PX_EINVAL);
  EXPECT_EQ(Run(px_stream_write_all_init(&f, &w.base, buf, 1)), PX_EINVAL);
  px_stream none{nullptr};
  EXPECT_EQ(Run(px_stream_write_init(&f, &none, buf, 1)), PX_EINVAL);

  // The poll helpers check the same, and their out-parameter.
  px_context cx = {nullptr, nullptr};
  size_t n = 7;
  EXPECT_EQ(px_stream_poll_read(&m.base, &cx, buf, 1, nullptr), PX_EINVAL);
  EXPECT_EQ(px_stream_poll_write(&m.base, &cx, buf, 1, nullptr), PX_EINVAL);
  EXPECT_EQ(px_stream_poll_read(nullptr, &cx, buf, 1, &n), PX_EINVAL);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(px_stream_poll_read(&m.base, nullptr, buf, 1, &n), PX_EINVAL);
  EXPECT_EQ(px_stream_poll_flush(nullptr, &cx), PX_EINVAL);
  EXPECT_EQ(px_stream_poll_shutdown(nullptr, &cx), PX_EINVAL);
  px_stream_cancel(nullptr, PX_STREAM_READ);  // ignored
  px_stream_close(nullptr);                   // ignored
  px_stream_close(&none);                     // no close function: ignored

  // TCP-only functions on a stream that is not a socket.
  px_addr a;
  EXPECT_EQ(px_tcp_local_addr(&m.base, &a), PX_ENOTSUP);
  EXPECT_EQ(px_tcp_peer_addr(&m.base, &a), PX_ENOTSUP);
  EXPECT_EQ(px_tcp_shutdown(&m.base), PX_ENOTSUP);
  EXPECT_EQ(px_tcp_shutdown(nullptr), PX_EINVAL);
  EXPECT_EQ(px_tcp_stream_fd(&m.base), -1);
  EXPECT_EQ(px_stream_fd(nullptr), -1);
  px_stream_close(&m.base);
}

TEST_F(StreamTest, ZeroLengthCompletesAtOnceWithoutRuntime) {
  MemStream m;
  m.base.ops = &kMemOps;
  px_context cx = {nullptr, nullptr};
  px_stream_io f;
  char buf[1];
  ASSERT_EQ(px_future_poll(px_stream_read_init(&f, &m.base, buf, 0), &cx),
            PX_READY);
  EXPECT_EQ(f.base.error, 0);
  EXPECT_EQ(f.base.output.u64, 0u);
  ASSERT_EQ(px_future_poll(px_stream_write_all_init(&f, &m.base, nullptr, 0),
                           &cx),
            PX_READY);
  EXPECT_EQ(f.base.error, 0);
  px_stream_close(&m.base);
}

// ---- The descriptor streams: TCP, Unix, pipes -----------------------------

class FdStreamTest : public StreamTest,
                     public ::testing::WithParamInterface<StreamKind> {
 protected:
  void SetUp() override {
    StreamTest::SetUp();
    ASSERT_EQ(MakeStreamPair(rt_, GetParam(), &r_, &w_), 0);
  }
  void TearDown() override {
    px_stream_close(r_);
    px_stream_close(w_);
    StreamTest::TearDown();
  }
  // Ends the writer's side: shutdown for sockets, close for a pipe.
  void EndWrites() {
    if (GetParam() == StreamKind::kPipe) {
      EXPECT_EQ(px_tcp_shutdown(w_), PX_ENOTSUP);
      px_stream_io f;
      EXPECT_EQ(Run(px_stream_shutdown_init(&f, w_)), PX_ENOTSUP);
      px_stream_close(w_);
      w_ = nullptr;
    } else {
      px_stream_io f;
      ASSERT_EQ(Run(px_stream_shutdown_init(&f, w_)), 0);
    }
  }
  px_stream *r_ = nullptr;
  px_stream *w_ = nullptr;
};

TEST_P(FdStreamTest, WriteAllReadAndEndOfStream) {
  std::string big(200000, 'x');  // more than a socket or pipe buffer holds
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>(i % 251);
  px_stream_io w, r;
  std::string got;
  std::string chunk(4096, '\0');
  px_future *wf = px_stream_write_all_init(&w, w_, big.data(), big.size());
  // Read concurrently: the writer fills the buffer and must wait for us.
  struct Reader {
    px_future base;
    px_stream_io io;
    px_stream *s;
    std::string *got;
    std::string *chunk;
    size_t want;
    bool started;
  } rd{};
  static const px_future_vtable kReaderVt = {
      sizeof(Reader), "reader",
      [](px_future *self, px_context *cx) -> px_poll {
        Reader *x = reinterpret_cast<Reader *>(self);
        for (;;) {
          if (!x->started) {
            px_stream_read_init(&x->io, x->s, &(*x->chunk)[0], x->chunk->size());
            x->started = true;
          }
          int p = px_future_poll(&x->io.base, cx);
          if (p == PX_PENDING) return PX_PENDING;
          x->started = false;
          if (x->io.base.error < 0 || x->io.base.output.u64 == 0) {
            self->error = x->io.base.error;
            return PX_READY;
          }
          x->got->append(x->chunk->data(), x->io.base.output.u64);
          if (x->got->size() >= x->want) return PX_READY;
        }
      },
      [](px_future *self) {
        px_future_drop(&reinterpret_cast<Reader *>(self)->io.base);
      }};
  px_future_init(&rd.base, &kReaderVt);
  rd.s = r_;
  rd.got = &got;
  rd.chunk = &chunk;
  rd.want = big.size();
  px_future *both[] = {wf, &rd.base};
  px_join j;
  ASSERT_EQ(Run(px_join_init(&j, both, 2, nullptr)), 0);
  EXPECT_EQ(w.base.error, 0);
  EXPECT_EQ(w.base.output.u64, big.size());
  EXPECT_EQ(rd.base.error, 0);
  EXPECT_TRUE(got == big) << "bytes arrive whole and in order";
  (void)r;

  EndWrites();
  char buf[8];
  ASSERT_EQ(Run(px_stream_read_init(&r, r_, buf, sizeof buf)), 0);
  EXPECT_EQ(r.base.output.u64, 0u) << "end of stream";
}

TEST_P(FdStreamTest, DroppedReadLosesNothing) {
  px_stream_io r, w;
  char buf[16];
  EXPECT_EQ(RunFor(px_stream_read_init(&r, r_, buf, sizeof buf), 10),
            PX_ETIMEDOUT);
  ASSERT_EQ(Run(px_stream_write_all_init(&w, w_, "later", 5)), 0);
  ASSERT_EQ(Run(px_stream_read_init(&r, r_, buf, sizeof buf)), 0);
  EXPECT_EQ(std::string(buf, r.base.output.u64), "later");
  // The old names are the same futures.
  ASSERT_EQ(Run(px_tcp_write_all_init(&w, w_, "again", 5)), 0);
  ASSERT_EQ(Run(px_tcp_read_init(&r, r_, buf, sizeof buf)), 0);
  EXPECT_EQ(std::string(buf, r.base.output.u64), "again");
  EXPECT_GE(px_stream_fd(r_), 0);
  EXPECT_EQ(px_stream_fd(r_), px_tcp_stream_fd(r_));
}

TEST_P(FdStreamTest, FlushIsImmediateAndZeroLengthNeedsNoRuntime) {
  px_stream_io f;
  ASSERT_EQ(Run(px_stream_flush_init(&f, w_)), 0);
  px_context cx = {nullptr, nullptr};
  char buf[1];
  ASSERT_EQ(px_future_poll(px_stream_read_init(&f, r_, buf, 0), &cx),
            PX_READY);
  EXPECT_EQ(f.base.error, 0);
  // A real read outside a runtime has no reactor to wait on.
  ASSERT_EQ(px_future_poll(px_stream_read_init(&f, r_, buf, 1), &cx),
            PX_READY);
  EXPECT_EQ(f.base.error, PX_ENORUNTIME);
}

TEST_P(FdStreamTest, WriteToAClosedPeerIsEpipeOrReset) {
  px_stream_close(r_);
  r_ = nullptr;
  px_stream_io w;
  std::string big(1 << 20, 'y');
  int err = Run(px_stream_write_all_init(&w, w_, big.data(), big.size()));
  EXPECT_TRUE(err == PX_EPIPE || err == PX_ECONNRESET) << px_err_name(err);
}

INSTANTIATE_TEST_SUITE_P(Kinds, FdStreamTest,
                         ::testing::Values(StreamKind::kTcp, StreamKind::kUnix,
                                           StreamKind::kPipe),
                         StreamKindName);

}  // namespace
