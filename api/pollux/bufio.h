/**
 * @file
 * pollux/bufio.h - buffered reading and writing over any px_stream, and
 * length-prefixed frames (tokio's BufReader, AsyncBufReadExt, BufWriter
 * and tokio-util's LengthDelimitedCodec).
 *
 * A px_buf_reader reads from its inner stream in large chunks and serves
 * lines, delimited records, exact counts and frames from its buffer; a
 * px_buf_writer gathers small writes and sends them in one go when full or
 * flushed. Both are px_streams themselves, so they stack (a reader over a
 * writer over a TLS session over TCP) and everything in stream.h works on
 * them; each passes the other direction straight through, so one reader
 * over a TCP connection is enough to both read lines and write replies.
 * Each owns its inner stream: closing it closes the inner one. Buffers are
 * allocated on first use, so an idle connection costs no buffer.
 *
 *   px_buf_reader *in;
 *   PX_TRY(px_buf_reader_new(tcp, 0, &in));          // 8 KiB buffer
 *   PX_TRY_AWAIT(px_buf_read_line_init(&self->op, in, self->line,
 *                                      sizeof self->line));
 *   if (self->op.base.output.u64 == 0) ...           // end of stream
 *
 * Hostile input: nothing grows without bound. A line (or a delimited
 * record) longer than the caller's buffer or the reader's capacity fails
 * with PX_EMSGSIZE, and a frame whose header announces more than the
 * caller's maximum fails with PX_EMSGSIZE before any payload is read.
 *
 * Cancel safety (what a dropped operation, through px_timeout, px_select
 * or an aborted task, loses): read_line, read_until, a plain read and
 * read_exact / read_frame of at most the reader's capacity lose nothing:
 * they consume bytes from the buffer only when they complete, so the next
 * call sees the same input (tokio's read_line is not cancel-safe; these
 * are). A read_exact or read_frame larger than the capacity copies as it
 * goes: dropping it loses the bytes copied so far, and the stream is then
 * in the middle of a record (close it). Writes into a px_buf_writer are
 * accepted whole or not at all; a dropped flush leaves the unsent bytes
 * buffered for the next flush.
 */
#ifndef POLLUX_BUFIO_H
#define POLLUX_BUFIO_H

/** @addtogroup io
 * @{
 */

#include <stddef.h>
#include <stdint.h>

#include "pollux/future.h"
#include "pollux/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The buffer capacity px_buf_reader_new and px_buf_writer_new use for 0. */
#define PX_BUF_DEFAULT_CAPACITY 8192u

/** The largest buffer capacity accepted (1 GiB). */
#define PX_BUF_MAX_CAPACITY (1u << 30)

/** A buffered reader over a px_stream (opaque). */
typedef struct px_buf_reader px_buf_reader;

/** A buffered writer over a px_stream (opaque). */
typedef struct px_buf_writer px_buf_writer;

/**
 * A buffered reader over `inner` with a buffer of `capacity` bytes (0:
 * PX_BUF_DEFAULT_CAPACITY), allocated at the first read. The reader owns
 * inner from now on. Errors: PX_EINVAL (NULL inner or out, capacity over
 * PX_BUF_MAX_CAPACITY), PX_ENOMEM; on error inner is left to the caller.
 */
int px_buf_reader_new(px_stream *inner, size_t capacity, px_buf_reader **out);

/** The reader as a px_stream (for px_stream_read_init, px_stream_close). */
px_stream *px_buf_reader_stream(px_buf_reader *r);

/** The stream the reader reads from (still owned by the reader). */
px_stream *px_buf_reader_inner(px_buf_reader *r);

/** How many bytes are buffered and not yet consumed; 0 for NULL. */
size_t px_buf_reader_buffered(const px_buf_reader *r);

/**
 * The buffered bytes themselves (tokio's buffer()): returns a pointer to
 * them and stores their count in *len. They stay valid until the next
 * operation on the reader. NULL (and *len = 0) when nothing is buffered or
 * r or len is NULL.
 */
const void *px_buf_reader_peek(const px_buf_reader *r, size_t *len);

/**
 * Drops the first n buffered bytes (tokio's consume), say after
 * px_buf_reader_peek, or to skip an oversized line. Returns 0, or
 * PX_EINVAL for NULL or n larger than px_buf_reader_buffered.
 */
int px_buf_reader_consume(px_buf_reader *r, size_t n);

/** Closes the reader and its inner stream (px_stream_close). NULL is ignored. */
void px_buf_reader_close(px_buf_reader *r);

/**
 * One buffered-read operation: the future behind px_buf_read_line_init,
 * px_buf_read_until_init, px_buf_read_exact_init and px_frame_read_init.
 * output.u64 is the number of bytes stored. Fields are private.
 */
typedef struct px_buf_io {
  /** The future header; output.u64 is the byte count. */
  px_future base;
  px_buf_reader *reader; /**< private */
  unsigned char *out;    /**< private */
  size_t cap;            /**< private */
  size_t want;           /**< private: exact count, or frame length */
  size_t done;           /**< private: bytes copied or scanned */
  size_t max;            /**< private: largest frame */
  int op;                /**< private */
  int delim;             /**< private */
  int stage;             /**< private: a frame's header or payload */
  int waiting;           /**< private: the last poll returned PX_PENDING */
} px_buf_io;

