// Streams for the stream and buffered-I/O suites: an in-memory stream
// written against px_stream_ops alone (what any user can do), and
// connected pairs of descriptor streams (TCP, Unix socket, pipe). C++ only.
#ifndef POLLUX_TESTS_STREAM_PAIR_H
#define POLLUX_TESTS_STREAM_PAIR_H

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "pollux.h"
#include "tests/support.h"

// A fresh runtime per test, with the counting allocator checking that
// nothing leaks.
class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    counting_allocator_install();
    ASSERT_EQ(px_runtime_new(&rt_, nullptr), 0);
  }
  void TearDown() override {
    px_runtime_free(rt_);
    EXPECT_EQ(g_alloc.live_bytes.load(), 0) << "pollux leaked memory";
    counting_allocator_remove();
  }
  int Run(px_future *f) { return px_runtime_block_on(rt_, f); }
  int RunFor(px_future *f, int ms) {
    px_timeout t;
    return Run(px_timeout_init(&t, f, px_ms(static_cast<uint64_t>(ms))));
  }
  px_runtime *rt_ = nullptr;
};

// ---- A user-defined stream: an in-memory, one-way channel ---------------
//
// Bytes written are read back from the same stream. A read of an empty
// buffer waits (stores a waker) until a write or shutdown wakes it.
struct MemStream {
  px_stream base;  // first member, as stream.h requires
  std::string data;
  bool eof = false;
  px_waker reader{};
  int cancels = 0;
  int closes = 0;
  int flushes = 0;
  // Misbehaviours, to see the library's checks.
  bool claim_too_much = false;
  bool write_zero = false;
  int fail_read = 0;
  size_t max_read = static_cast<size_t>(-1);  // bytes per poll_read
  size_t write_chunk = 3;                     // bytes per poll_write
  int writes = 0;                             // poll_write calls
};

inline int MemPollRead(px_stream *s, px_context *cx, void *buf, size_t len,
                size_t *n) {
  MemStream *m = reinterpret_cast<MemStream *>(s);
  if (m->fail_read < 0) return m->fail_read;
  if (m->claim_too_much) {
    *n = len + 1;
    return PX_READY;
  }
  if (m->data.empty() && !m->eof) {
    px_waker_set(&m->reader, cx->waker);
    return PX_PENDING;
  }
  *n = std::min({len, m->data.size(), m->max_read});
  memcpy(buf, m->data.data(), *n);
  m->data.erase(0, *n);
  return PX_READY;
}

inline int MemPollWrite(px_stream *s, px_context *, const void *buf, size_t len,
                 size_t *n) {
  MemStream *m = reinterpret_cast<MemStream *>(s);
  if (m->write_zero) {
    *n = 0;
    return PX_READY;
  }
  // A few bytes a call (3 by default), so write_all has to loop.
  m->writes++;
  *n = std::min(len, m->write_chunk);
  m->data.append(static_cast<const char *>(buf), *n);
  px_waker_wake(&m->reader);
  return PX_READY;
}

inline int MemPollFlush(px_stream *s, px_context *) {
  reinterpret_cast<MemStream *>(s)->flushes++;
  return PX_READY;
}

inline int MemPollShutdown(px_stream *s, px_context *) {
  MemStream *m = reinterpret_cast<MemStream *>(s);
  m->eof = true;
  px_waker_wake(&m->reader);
  return PX_READY;
}

inline void MemCancel(px_stream *s, px_stream_dir dir) {
  MemStream *m = reinterpret_cast<MemStream *>(s);
  m->cancels++;
  if (dir == PX_STREAM_READ) px_waker_drop(&m->reader);
}

inline void MemClose(px_stream *s) {
  MemStream *m = reinterpret_cast<MemStream *>(s);
  m->closes++;
  px_waker_drop(&m->reader);
}

inline const px_stream_ops kMemOps = {"mem",        MemPollRead,     MemPollWrite,
                               MemPollFlush, MemPollShutdown, MemCancel,
                               MemClose};

// The same stream without the optional functions.
inline const px_stream_ops kBareOps = {"bare",  MemPollRead, MemPollWrite, nullptr,
                                nullptr, nullptr,     MemClose};

enum class StreamKind { kTcp, kUnix, kPipe };

inline std::string StreamKindName(
    const ::testing::TestParamInfo<StreamKind> &p) {
  switch (p.param) {
    case StreamKind::kTcp:
      return "Tcp";
    case StreamKind::kUnix:
      return "Unix";
    default:
      return "Pipe";
  }
}

// A connected pair: bytes written to *w are read from *r. Returns 0 or the
// first error.
inline int MakeStreamPair(px_runtime *rt, StreamKind kind, px_stream **r,
                          px_stream **w) {
  if (kind == StreamKind::kPipe) return px_pipe(r, w);
  px_tcp_listener *l = nullptr;
  px_tcp_connect c;
  unix_path path{};
  int err;
  if (kind == StreamKind::kTcp) {
    err = px_tcp_bind("127.0.0.1", 0, &l);
    if (err < 0) return err;
    px_tcp_connect_init(&c, "127.0.0.1",
                        static_cast<uint16_t>(px_tcp_listener_port(l)));
  } else {
    if (unix_path_new(&path) < 0) return PX_EIO;
    err = px_unix_bind(path.path, &l);
    if (err < 0) {
      unix_path_free(&path);
      return err;
    }
    px_unix_connect_init(&c, path.path);
  }
  err = px_runtime_block_on(rt, &c.base);
  px_tcp_accept a;
  if (err == 0) {
    *w = static_cast<px_stream *>(c.base.output.ptr);
    err = px_runtime_block_on(rt, px_tcp_accept_init(&a, l));
    if (err == 0) *r = static_cast<px_stream *>(a.base.output.ptr);
  }
  px_tcp_listener_close(l);
  if (kind == StreamKind::kUnix) unix_path_free(&path);
  return err;
}

#endif  // POLLUX_TESTS_STREAM_PAIR_H
