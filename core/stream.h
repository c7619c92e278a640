/* stream.h: ethernet frames on a byte stream, each behind a big-endian length prefix: 2 bytes
 * for VDE's stream format (vde_plug's stdin/stdout, cmd://, dpipe cables), 4 bytes for QEMU's
 * -netdev stream (and the older -netdev socket). Used by the cmd, stream and qemu plugs. */
#ifndef VSQ_STREAM_H
#define VSQ_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "port.h"

/* The length prefix sizes, in bytes. */
#define VSQ_STREAM_VDE 2
#define VSQ_STREAM_QEMU 4

/* A length above this in a 4-byte prefix means the stream is garbage, not an oversized frame
 * (QEMU's own receive buffer is 68 KiB): the decoder reports the stream broken. */
#define VSQ_STREAM_QEMU_SANE_MAX (1u << 20)

struct vsq_stream_decoder_ops {
	/* A whole frame of 1..VSQ_FRAME_MAX bytes (runts are passed on, the receiver judges). */
	void (*frame)(void *ctx, const uint8_t *frame, size_t len);
	/* A frame that was dropped here: zero length, or longer than VSQ_FRAME_MAX (its bytes are
	 * skipped, so the stream stays in step). */
	void (*malformed)(void *ctx, size_t len);
};

/* Reassembles frames across reads of any size, including a read that ends inside a length
 * prefix (vdestream drops such a byte and loses step; this does not). No allocation. */
struct vsq_stream_decoder {
	const struct vsq_stream_decoder_ops *ops;
	void *ctx;
	unsigned prefix_bytes; /* VSQ_STREAM_VDE or VSQ_STREAM_QEMU */
	unsigned prefix_have;
	uint8_t prefix[4];
	size_t frame_len;  /* length announced by the current prefix */
	size_t frame_have; /* bytes of it seen so far */
	int skipping;	   /* the current frame is oversized: its bytes are discarded */
	int broken;	   /* an insane 4-byte length: nothing more is decoded */
	uint8_t frame[VSQ_FRAME_MAX];
};

void vsq_stream_decoder_init(struct vsq_stream_decoder *dec, unsigned prefix_bytes,
			     const struct vsq_stream_decoder_ops *ops, void *ctx);
/* Feed bytes read from the stream. Returns 0, or -EPROTO once the stream is broken (then the
 * caller should drop the connection, as QEMU does). */
int vsq_stream_decode(struct vsq_stream_decoder *dec, const uint8_t *bytes, size_t len);
/* Forget a partial frame (the connection was replaced). */
void vsq_stream_decoder_reset(struct vsq_stream_decoder *dec);

/* Frames for a non-blocking fd: queued in a bounded ring allocated once and written in batches
 * (one writev for many frames); a frame that does not fit is dropped, never split or blocked
 * on, so the stream only ever carries whole frames. */
struct vsq_stream_writer {
	unsigned prefix_bytes;
	uint8_t *buf; /* ring of queued bytes */
	size_t capacity;
	size_t head; /* index of the first queued byte */
	size_t queued;
	int socket; /* the fd is a socket: write with MSG_NOSIGNAL (no SIGPIPE) */
};

/* -ENOMEM, or 0. capacity_bytes is rounded up to hold at least two largest frames. */
int vsq_stream_writer_init(struct vsq_stream_writer *w, unsigned prefix_bytes,
			   size_t capacity_bytes);
void vsq_stream_writer_free(struct vsq_stream_writer *w);
void vsq_stream_writer_reset(struct vsq_stream_writer *w);
/* Queue one frame with its prefix without writing it (the caller flushes a batch later):
 * 0, -ENOBUFS (queue full, dropped) or -EMSGSIZE. */
int vsq_stream_queue_frame(struct vsq_stream_writer *w, const uint8_t *frame, size_t len);
/* Write what is queued. 0 (possibly with bytes still pending) or -errno. */
int vsq_stream_writer_flush(struct vsq_stream_writer *w, int fd);
static inline size_t vsq_stream_writer_pending(const struct vsq_stream_writer *w)
{
	return w->queued;
}

#endif