/**
 * Reads one line, up to and including the newline byte (LF), into
 * line[0..cap) and NUL-terminates it: output.u64 = its length with the LF
 * (the NUL not counted). At end of stream the last line may lack its LF;
 * 0 means end of stream with nothing left. Bytes are not interpreted (a
 * CR before the LF is kept; a NUL inside the line is stored as is).
 *
 * A line of more than min(cap - 1, reader capacity) bytes fails with
 * PX_EMSGSIZE and consumes nothing (px_buf_reader_consume can skip it; a
 * server usually closes the connection). Errors: PX_EINVAL (NULL reader or
 * line, cap 0), the inner stream's. Cancel-safe.
 */
px_future *px_buf_read_line_init(px_buf_io *f, px_buf_reader *r, char *line,
                                 size_t cap);

/**
 * Reads up to and including the byte `delim` into out[0..cap) (tokio's
 * read_until): output.u64 = bytes stored, the delimiter included; no NUL
 * is added. End of stream and the size limit (min(cap, reader capacity))
 * as for px_buf_read_line_init. PX_EINVAL for delim outside 0..255.
 * Cancel-safe.
 */
px_future *px_buf_read_until_init(px_buf_io *f, px_buf_reader *r, int delim,
                                  void *out, size_t cap);

/**
 * Reads exactly len bytes into out (tokio's read_exact): output.u64 = len.
 * Fails with PX_EOF when the stream ends first. len == 0 completes at
 * once. Cancel-safe when len <= the reader's capacity (see the file
 * comment).
 */
px_future *px_buf_read_exact_init(px_buf_io *f, px_buf_reader *r, void *out,
                                  size_t len);

/**
 * Reads one length-prefixed frame: a 4-byte big-endian length, then that
 * many bytes of payload, stored in out[0..cap): output.u64 = payload
 * length (0 is a valid, empty frame). Errors: PX_EOF at end of stream
 * between frames; PX_EIO when the stream ends inside a frame (truncated);
 * PX_EMSGSIZE when the header announces more than max or cap bytes
 * (nothing is consumed, no payload read: close the connection); PX_EINVAL
 * for NULL reader, or NULL out with cap > 0. Cancel-safe when 4 + length
 * <= the reader's capacity.
 */
px_future *px_frame_read_init(px_buf_io *f, px_buf_reader *r, void *out,
                              size_t cap, size_t max);

/**
 * Writes one length-prefixed frame to any stream: a 4-byte big-endian
 * length, then the payload (the future behind px_frame_write_init).
 * Fields are private.
 */
typedef struct px_frame_write {
  /** The future header; output.u64 is the payload length. */
  px_future base;
  px_stream *stream;        /**< private */
  const unsigned char *buf; /**< private */
  size_t len;               /**< private */
  size_t max;               /**< private */
  size_t done;              /**< private: header and payload bytes sent */
  unsigned char header[4];  /**< private */
  int waiting;              /**< private */
} px_frame_write;

/**
 * Writes len bytes of payload as one frame: output.u64 = len. Errors:
 * PX_EMSGSIZE when len exceeds max or 2^32 - 1 (nothing is written),
 * PX_EINVAL (NULL stream, NULL buf with len > 0), the stream's own. Over a
 * px_buf_writer small frames are only buffered: flush to send them. A
 * dropped frame write may have sent a prefix of the frame (the stream is
 * then unusable for frames).
 */
px_future *px_frame_write_init(px_frame_write *f, px_stream *s,
                               const void *buf, size_t len, size_t max);

/**
 * A buffered writer over `inner` with a buffer of `capacity` bytes (0:
 * PX_BUF_DEFAULT_CAPACITY), allocated at the first buffered write. Writes
 * smaller than the free space are copied and complete at once; the buffer
 * goes out when full, on px_stream_flush_init and on
 * px_stream_shutdown_init. Writes at least as large as the capacity go
 * straight to inner once the buffer is empty. Owns inner from now on.
 * Errors: as px_buf_reader_new.
 */
int px_buf_writer_new(px_stream *inner, size_t capacity, px_buf_writer **out);

/** The writer as a px_stream (write, flush and shut down through it). */
px_stream *px_buf_writer_stream(px_buf_writer *w);

/** The stream the writer writes to (still owned by the writer). */
px_stream *px_buf_writer_inner(px_buf_writer *w);

/** How many bytes wait in the buffer for a flush; 0 for NULL. */
size_t px_buf_writer_buffered(const px_buf_writer *w);

/**
 * Closes the writer and its inner stream. Bytes still buffered are
 * discarded: flush (or shut down) first. NULL is ignored.
 */
void px_buf_writer_close(px_buf_writer *w);

#ifdef __cplusplus
}
#endif

/** @} */

#endif /* POLLUX_BUFIO_H */
