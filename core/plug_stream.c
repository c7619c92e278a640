/* plug_stream.c: stream://[INFD[:OUTFD]][format=vde|qemu], frames in the length-prefixed stream
 * format on fds the process already has (stdin/stdout by default, as vde_plug uses them), and
 * the fd-pair machinery that cmd:// and qemu:// share. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plug_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Bytes the writer may queue while the reader is slow: about 28 full-size frames. */
#define STREAM_QUEUE_BYTES (256 * 1024)
/* Reads per readiness event, so one busy stream cannot starve the loop. */
#define STREAM_READS_PER_EVENT 8

static void stream_frame(void *ctx, const uint8_t *frame, size_t len)
{
	struct vsq_plug_stream *stream = ctx;

	vsq_plug_deliver(stream->plug, frame, len);
}

static void stream_malformed(void *ctx, size_t len)
{
	struct vsq_plug_stream *stream = ctx;

	vsq_plug_count_malformed(stream->plug);
}

static const struct vsq_stream_decoder_ops stream_decoder_ops = {
    .frame = stream_frame,
    .malformed = stream_malformed,
};

static void stream_eof(struct vsq_plug_stream *stream, int err)
{
	vsq_plug_stream_detach(stream);
	if (stream->on_eof)
		stream->on_eof(stream, err);
	else
		vsq_plug_set_down(stream->plug, err);
}

static void stream_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vsq_plug_stream *stream = container_of(w, struct vsq_plug_stream, read_watcher);

	for (int i = 0; i < STREAM_READS_PER_EVENT; i++) {
		ssize_t n = read(stream->in_fd, stream->read_buf, sizeof(stream->read_buf));

		if (n > 0) {
			if (vsq_stream_decode(&stream->decoder, stream->read_buf, (size_t)n) < 0) {
				stream_eof(stream, -EPROTO);
				return;
			}
			if (stream->in_fd < 0 || (size_t)n < sizeof(stream->read_buf))
				return;
		} else if (n == 0) {
			stream_eof(stream, -ECONNRESET);
			return;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			return;
		} else {
			stream_eof(stream, -errno);
			return;
		}
	}
}

static void stream_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vsq_plug_stream *stream = container_of(w, struct vsq_plug_stream, write_watcher);
	int rc = vsq_stream_writer_flush(&stream->writer, stream->out_fd);

	if (rc < 0) {
		stream_eof(stream, rc);
		return;
	}
	if (!vsq_stream_writer_pending(&stream->writer))
		ev_io_stop(loop, w);
}

static void stream_flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct vsq_plug_stream *stream = container_of(w, struct vsq_plug_stream, flush_prepare);
	int rc;

	ev_prepare_stop(loop, w);
	rc = vsq_stream_writer_flush(&stream->writer, stream->out_fd);
	if (rc < 0) {
		stream_eof(stream, rc);
		return;
	}
	if (vsq_stream_writer_pending(&stream->writer))
		ev_io_start(loop, &stream->write_watcher); /* the reader is slow: wait for room */
}

int vsq_plug_stream_init(struct vsq_plug_stream *stream, struct vsq_plug *plug,
			 unsigned prefix_bytes)
{
	stream->plug = plug;
	stream->in_fd = -1;
	stream->out_fd = -1;
	vsq_stream_decoder_init(&stream->decoder, prefix_bytes, &stream_decoder_ops, stream);
	ev_init(&stream->read_watcher, stream_read_cb);
	ev_init(&stream->write_watcher, stream_write_cb);
	ev_prepare_init(&stream->flush_prepare, stream_flush_cb);
	return vsq_stream_writer_init(&stream->writer, prefix_bytes, STREAM_QUEUE_BYTES);
}

static int is_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

void vsq_plug_stream_attach(struct vsq_plug_stream *stream, int in_fd, int out_fd)
{
	struct ev_loop *loop = vsq_plug_loop(stream->plug);

	vsq_plug_stream_detach(stream);
	stream->in_fd = in_fd;
	stream->out_fd = out_fd;
	fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
	fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
	stream->writer.socket = is_socket(out_fd);
	ev_io_set(&stream->read_watcher, in_fd, EV_READ);
	ev_io_set(&stream->write_watcher, out_fd, EV_WRITE);
	ev_io_start(loop, &stream->read_watcher);
}

void vsq_plug_stream_detach(struct vsq_plug_stream *stream)
{
	struct ev_loop *loop = vsq_plug_loop(stream->plug);

	ev_io_stop(loop, &stream->read_watcher);
	ev_io_stop(loop, &stream->write_watcher);
	ev_prepare_stop(loop, &stream->flush_prepare);
	stream->in_fd = -1;
	stream->out_fd = -1;
	vsq_stream_decoder_reset(&stream->decoder);
	vsq_stream_writer_reset(&stream->writer);
}

int vsq_plug_stream_send(struct vsq_plug_stream *stream, const uint8_t *frame, size_t len)
{
	int rc;

	if (stream->out_fd < 0)
		return -ENOTCONN;
	rc = vsq_stream_queue_frame(&stream->writer, frame, len);
	if (rc < 0)
		return rc;
	if (!ev_is_active(&stream->flush_prepare) && !ev_is_active(&stream->write_watcher))
		ev_prepare_start(vsq_plug_loop(stream->plug), &stream->flush_prepare);
	return 0;
}

