// Buffered I/O (pollux/bufio.h): read_line, read_until, read_exact, plain
// reads from the buffer, length-prefixed frames and the buffered writer,
// over an in-memory stream that delivers a byte at a time and over TCP,
// Unix sockets and pipes. End of stream mid-record, oversized input,
// zero-length records, cancellation, every error path.

#include <gtest/gtest.h>

#include <string>

#include "pollux.h"
#include "tests/stream_pair.h"
#include "tests/support.h"

namespace {

class BufTest : public RuntimeTest {
 protected:
  void SetUp() override {
    RuntimeTest::SetUp();
    mem_.base.ops = &kMemOps;
  }
  // A reader over the in-memory stream holding `data`, then end of stream.
  px_buf_reader *MemReader(const std::string &data, size_t cap,
                           size_t max_read = 1) {
    mem_.data = data;
    mem_.eof = true;
    mem_.max_read = max_read;
    px_buf_reader *r = nullptr;
    EXPECT_EQ(px_buf_reader_new(&mem_.base, cap, &r), 0);
    return r;
  }
  // read_line: "" + error name on failure.
  std::string Line(px_buf_reader *r, size_t cap = 64) {
    std::string buf(cap, '\0');
    px_buf_io f;
    int err = Run(px_buf_read_line_init(&f, r, &buf[0], cap));
    if (err < 0) return std::string("error ") + px_err_name(err);
    EXPECT_EQ(buf[f.base.output.u64], '\0') << "NUL-terminated";
    return buf.substr(0, f.base.output.u64);
  }
  std::string Frame(px_buf_reader *r, size_t cap = 64, size_t max = 64) {
    std::string buf(cap, '\0');
    px_buf_io f;
    int err = Run(px_frame_read_init(&f, r, &buf[0], cap, max));
    if (err < 0) return std::string("error ") + px_err_name(err);
    return buf.substr(0, f.base.output.u64);
  }
  static std::string Framed(const std::string &payload) {
    uint32_t n = static_cast<uint32_t>(payload.size());
    std::string h = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
    return h + payload;
  }
  MemStream mem_;
};

TEST_F(BufTest, LinesArriveWholeWhateverTheChunking) {
  // One byte per inner read, and a buffer smaller than the input.
  px_buf_reader *r = MemReader("first\nsecond\r\n\nno newline", 16);
  EXPECT_EQ(Line(r), "first\n");
  EXPECT_EQ(Line(r), "second\r\n") << "bytes are not interpreted";
  EXPECT_EQ(Line(r), "\n");
  EXPECT_EQ(Line(r), "no newline") << "end of stream ends the last line";
  EXPECT_EQ(Line(r), "") << "then 0: end of stream";
  px_buf_reader_close(r);
  EXPECT_EQ(mem_.closes, 1) << "the reader owns and closes its inner stream";
}

TEST_F(BufTest, OversizedLineIsRefusedNotGrown) {
  // Longer than the caller's buffer: PX_EMSGSIZE, nothing consumed.
  px_buf_reader *r = MemReader("0123456789\nok\n", 64, 64);
  EXPECT_EQ(Line(r, 8), "error EMSGSIZE");
  EXPECT_EQ(px_buf_reader_buffered(r), 14u);
  // Exactly cap - 1 fits, with its NUL.
  EXPECT_EQ(Line(r, 12), "0123456789\n");
  EXPECT_EQ(Line(r, 4), "ok\n");
  px_buf_reader_close(r);

  // Longer than the reader's capacity, whatever the caller's buffer: a
  // hostile peer cannot make the reader grow.
  r = MemReader(std::string(100, 'x') + "\n", 16, 100);
  EXPECT_EQ(Line(r, 1000), "error EMSGSIZE");
  EXPECT_EQ(px_buf_reader_buffered(r), 16u);
  // The caller may skip what it refused and go on.
  size_t len = 0;
  const void *p = px_buf_reader_peek(r, &len);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(len, 16u);
  EXPECT_EQ(memcmp(p, std::string(16, 'x').data(), 16), 0);
  EXPECT_EQ(px_buf_reader_consume(r, 16), 0);
  EXPECT_EQ(px_buf_reader_consume(r, 1), PX_EINVAL);
  px_buf_reader_close(r);
}

TEST_F(BufTest, ReadUntilAnyByte) {
  px_buf_reader *r = MemReader(std::string("a\0b\0\0tail", 9), 8, 3);
  char out[8];
  px_buf_io f;
  ASSERT_EQ(Run(px_buf_read_until_init(&f, r, 0, out, sizeof out)), 0);
  EXPECT_EQ(std::string(out, f.base.output.u64), std::string("a\0", 2));
  ASSERT_EQ(Run(px_buf_read_until_init(&f, r, 0, out, sizeof out)), 0);
  EXPECT_EQ(std::string(out, f.base.output.u64), std::string("b\0", 2));
  ASSERT_EQ(Run(px_buf_read_until_init(&f, r, 0, out, sizeof out)), 0);
  EXPECT_EQ(f.base.output.u64, 1u) << "an empty record is its delimiter";
  ASSERT_EQ(Run(px_buf_read_until_init(&f, r, 0, out, sizeof out)), 0);
  EXPECT_EQ(std::string(out, f.base.output.u64), "tail");
  ASSERT_EQ(Run(px_buf_read_until_init(&f, r, 0, out, sizeof out)), 0);
  EXPECT_EQ(f.base.output.u64, 0u);
  EXPECT_EQ(Run(px_buf_read_until_init(&f, r, 256, out, sizeof out)),
            PX_EINVAL);
  EXPECT_EQ(Run(px_buf_read_until_init(&f, r, -1, out, sizeof out)),
            PX_EINVAL);
  px_buf_reader_close(r);
}

TEST_F(BufTest, ReadExactSmallLargeAndShort) {
  std::string data;
  for (int i = 0; i < 300; i++) data += static_cast<char>(i);
  px_buf_reader *r = MemReader(data, 32, 7);
  std::string out(300, '\0');
  px_buf_io f;
  ASSERT_EQ(Run(px_buf_read_exact_init(&f, r, &out[0], 10)), 0);
  EXPECT_EQ(f.base.output.u64, 10u);
  EXPECT_EQ(out.substr(0, 10), data.substr(0, 10));
  // Larger than the buffer: copied piecewise, reads straight into out.
  ASSERT_EQ(Run(px_buf_read_exact_init(&f, r, &out[0], 200)), 0);
  EXPECT_EQ(out.substr(0, 200), data.substr(10, 200));
  ASSERT_EQ(Run(px_buf_read_exact_init(&f, r, &out[0], 0)), 0);
  EXPECT_EQ(f.base.output.u64, 0u);
  // 90 left: asking for 91 ends in PX_EOF.
  EXPECT_EQ(Run(px_buf_read_exact_init(&f, r, &out[0], 91)), PX_EOF);
  px_buf_reader_close(r);
  // A short small read leaves what it had for the next reader operation.
  r = MemReader("abc", 32);
  EXPECT_EQ(Run(px_buf_read_exact_init(&f, r, &out[0], 4)), PX_EOF);
  EXPECT_EQ(px_buf_reader_buffered(r), 3u);
  px_buf_reader_close(r);
}

TEST_F(BufTest, PlainReadsAreServedFromTheBuffer) {
  px_buf_reader *r = MemReader("line\nrest of it", 64, 64);
  EXPECT_EQ(Line(r), "line\n");
  EXPECT_EQ(px_buf_reader_buffered(r), 10u);
  px_stream_io io;
  char buf[4];
  ASSERT_EQ(Run(px_stream_read_init(&io, px_buf_reader_stream(r), buf, 4)), 0);
  EXPECT_EQ(std::string(buf, io.base.output.u64), "rest");
  EXPECT_EQ(mem_.data, "") << "no inner read was needed";
  // A read of at least the capacity with an empty buffer skips it.
  px_buf_reader_close(r);
  r = MemReader("direct", 4, 64);
  char big[8];
  ASSERT_EQ(Run(px_stream_read_init(&io, px_buf_reader_stream(r), big, 8)), 0);
  EXPECT_EQ(std::string(big, io.base.output.u64), "direct");
  EXPECT_EQ(px_buf_reader_peek(r, nullptr), nullptr);
  ASSERT_EQ(Run(px_stream_read_init(&io, px_buf_reader_stream(r), big, 1)), 0);
  EXPECT_EQ(io.base.output.u64, 0u);
  EXPECT_EQ(px_buf_reader_inner(r), &mem_.base);
  px_stream_close(px_buf_reader_stream(r));
}

TEST_F(BufTest, FramesRoundTripIncludingEmptyAndLarge) {
  std::string big(100, 'B');
  std::string in = Framed("one") + Framed("") + Framed(big) + Framed("z");
  px_buf_reader *r = MemReader(in, 32, 5);
  EXPECT_EQ(Frame(r, 128, 128), "one");
  EXPECT_EQ(Frame(r, 128, 128), "");
  EXPECT_EQ(Frame(r, 128, 128), big) << "larger than the reader's buffer";
  EXPECT_EQ(Frame(r, 128, 128), "z");
  EXPECT_EQ(Frame(r, 128, 128), "error EOF") << "clean end between frames";
  px_buf_reader_close(r);
}

TEST_F(BufTest, HostileFramesFailCleanly) {
  // A header announcing 4 GiB - 1: refused before any payload is read.
  px_buf_reader *r =
      MemReader(std::string("\xff\xff\xff\xff", 4) + "x", 32, 64);
  EXPECT_EQ(Frame(r, 64, 1u << 20), "error EMSGSIZE");
  EXPECT_EQ(px_buf_reader_buffered(r), 5u) << "nothing consumed";
  px_buf_reader_close(r);
  // Within max but larger than the caller's buffer.
  r = MemReader(Framed("123456"), 32);
  EXPECT_EQ(Frame(r, 4, 100), "error EMSGSIZE");
  px_buf_reader_close(r);
  // Truncated in the header, and in the payload (small and large).
  r = MemReader(std::string("\0\0", 2), 32);
  EXPECT_EQ(Frame(r), "error EIO");
  px_buf_reader_close(r);
  r = MemReader(Framed("abcdef").substr(0, 7), 32);
  EXPECT_EQ(Frame(r), "error EIO");
  px_buf_reader_close(r);
  r = MemReader(Framed(std::string(50, 'q')).substr(0, 30), 8);
  EXPECT_EQ(Frame(r), "error EIO");
  px_buf_reader_close(r);
}

TEST_F(BufTest, WritingFrames) {
  MemStream out;
  out.base.ops = &kMemOps;
  out.write_chunk = 2;  // header and payload each take several writes
  px_frame_write f;
  ASSERT_EQ(Run(px_frame_write_init(&f, &out.base, "hello", 5, 16)), 0);
  EXPECT_EQ(f.base.output.u64, 5u);
  ASSERT_EQ(Run(px_frame_write_init(&f, &out.base, nullptr, 0, 16)), 0);
  EXPECT_EQ(out.data, Framed("hello") + Framed(""));
  EXPECT_EQ(Run(px_frame_write_init(&f, &out.base, "toolong", 7, 6)),
            PX_EMSGSIZE);
  EXPECT_EQ(out.data, Framed("hello") + Framed("")) << "nothing written";
  EXPECT_EQ(Run(px_frame_write_init(&f, nullptr, "x", 1, 6)), PX_EINVAL);
  EXPECT_EQ(Run(px_frame_write_init(&f, &out.base, nullptr, 1, 6)),
            PX_EINVAL);
  EXPECT_EQ(px_frame_write_init(nullptr, &out.base, "x", 1, 6), nullptr);
  // What was written reads back.
  px_buf_reader *r = MemReader(out.data, 32, 3);
  EXPECT_EQ(Frame(r), "hello");
  EXPECT_EQ(Frame(r), "");
  px_buf_reader_close(r);
}

TEST_F(BufTest, WriterGathersSmallWritesUntilFlush) {
  mem_.write_chunk = 1000;
  px_buf_writer *w = nullptr;
  ASSERT_EQ(px_buf_writer_new(&mem_.base, 16, &w), 0);
  px_stream *ws = px_buf_writer_stream(w);
  px_stream_io io;
  ASSERT_EQ(Run(px_stream_write_all_init(&io, ws, "abc", 3)), 0);
  ASSERT_EQ(Run(px_stream_write_all_init(&io, ws, "def", 3)), 0);
  EXPECT_EQ(mem_.writes, 0) << "buffered";
  EXPECT_EQ(px_buf_writer_buffered(w), 6u);
  ASSERT_EQ(Run(px_stream_flush_init(&io, ws)), 0);
  EXPECT_EQ(mem_.writes, 1) << "one write for both";
  EXPECT_EQ(mem_.flushes, 1) << "and the inner stream's flush";
  EXPECT_EQ(mem_.data, "abcdef");
  // Filling past the capacity sends the old bytes first.
  ASSERT_EQ(Run(px_stream_write_all_init(&io, ws, "0123456789", 10)), 0);
  ASSERT_EQ(Run(px_stream_write_all_init(&io, ws, "ABCDEFGHIJ", 10)), 0);
  EXPECT_EQ(mem_.data, "abcdef0123456789");
  // A write of the capacity or more goes straight through once empty.
  std::string big(40, 'w');
  ASSERT_EQ(Run(px_stream_write_all_init(&io, ws, big.data(), big.size())), 0);
  EXPECT_EQ(mem_.data, "abcdef0123456789ABCDEFGHIJ" + big);
  EXPECT_EQ(px_buf_writer_buffered(w), 0u);
  // Shutdown flushes first.
  ASSERT_EQ(Run(px_stream_write_all_init(&io, ws, "end", 3)), 0);
  ASSERT_EQ(Run(px_stream_shutdown_init(&io, ws)), 0);
  EXPECT_TRUE(mem_.eof);
  EXPECT_EQ(mem_.data.substr(mem_.data.size() - 3), "end");
  // Reads pass through to the inner stream.
  char buf[6];
  ASSERT_EQ(Run(px_stream_read_init(&io, ws, buf, sizeof buf)), 0);
  EXPECT_EQ(std::string(buf, io.base.output.u64), "abcdef");
  EXPECT_EQ(px_buf_writer_inner(w), &mem_.base);
  px_buf_writer_close(w);
  EXPECT_EQ(mem_.closes, 1);
}

TEST_F(BufTest, ReaderPassesWritesThrough) {
  mem_.write_chunk = 100;
  px_buf_reader *r = nullptr;
  ASSERT_EQ(px_buf_reader_new(&mem_.base, 0, &r), 0);
  px_stream_io io;
  ASSERT_EQ(Run(px_stream_write_all_init(&io, px_buf_reader_stream(r),
                                         "ping\n", 5)),
            0);
  ASSERT_EQ(Run(px_stream_flush_init(&io, px_buf_reader_stream(r))), 0);
  EXPECT_EQ(mem_.flushes, 1);
  EXPECT_EQ(Line(r), "ping\n");
  ASSERT_EQ(Run(px_stream_shutdown_init(&io, px_buf_reader_stream(r))), 0);
  EXPECT_EQ(Line(r), "");
  px_buf_reader_close(r);
}

TEST_F(BufTest, DroppedOperationsLoseNothing) {
  mem_.write_chunk = 100;
  px_buf_reader *r = nullptr;
  ASSERT_EQ(px_buf_reader_new(&mem_.base, 32, &r), 0);
  px_stream *s = px_buf_reader_stream(r);
  px_stream_io w;
  char line[32];
  px_buf_io f;
  // Half a line, then the read_line is cancelled by its time limit.
  ASSERT_EQ(Run(px_stream_write_all_init(&w, s, "hel", 3)), 0);
  EXPECT_EQ(RunFor(px_buf_read_line_init(&f, r, line, sizeof line), 5),
            PX_ETIMEDOUT);
  EXPECT_EQ(mem_.cancels, 1) << "its waker was taken back";
  ASSERT_EQ(Run(px_stream_write_all_init(&w, s, "lo\n", 3)), 0);
  EXPECT_EQ(Line(r), "hello\n");
  // The same for read_exact and a frame that fit the buffer.
  ASSERT_EQ(Run(px_stream_write_all_init(&w, s, "12", 2)), 0);
  EXPECT_EQ(RunFor(px_buf_read_exact_init(&f, r, line, 4), 5), PX_ETIMEDOUT);
  ASSERT_EQ(Run(px_stream_write_all_init(&w, s, "34", 2)), 0);
  ASSERT_EQ(Run(px_buf_read_exact_init(&f, r, line, 4)), 0);
  EXPECT_EQ(std::string(line, 4), "1234");
  std::string fr = Framed("payload");
  ASSERT_EQ(Run(px_stream_write_all_init(&w, s, fr.data(), 6)), 0);
  EXPECT_EQ(RunFor(px_frame_read_init(&f, r, line, sizeof line, 32), 5),
            PX_ETIMEDOUT);
  ASSERT_EQ(Run(px_stream_write_all_init(&w, s, fr.data() + 6, 5)), 0);
  EXPECT_EQ(Frame(r), "payload");
  EXPECT_EQ(mem_.cancels, 3);
  px_buf_reader_close(r);
}

TEST_F(BufTest, BadArguments) {
  px_buf_reader *r = nullptr;
  px_buf_writer *w = nullptr;
  EXPECT_EQ(px_buf_reader_new(nullptr, 0, &r), PX_EINVAL);
  EXPECT_EQ(px_buf_reader_new(&mem_.base, 0, nullptr), PX_EINVAL);
  EXPECT_EQ(px_buf_reader_new(&mem_.base, PX_BUF_MAX_CAPACITY + 1ul, &r),
            PX_EINVAL);
  EXPECT_EQ(r, nullptr);
  EXPECT_EQ(px_buf_writer_new(nullptr, 0, &w), PX_EINVAL);
  EXPECT_EQ(px_buf_writer_new(&mem_.base, 0, nullptr), PX_EINVAL);
  EXPECT_EQ(px_buf_writer_new(&mem_.base, PX_BUF_MAX_CAPACITY + 1ul, &w),
            PX_EINVAL);
  EXPECT_EQ(px_buf_reader_stream(nullptr), nullptr);
  EXPECT_EQ(px_buf_reader_inner(nullptr), nullptr);
  EXPECT_EQ(px_buf_writer_stream(nullptr), nullptr);
  EXPECT_EQ(px_buf_writer_inner(nullptr), nullptr);
  EXPECT_EQ(px_buf_reader_buffered(nullptr), 0u);
  EXPECT_EQ(px_buf_writer_buffered(nullptr), 0u);
  size_t len = 5;
  EXPECT_EQ(px_buf_reader_peek(nullptr, &len), nullptr);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(px_buf_reader_consume(nullptr, 0), PX_EINVAL);
  px_buf_reader_close(nullptr);
  px_buf_writer_close(nullptr);

  px_buf_io f;
  char buf[8];
  EXPECT_EQ(px_buf_read_line_init(nullptr, nullptr, buf, 8), nullptr);
  EXPECT_EQ(px_buf_read_until_init(nullptr, nullptr, 0, buf, 8), nullptr);
  EXPECT_EQ(px_buf_read_exact_init(nullptr, nullptr, buf, 8), nullptr);
  EXPECT_EQ(px_frame_read_init(nullptr, nullptr, buf, 8, 8), nullptr);
  EXPECT_EQ(Run(px_buf_read_line_init(&f, nullptr, buf, 8)), PX_EINVAL);
  EXPECT_EQ(Run(px_buf_read_until_init(&f, nullptr, 0, buf, 8)), PX_EINVAL);
  EXPECT_EQ(Run(px_buf_read_exact_init(&f, nullptr, buf, 8)), PX_EINVAL);
  EXPECT_EQ(Run(px_frame_read_init(&f, nullptr, buf, 8, 8)), PX_EINVAL);
  r = MemReader("x\n", 8);
  EXPECT_EQ(Run(px_buf_read_line_init(&f, r, buf, 0)), PX_EINVAL);
  EXPECT_EQ(Run(px_buf_read_line_init(&f, r, nullptr, 8)), PX_EINVAL);
  EXPECT_EQ(Run(px_buf_read_exact_init(&f, r, nullptr, 1)), PX_EINVAL);
  px_buf_reader_close(r);
}

TEST_F(BufTest, OutOfMemoryForTheBufferIsReported) {
  px_buf_reader *r = MemReader("x\n", 8);
  g_alloc.fail_at.store(1);  // the buffer, allocated at the first read
  EXPECT_EQ(Line(r), "error ENOMEM");
  EXPECT_EQ(Line(r), "x\n") << "and the next attempt works";
  px_buf_reader_close(r);
  g_alloc.fail_at.store(1);
  EXPECT_EQ(px_buf_reader_new(&mem_.base, 0, &r), PX_ENOMEM);
  px_buf_writer *w = nullptr;
  g_alloc.fail_at.store(1);
  EXPECT_EQ(px_buf_writer_new(&mem_.base, 0, &w), PX_ENOMEM);
  ASSERT_EQ(px_buf_writer_new(&mem_.base, 0, &w), 0);
  g_alloc.fail_at.store(1);
  px_stream_io io;
  EXPECT_EQ(Run(px_stream_write_init(&io, px_buf_writer_stream(w), "a", 1)),
            PX_ENOMEM);
  px_buf_writer_close(w);
}

// ---- Over real descriptors ------------------------------------------------

class BufFdTest : public BufTest,
                  public ::testing::WithParamInterface<StreamKind> {
 protected:
  void SetUp() override {
    BufTest::SetUp();
    ASSERT_EQ(MakeStreamPair(rt_, GetParam(), &r_, &w_), 0);
    ASSERT_EQ(px_buf_reader_new(r_, 64, &in_), 0);
    ASSERT_EQ(px_buf_writer_new(w_, 64, &out_), 0);
  }
  void TearDown() override {
    px_buf_reader_close(in_);
    px_buf_writer_close(out_);
    BufTest::TearDown();
  }
  void Send(const std::string &s) {
    px_stream_io io;
    ASSERT_EQ(Run(px_stream_write_all_init(&io, px_buf_writer_stream(out_),
                                           s.data(), s.size())),
              0);
    ASSERT_EQ(Run(px_stream_flush_init(&io, px_buf_writer_stream(out_))), 0);
  }
  void EndWrites() {
    px_buf_writer_close(out_);  // a pipe's only way; a socket's close too
    out_ = nullptr;
  }
  px_stream *r_ = nullptr;
  px_stream *w_ = nullptr;
  px_buf_reader *in_ = nullptr;
  px_buf_writer *out_ = nullptr;
};

TEST_P(BufFdTest, LinesExactAndFrames) {
  Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Line(in_), "GET / HTTP/1.1\r\n");
  EXPECT_EQ(Line(in_), "Host: x\r\n");
  EXPECT_EQ(Line(in_), "\r\n");
  std::string big(1000, 'F');  // frames larger than the 64-byte buffers
  px_frame_write fw;
  ASSERT_EQ(Run(px_frame_write_init(&fw, px_buf_writer_stream(out_),
                                    big.data(), big.size(), 4096)),
            0);
  ASSERT_EQ(Run(px_frame_write_init(&fw, px_buf_writer_stream(out_), "s", 1,
                                    4096)),
            0);
  Send("exact");
  EXPECT_EQ(Frame(in_, 2000, 4096), big);
  EXPECT_EQ(Frame(in_, 2000, 4096), "s");
  char five[5];
  px_buf_io f;
  ASSERT_EQ(Run(px_buf_read_exact_init(&f, in_, five, 5)), 0);
  EXPECT_EQ(std::string(five, 5), "exact");
  Send("partial line");
  EndWrites();
  EXPECT_EQ(Line(in_), "partial line");
  EXPECT_EQ(Line(in_), "");
}

TEST_P(BufFdTest, EndOfStreamInsideAFrame) {
  Send(Framed("complete") + Framed("cut short").substr(0, 8));
  EndWrites();
  EXPECT_EQ(Frame(in_), "complete");
  EXPECT_EQ(Frame(in_), "error EIO");
}

TEST_P(BufFdTest, CancelledReadLineResumes) {
  Send("abc");
  px_buf_io f;
  char line[16];
  EXPECT_EQ(RunFor(px_buf_read_line_init(&f, in_, line, sizeof line), 10),
            PX_ETIMEDOUT);
  Send("def\n");
  EXPECT_EQ(Line(in_), "abcdef\n");
}

INSTANTIATE_TEST_SUITE_P(Kinds, BufFdTest,
                         ::testing::Values(StreamKind::kTcp, StreamKind::kUnix,
                                           StreamKind::kPipe),
                         StreamKindName);

}  // namespace
