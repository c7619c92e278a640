/* stream.c: length-prefixed frames on byte streams (VDE's 2-byte and QEMU's 4-byte prefixes):
 * reassembly across reads, and non-blocking writes with a bounded queue. */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static size_t load_be(const uint8_t *bytes, unsigned n)
{
	size_t value = 0;

	for (unsigned i = 0; i < n; i++)
		value = (value << 8) | bytes[i];
	return value;
}

static void store_be(uint8_t *bytes, unsigned n, size_t value)
{
	for (unsigned i = n; i-- > 0;) {
		bytes[i] = (uint8_t)(value & 0xff);
		value >>= 8;
	}
}

void vsq_stream_decoder_init(struct vsq_stream_decoder *dec, unsigned prefix_bytes,
			     const struct vsq_stream_decoder_ops *ops, void *ctx)
{
	dec->ops = ops;
	dec->ctx = ctx;
	dec->prefix_bytes = prefix_bytes == VSQ_STREAM_QEMU ? VSQ_STREAM_QEMU : VSQ_STREAM_VDE;
	vsq_stream_decoder_reset(dec);
}

void vsq_stream_decoder_reset(struct vsq_stream_decoder *dec)
{
	dec->prefix_have = 0;
	dec->frame_len = 0;
	dec->frame_have = 0;
	dec->skipping = 0;
	dec->broken = 0;
}

/* A complete prefix is in dec->prefix: start the frame it announces. */
static int start_frame(struct vsq_stream_decoder *dec)
{
	size_t len = load_be(dec->prefix, dec->prefix_bytes);

	dec->prefix_have = 0;
	if (len == 0) {
		dec->ops->malformed(dec->ctx, 0);
		return 0;
	}
	if (dec->prefix_bytes == VSQ_STREAM_QEMU && len > VSQ_STREAM_QEMU_SANE_MAX) {
		dec->broken = 1;
		dec->ops->malformed(dec->ctx, len);
		return -EPROTO;
	}
	dec->frame_len = len;
	dec->frame_have = 0;
	dec->skipping = len > VSQ_FRAME_MAX;
	dec->prefix_have = dec->prefix_bytes; /* now reading the frame's bytes */
	return 0;
}

int vsq_stream_decode(struct vsq_stream_decoder *dec, const uint8_t *bytes, size_t len)
{
	const unsigned prefix_bytes = dec->prefix_bytes;

	if (dec->broken)
		return -EPROTO;
	while (len > 0) {
		size_t take;

		if (dec->prefix_have < prefix_bytes) {
			/* The common case: a whole frame in the buffer, delivered without a copy.
			 */
			if (dec->prefix_have == 0 && len >= prefix_bytes) {
				size_t frame_len = load_be(bytes, prefix_bytes);

				if (frame_len >= 1 && frame_len <= VSQ_FRAME_MAX &&
				    len - prefix_bytes >= frame_len) {
					dec->ops->frame(dec->ctx, bytes + prefix_bytes, frame_len);
					bytes += prefix_bytes + frame_len;
					len -= prefix_bytes + frame_len;
					continue;
				}
			}
			take = prefix_bytes - dec->prefix_have;
			if (take > len)
				take = len;
			memcpy(dec->prefix + dec->prefix_have, bytes, take);
			dec->prefix_have += (unsigned)take;
			bytes += take;
			len -= take;
			if (dec->prefix_have == prefix_bytes && start_frame(dec) < 0)
				return -EPROTO;
			continue;
		}
		take = dec->frame_len - dec->frame_have;
		if (take > len)
			take = len;
		if (!dec->skipping)
			memcpy(dec->frame + dec->frame_have, bytes, take);
		dec->frame_have += take;
		bytes += take;
		len -= take;
		if (dec->frame_have == dec->frame_len) {
			size_t frame_len = dec->frame_len;
			int skipped = dec->skipping;

			dec->prefix_have = 0;
			dec->frame_len = 0;
			dec->frame_have = 0;
			dec->skipping = 0;
			if (skipped)
				dec->ops->malformed(dec->ctx, frame_len);
			else
				dec->ops->frame(dec->ctx, dec->frame, frame_len);
		}
	}
	return 0;
}

/* ---- writer --------------------------------------------------------------------------------- */

int vsq_stream_writer_init(struct vsq_stream_writer *w, unsigned prefix_bytes,
			   size_t capacity_bytes)
{
	size_t minimum = 2 * (VSQ_FRAME_MAX + 4);

	memset(w, 0, sizeof(*w));
	w->prefix_bytes = prefix_bytes == VSQ_STREAM_QEMU ? VSQ_STREAM_QEMU : VSQ_STREAM_VDE;
	w->capacity = capacity_bytes < minimum ? minimum : capacity_bytes;
	w->buf = malloc(w->capacity);
	return w->buf ? 0 : -ENOMEM;
}

void vsq_stream_writer_free(struct vsq_stream_writer *w)
{
	free(w->buf);
	w->buf = NULL;
	w->queued = 0;
}

void vsq_stream_writer_reset(struct vsq_stream_writer *w)
{
	w->head = 0;
	w->queued = 0;
}

static void ring_append(struct vsq_stream_writer *w, const uint8_t *bytes, size_t len)
{
	size_t tail = (w->head + w->queued) % w->capacity;
	size_t first = w->capacity - tail;

	if (first > len)
		first = len;
	memcpy(w->buf + tail, bytes, first);
	memcpy(w->buf, bytes + first, len - first);
	w->queued += len;
}

static ssize_t write_vector(const struct vsq_stream_writer *w, int fd, struct iovec *iov, int count)
{
	if (w->socket) {
		struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)count};

		return sendmsg(fd, &msg, MSG_NOSIGNAL);
	}
	return writev(fd, iov, count);
}

static int would_block(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

int vsq_stream_queue_frame(struct vsq_stream_writer *w, const uint8_t *frame, size_t len)
{
	uint8_t prefix[4];

	if (len > VSQ_FRAME_MAX)
		return -EMSGSIZE;
	if (w->capacity - w->queued < w->prefix_bytes + len)
		return -ENOBUFS;
	store_be(prefix, w->prefix_bytes, len);
	ring_append(w, prefix, w->prefix_bytes);
	ring_append(w, frame, len);
	return 0;
}

int vsq_stream_writer_flush(struct vsq_stream_writer *w, int fd)
{
	while (w->queued) {
		size_t first = w->capacity - w->head;
		struct iovec iov[2];
		int count = 1;
		ssize_t written;

		if (first >= w->queued) {
			first = w->queued;
		} else {
			iov[1].iov_base = w->buf;
			iov[1].iov_len = w->queued - first;
			count = 2;
		}
		iov[0].iov_base = w->buf + w->head;
		iov[0].iov_len = first;
		written = write_vector(w, fd, iov, count);
		if (written < 0)
			return would_block(errno) ? 0 : -errno;
		w->head = (w->head + (size_t)written) % w->capacity;
		w->queued -= (size_t)written;
	}
	w->head = 0;
	return 0;
}