void vsq_plug_stream_drain(struct vsq_plug_stream *stream, int timeout_ms)
{
	struct pollfd pfd = {.fd = stream->out_fd, .events = POLLOUT};

	while (stream->out_fd >= 0 && vsq_stream_writer_pending(&stream->writer)) {
		if (vsq_stream_writer_flush(&stream->writer, stream->out_fd) < 0)
			return;
		if (!vsq_stream_writer_pending(&stream->writer) || timeout_ms <= 0)
			return;
		if (poll(&pfd, 1, 50) < 0 && errno != EINTR)
			return;
		timeout_ms -= 50;
	}
}

void vsq_plug_stream_free(struct vsq_plug_stream *stream)
{
	vsq_plug_stream_detach(stream);
	vsq_stream_writer_free(&stream->writer);
}

/* ---- stream:// ------------------------------------------------------------------------------ */

struct stream_plug {
	struct vsq_plug_stream stream;
	int in_fd, out_fd;
	int in_flags, out_flags; /* restored on close: the fds belong to the process */
};

static int parse_fd(const char *text, int *fd, char *err, size_t errlen)
{
	uint64_t value;
	int rc = vsq_plug_parse_number(text, "file descriptor", 65535, &value, err, errlen);

	if (rc < 0)
		return rc;
	if (fcntl((int)value, F_GETFL) < 0) {
		vsq_plug_errf(err, errlen, "file descriptor %s is not open", text);
		return -EBADF;
	}
	*fd = (int)value;
	return 0;
}

/* "vde" (2-byte prefix) or "qemu" (4-byte prefix), for the format= option. */
int vsq_plug_parse_format(const char *text, unsigned *prefix_bytes, char *err, size_t errlen)
{
	if (!text || strcmp(text, "vde") == 0)
		*prefix_bytes = VSQ_STREAM_VDE;
	else if (strcmp(text, "qemu") == 0)
		*prefix_bytes = VSQ_STREAM_QEMU;
	else {
		vsq_plug_errf(err, errlen, "format: \"%s\" is neither \"vde\" nor \"qemu\"", text);
		return -EINVAL;
	}
	return 0;
}

static int stream_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args,
		       char *err, size_t errlen)
{
	struct stream_plug *sp = vsq_plug_priv(plug);
	const char *path = NULL, *format = NULL;
	const struct vsq_plug_param params[] = {{"format", &format}, {NULL, NULL}};
	unsigned prefix_bytes;
	char *colon;
	int rc;

	rc = vsq_plug_parse_path_params(rest, &path, params, err, errlen);
	if (rc < 0)
		return rc;
	rc = vsq_plug_parse_format(format, &prefix_bytes, err, errlen);
	if (rc < 0)
		return rc;
	sp->in_fd = 0;
	sp->out_fd = 1;
	if (path && *path) {
		colon = strchr(path, ':');
		if (colon)
			*colon = 0;
		rc = parse_fd(path, &sp->in_fd, err, errlen);
		if (rc < 0)
			return rc;
		sp->out_fd = sp->in_fd;
		if (colon && (rc = parse_fd(colon + 1, &sp->out_fd, err, errlen)) < 0)
			return rc;
	}
	rc = vsq_plug_stream_init(&sp->stream, plug, prefix_bytes);
	if (rc < 0) {
		vsq_plug_stream_free(&sp->stream);
		return rc;
	}
	sp->in_flags = fcntl(sp->in_fd, F_GETFL);
	sp->out_flags = fcntl(sp->out_fd, F_GETFL);
	vsq_plug_stream_attach(&sp->stream, sp->in_fd, sp->out_fd);
	return 0;
}

static int stream_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct stream_plug *sp = vsq_plug_priv(plug);

	return vsq_plug_stream_send(&sp->stream, frame, len);
}

static void stream_close(struct vsq_plug *plug)
{
	struct stream_plug *sp = vsq_plug_priv(plug);

	/* What is still queued goes out first (for a while), so a pipe gets whole frames. */
	if (sp->stream.out_fd >= 0)
		vsq_plug_stream_drain(&sp->stream, 1000);
	vsq_plug_stream_free(&sp->stream);
	fcntl(sp->in_fd, F_SETFL, sp->in_flags);
	fcntl(sp->out_fd, F_SETFL, sp->out_flags);
}

static void stream_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	const struct stream_plug *sp = vsq_plug_priv((struct vsq_plug *)plug);

	snprintf(buf, len, "fds %d:%d, %s format", sp->in_fd, sp->out_fd,
		 sp->stream.decoder.prefix_bytes == VSQ_STREAM_QEMU ? "qemu" : "vde");
}

const struct vsq_plug_scheme vsq_plug_scheme_stream = {
    .name = "stream",
    .priv_size = sizeof(struct stream_plug),
    .open = stream_open,
    .send = stream_send,
    .close = stream_close,
    .describe = stream_describe,
};
